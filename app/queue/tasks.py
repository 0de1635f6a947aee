"""The task queue (huey): SQLite under instance/ by default, Redis when VCOPS_REDIS_URL is set.

Tasks run inside an app context of the worker's app, as the actor the factory names ("worker"). Periodic
tasks of its own: the worker's check-in (read by /healthz) and the outbox sweep; the domains' periodic work
is registered by the factory through `register_periodic`, so this module imports no domain.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask
from huey import Huey, crontab
from huey.consumer import Consumer
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from app.db import commit_scope, database_unreachable, db, describe_outage, utcnow
from app.queue import outbox
from app.queue.models import WorkerCheckin

log = logging.getLogger(__name__)
# Storage is chosen by configure_queue(); until then nothing can be queued by accident.
huey = Huey("vcops", storage_class=MemoryStorage, utc=True)
_state: dict[str, Any] = {"app": None}
# Set by the factory in app.extensions: what every task runs inside besides the app context (the audit log's
# "worker" actor), so that this module needs no domain.
TASK_CONTEXT = "vcops_task_context"


def configure_queue(app: Flask) -> None:
    """Point the queue at this app's storage and let the outbox hand work to it."""
    if app.config["REDIS_URL"]:
        huey.storage = RedisStorage(name=app.config["QUEUE_NAME"], url=app.config["REDIS_URL"])
    else:
        path = Path(app.config["INSTANCE_PATH"]) / "queue.db"
        huey.storage = SqliteStorage(name=app.config["QUEUE_NAME"], filename=str(path))
    _state["app"] = app
    outbox.set_dispatcher(lambda message_id: deliver_outbox(message_id))


def queue_backend() -> str:
    return type(huey.storage).__name__


def _app() -> Flask:
    app = _state["app"]
    if app is None:
        raise RuntimeError("the task queue is not configured: call configure_queue(app)")
    return app


def _in_app(fn: Any, *args: Any, **kwargs: Any) -> Any:
    app = _app()
    acting: Callable[[], AbstractContextManager[Any]] = app.extensions.get(TASK_CONTEXT, nullcontext)
    with app.app_context(), acting():
        return fn(*args, **kwargs)


@huey.task(retries=5, retry_delay=30)
def deliver_outbox(message_id: int) -> bool:
    return _in_app(outbox.deliver, message_id)


def _check_in() -> None:
    name = f"{socket.gethostname()}:{os.getpid()}"
    with commit_scope() as session:
        row = session.scalar(sa.select(WorkerCheckin).where(WorkerCheckin.name == name))
        if row is None:
            session.add(WorkerCheckin(name=name))
        else:
            row.seen_at = utcnow()
        # Forget workers not seen for a day: the table stays small across restarts.
        session.execute(sa.delete(WorkerCheckin).where(WorkerCheckin.seen_at < utcnow() - dt.timedelta(days=1)))


@huey.periodic_task(crontab(minute="*"))
def worker_check_in() -> None:
    _in_app(_check_in)


@huey.periodic_task(crontab(minute="*"))
def sweep_outbox() -> None:
    """Hand over again what a crash left: messages whose hand-off was lost, and those of a worker that stopped
    mid-way (their lease passed without being renewed)."""

    def sweep() -> None:
        for message_id in outbox.pending(older_than=dt.timedelta(minutes=2)):
            deliver_outbox(message_id)

    _in_app(sweep)


_PERIODIC_WORK: dict[str, Callable[[], Any]] = {}
_PERIODIC_TASKS: dict[str, Any] = {}


def register_periodic(name: str, schedule: Callable[[dt.datetime], bool], work: Callable[[], Any]) -> None:
    """A domain's periodic work, run by the worker in the app's context as the "worker" actor. The factory
    registers each (app/__init__.py: PERIODIC_TASKS); a later app's registration replaces the function only,
    since huey knows a task by its name once per process."""
    known = name in _PERIODIC_WORK
    _PERIODIC_WORK[name] = work
    if not known:
        def run() -> None:
            _in_app(_PERIODIC_WORK[name])

        run.__name__ = run.__qualname__ = name
        _PERIODIC_TASKS[name] = huey.periodic_task(schedule, name=name)(run)


def periodic(name: str) -> Any:
    """A registered periodic task (tests run one with `.call_local()`, as the worker would)."""
    return _PERIODIC_TASKS[name]


def in_transaction(work: Callable[[so.Session], Any]) -> Callable[[], Any]:
    """Periodic work written as a service (it takes the session and only flushes), committed as one unit."""

    def run() -> Any:
        with commit_scope() as session:
            return work(session)

    return run


def last_check_in() -> dt.datetime | None:
    return db.session.scalar(sa.select(sa.func.max(WorkerCheckin.seen_at)))


def _check_in_when_database_answers(max_delay: float = 60.0) -> None:
    """The first check-in, retried while the database does not answer. A worker that exited here would leave
    the queue unserved after the database came back (under `vcops worker`, or before serve restarted it);
    this one waits, saying why, until it answers. It stops only with the process (SIGTERM, as serve sends)."""
    delay = 1.0
    while True:  # bounded by the process's life: SIGTERM's default action ends it, even in sleep()
        try:
            _in_app(_check_in)
            return
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            engine = _app().extensions.get("vcops_engine")
            log.warning("database unreachable: %s, retrying in %d s",
                        describe_outage(exc, engine.url if engine is not None else None), delay)
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def make_consumer(workers: int) -> Consumer:
    """A consumer with thread workers; check in first (waiting for the database if it does not answer yet) so
    that /healthz is green from the start, and huey starts only once there is a database to work on."""
    _check_in_when_database_answers()
    return huey.create_consumer(workers=workers, worker_type="thread", periodic=True, check_worker_health=True)
