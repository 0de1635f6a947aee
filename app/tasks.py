"""The task queue (huey): SQLite under instance/ by default, Redis when VCOPS_REDIS_URL is set.

Tasks run inside an app context of the worker's app, as the "worker" actor. Periodic tasks: the
worker's check-in (read by /healthz) and the outbox sweep.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from huey import Huey, crontab
from huey.consumer import Consumer
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from app.auth.audit import Actor, reset_actor, set_actor
from app.db import commit_scope, db, utcnow
from app.queue import outbox
from app.queue.models import WorkerCheckin

# Storage is chosen by configure_queue(); until then nothing can be queued by accident.
huey = Huey("vcops", storage_class=MemoryStorage, utc=True)
_state: dict[str, Any] = {"app": None}


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
    with _app().app_context():
        token = set_actor(Actor(None, "worker"))
        try:
            return fn(*args, **kwargs)
        finally:
            reset_actor(token)


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
    def sweep() -> None:
        for message_id in outbox.pending(older_than=dt.timedelta(minutes=2)):
            deliver_outbox(message_id)

    _in_app(sweep)


@huey.periodic_task(crontab(minute="*"))
def advance_meetings() -> None:
    """Scheduled occurrences become in progress at their start and completed at their end."""
    from app.meetings.service import advance_lifecycle

    def advance() -> None:
        with commit_scope() as session:
            advance_lifecycle(session)

    _in_app(advance)


@huey.periodic_task(crontab(minute="17", hour="2"))
def sweep_document_files() -> None:
    """Remove document files that no row refers to (left by a crash between a commit and a delete)."""
    from app.meetings.agenda import sweep_orphan_files

    def sweep() -> None:
        with commit_scope() as session:
            sweep_orphan_files(session)

    _in_app(sweep)


@huey.periodic_task(crontab(minute="*"))
def reap_lost_jobs() -> None:
    """Jobs whose worker died are marked lost: running ones after their ansible-playbook process group is
    ended, queued ones that a dead worker had taken off the queue before starting them."""
    from app.provisioning.runner import reap_in_worker
    from app.provisioning.service import reap_lost_claims

    def reap() -> None:
        reap_in_worker()
        with commit_scope() as session:
            reap_lost_claims(session)

    _in_app(reap)


@huey.periodic_task(crontab(minute="*"))
def run_job_schedules() -> None:
    """Launch the scheduled jobs that are due (each once, whichever worker gets there first)."""
    from app.provisioning.schedules import run_in_worker

    _in_app(run_in_worker)


def last_check_in() -> dt.datetime | None:
    return db.session.scalar(sa.select(sa.func.max(WorkerCheckin.seen_at)))


def make_consumer(workers: int) -> Consumer:
    """A consumer with thread workers; check in at once so /healthz is green from the start."""
    _in_app(_check_in)
    return huey.create_consumer(workers=workers, worker_type="thread", periodic=True, check_worker_health=True)
