"""The outbox: work asked for inside a transaction reaches the task queue only after it commits.

A service calls `enqueue(session, "task.name", **payload)`; the row is written with the change. After
the commit, the row's id is handed to the queue; a worker claims the row once (so a duplicate hand-off
is harmless) and runs the handler of that name. The names and their handlers are one explicit table,
given by the factory (app/__init__.py: outbox_handlers), so "jobs.run" can be followed to its function.
A periodic sweep hands over rows that were committed but never reached the queue (the process died
between the commit and the hand-off).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import commit_scope, db, utcnow
from app.queue.models import OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[..., None]
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
    """Claim the message and run its handler; False when it was already done (or gone)."""
    with commit_scope() as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.done_at is not None:
            return False
        message.done_at = utcnow()
        message.attempts += 1
        task, payload = message.task, dict(message.payload)
    try:
        HANDLERS[task](**payload)
    except Exception as exc:
        db.session.rollback()
        with commit_scope() as session:
            message = session.get(OutboxMessage, message_id)
            if message is not None:
                message.done_at = None  # claimable again by the queue's retry
                message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    return True


def pending(older_than: dt.timedelta) -> list[int]:
    cutoff = utcnow() - older_than
    return list(db.session.scalars(
        sa.select(OutboxMessage.id).where(OutboxMessage.done_at.is_(None), OutboxMessage.created_at < cutoff)
        .order_by(OutboxMessage.id).limit(500)))
