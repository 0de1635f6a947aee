"""The outbox: work asked for inside a transaction reaches the task queue only after it commits.

A service calls `enqueue(session, "task.name", **payload)`; the row is written with the change. After
the commit, the row's id is handed to the queue; a worker claims the row and runs the handler of that name.
The names and their handlers are one explicit table, given by the factory (app/__init__.py: outbox_handlers),
so "jobs.run" can be followed to its function.

A message is done (done_at) only when its handler has returned. The claim is a lease: the worker takes the
row under a row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's writers take the database lock up front),
sets claimed_until to LEASE from now and renews it every LEASE/3 while the handler runs; a hand-off that finds
the message done, or under a lease that has not passed, does nothing, so two workers never run one message
at once and a duplicate hand-off is harmless. A worker that stops mid-way (SIGKILL, or SIGTERM, on which huey
stops at once) leaves the message not done under a lease that stops being renewed: once it has passed, the
periodic sweep hands the message over again, and the handler, run again, must carry on where the first run
stopped (each handler is idempotent: a job or a device action not queued any more is left alone; invitations
send only the deliveries not sent yet). The sweep also hands over rows that were committed but never reached
the queue (the process died between the commit and the hand-off).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from app.db import commit_scope, db, utcnow
from app.queue.models import OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[..., None]
# How long a claim holds without renewal. A worker renews it every LEASE/3 while the handler runs, so a long
# job keeps its message; after a worker died its messages wait at most LEASE, then the next sweep (every
# minute) hands them over. Tests of a killed worker shorten it in the worker's process.
LEASE = dt.timedelta(minutes=2)
HANDLERS: dict[str, Handler] = {}
_dispatcher: Callable[[int], None] | None = None


def register_handlers(handlers: Mapping[str, Handler]) -> None:
    """The functions that carry out outbox messages, by name (a name given twice keeps its last function)."""
    HANDLERS.update(handlers)


def enqueue(session: so.Session, task: str, **payload: Any) -> OutboxMessage:
    if task not in HANDLERS:
        raise KeyError(f"no outbox handler named {task!r}")
    message = OutboxMessage(task=task, payload=payload)
    session.add(message)
    return message


def set_dispatcher(dispatch: Callable[[int], None] | None) -> None:
    """The queue's hand-off function (set by app.queue.tasks); None keeps messages in the table only."""
    global _dispatcher
    _dispatcher = dispatch


def _after_flush(session: so.Session, _ctx: Any) -> None:
    new_ids = [obj.id for obj in session.new if isinstance(obj, OutboxMessage)]
    if new_ids:
        session.info.setdefault("outbox_ids", []).extend(new_ids)


def _after_commit(session: so.Session) -> None:
    if session.in_nested_transaction():
        # A savepoint was released, not the transaction: its rows are not visible to a worker yet (SQLAlchemy
        # sends after_commit for both). The ids wait for the outer commit.
        return
    ids = session.info.pop("outbox_ids", [])
    if ids and _dispatcher is not None:
        for message_id in ids:
            try:
                _dispatcher(message_id)
            except Exception:  # the sweep will hand it over later; the committed change stands
                log.exception("could not hand outbox message %s to the queue", message_id)


def _after_rollback(session: so.Session) -> None:
    session.info.pop("outbox_ids", None)


def _after_soft_rollback(session: so.Session, _previous: Any) -> None:
    _after_rollback(session)


def install(sessionmaker: so.sessionmaker[so.Session]) -> None:
    for name, fn in (("after_flush", _after_flush), ("after_commit", _after_commit),
                     ("after_soft_rollback", _after_soft_rollback)):
        if not sa.event.contains(sessionmaker, name, fn):
            sa.event.listen(sessionmaker, name, fn)


def deliver(message_id: int) -> bool:
    """Claim the message, run its handler, and mark it done once the handler returned; False when it was done
    already, is held by another worker's lease, or is gone."""
    with commit_scope() as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        now = utcnow()
        if message is None or message.done_at is not None:
            return False
        if message.claimed_until is not None and message.claimed_until > now:
            return False  # another worker runs it now; should it die, the sweep hands it over after its lease
        message.claimed_until = now + LEASE
        message.attempts += 1
        task, payload = message.task, dict(message.payload)
    lease = _Renewal(message_id)
    try:
        try:
            HANDLERS[task](**payload)
        finally:
            lease.stop()
    except Exception as exc:
        db.session.rollback()
        with commit_scope() as session:
            message = session.get(OutboxMessage, message_id)
            if message is not None:
                message.claimed_until = None  # claimable again by the queue's retry
                message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    with commit_scope() as session:
        message = session.get(OutboxMessage, message_id)
        if message is not None:
            message.done_at, message.claimed_until = utcnow(), None
    return True


class _Renewal:
    """Renews a message's lease every LEASE/3 from a thread of its own while the handler runs, so that only a
    worker that stopped loses its messages. A handler done sooner than LEASE/3 never touches the database here."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug's LocalProxy
        self.lease = LEASE
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"outbox-lease-{message_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.lease.total_seconds() / 3):
            try:
                with self.app.app_context(), commit_scope() as session:
                    session.execute(sa.update(OutboxMessage)
                                    .where(OutboxMessage.id == self.message_id, OutboxMessage.done_at.is_(None))
                                    .values(claimed_until=utcnow() + self.lease))
            except Exception:  # a busy database: the next renewal may pass, and the lease has two more chances
                log.exception("could not renew the lease of outbox message %s", self.message_id)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def pending(older_than: dt.timedelta) -> list[int]:
    """Messages to hand over again: not done and never claimed, committed more than `older_than` ago (their
    hand-off was lost), or claimed by a worker whose lease has passed (it stopped)."""
    now = utcnow()
    cutoff = now - older_than
    return list(db.session.scalars(
        sa.select(OutboxMessage.id).where(
            OutboxMessage.done_at.is_(None),
            sa.or_(sa.and_(OutboxMessage.claimed_until.is_(None), OutboxMessage.created_at < cutoff),
                   OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.id).limit(500)))
