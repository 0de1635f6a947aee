"""Long work goes through the outbox to a real huey consumer, on SQLite and on Redis.

A worker must never see uncommitted data, a rolled-back request must leave no task behind, and work
whose hand-off to the queue was lost must still be done.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest
import redis
import sqlalchemy as sa

from app.db import commit_scope, db, utcnow
from app.queue import outbox
from app.queue.models import OutboxMessage
from app.queue.tasks import huey
from app.sites.models import Level

SEEN: dict[str, list[str]] = {}
_lock = threading.Lock()


def note_level(key: str, level_code: str) -> None:
    """Reads the row the enqueuing transaction wrote: fails if the worker ran before the commit."""
    level = db.session.scalar(sa.select(Level).where(Level.code == level_code))
    with _lock:
        SEEN.setdefault(key, []).append(level.name if level else "MISSING")


FAILURES: dict[str, int] = {}


def flaky(key: str) -> None:
    FAILURES[key] = FAILURES.get(key, 0) + 1
    if FAILURES[key] == 1:
        raise RuntimeError("the mail server said 451, try later")


RUNNING: dict[str, int] = {}


def slow(key: str, seconds: float) -> None:
    """Counts the runs at once of one message: never more than one, however long it takes."""
    with _lock:
        RUNNING[key] = RUNNING.get(key, 0) + 1
        SEEN.setdefault(key, []).append(f"at once: {RUNNING[key]}")
    time.sleep(seconds)
    with _lock:
        RUNNING[key] -= 1


outbox.register_handlers({"test.note_level": note_level, "test.flaky": flaky, "test.slow": slow})


def _redis_url() -> str:
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    return url


@pytest.fixture(params=["sqlite-queue", "redis-queue"])
def queue_app(request, fresh_app):
    overrides = {"QUEUE_NAME": f"vcops-test-{uuid.uuid4().hex[:8]}"}
    if request.param == "redis-queue":
        overrides["REDIS_URL"] = _redis_url()
    app = fresh_app("sqlite", **overrides)
    yield app
    huey.flush()


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _outbox_rows(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))
        db.session.remove()
        return rows


@pytest.fixture
def consumer(queue_app):
    from app.queue.tasks import configure_queue

    configure_queue(queue_app)
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    yield consumer
    consumer.stop(graceful=True)


def test_work_asked_for_in_a_transaction_runs_after_commit_and_sees_the_committed_rows(queue_app, consumer):
    key = uuid.uuid4().hex
    with queue_app.app_context():
        with commit_scope() as session:
            session.add(Level(code="region", name="Vùng", rank=9))
            outbox.enqueue(session, "test.note_level", key=key, level_code="region")
            session.flush()
            # Give a fast worker every chance to run early: it must not, the row is not committed yet.
            time.sleep(0.3)
            assert key not in SEEN
        db.session.remove()
    assert _wait_for(lambda: key in SEEN), "the worker never ran the task"
    assert SEEN[key] == ["Vùng"]
    assert _wait_for(lambda: all(r.done_at for r in _outbox_rows(queue_app)))


def test_work_asked_for_inside_a_savepoint_waits_for_the_outer_commit(fresh_app):
    # Booking a meeting runs in a savepoint inside the request's transaction: releasing the savepoint is not
    # the commit, and a worker handed the message then would find nothing to send. PostgreSQL, where a worker
    # does not wait for the writer (SQLite's single writer would hide the mistake).
    from app.queue.tasks import configure_queue

    app = fresh_app("postgresql", QUEUE_NAME=f"vcops-test-{uuid.uuid4().hex[:8]}")
    configure_queue(app)
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        _book_level_in_a_savepoint(app)
    finally:
        consumer.stop(graceful=True)
        huey.flush()


def _book_level_in_a_savepoint(queue_app) -> None:
    key = uuid.uuid4().hex
    with queue_app.app_context():
        with commit_scope() as session:
            with session.begin_nested():
                session.add(Level(code="zone", name="Khu", rank=8))
                outbox.enqueue(session, "test.note_level", key=key, level_code="zone")
            time.sleep(0.3)
            assert huey.pending_count() == 0 and key not in SEEN
        db.session.remove()
    assert _wait_for(lambda: key in SEEN), "the worker never ran the task"
    assert SEEN[key] == ["Khu"]


def test_a_rolled_back_transaction_leaves_no_task_and_no_outbox_row(queue_app):
    key = uuid.uuid4().hex
    with queue_app.app_context():
        with pytest.raises(RuntimeError), commit_scope() as session:
            outbox.enqueue(session, "test.note_level", key=key, level_code="province")
            session.flush()
            raise RuntimeError("the booking was refused")
        db.session.remove()
    assert huey.pending_count() == 0
    assert _outbox_rows(queue_app) == []


def test_work_whose_hand_off_was_lost_is_done_by_the_sweep_exactly_once(queue_app, consumer):
    key = uuid.uuid4().hex
    with queue_app.app_context():
        outbox.set_dispatcher(None)  # as if the process died between the commit and the hand-off
        try:
            with commit_scope() as session:
                message = outbox.enqueue(session, "test.note_level", key=key, level_code="nowhere")
                session.flush()
                message.created_at = utcnow() - dt.timedelta(minutes=5)
        finally:
            from app.queue.tasks import configure_queue

            configure_queue(queue_app)
        db.session.remove()
    assert huey.pending_count() == 0
    from app.queue.tasks import sweep_outbox

    sweep_outbox.call_local()
    sweep_outbox.call_local()  # a second sweep, or a late duplicate hand-off, must not run it twice
    assert _wait_for(lambda: key in SEEN)
    time.sleep(0.5)
    assert SEEN[key] == ["MISSING"]


def test_a_failing_task_records_the_error_and_is_retried_until_it_succeeds(queue_app):
    key = uuid.uuid4().hex
    with queue_app.app_context():
        with commit_scope() as session:
            message = outbox.enqueue(session, "test.flaky", key=key)
        db.session.remove()
        with pytest.raises(RuntimeError):
            outbox.deliver(message.id)
        row = _outbox_rows(queue_app)[0]
        assert row.done_at is None and "451" in row.last_error and row.attempts == 1
        assert outbox.deliver(message.id) is True
        assert outbox.deliver(message.id) is False  # already done: a duplicate does nothing
    row = _outbox_rows(queue_app)[0]
    assert row.done_at is not None and row.attempts == 2 and FAILURES[key] == 2


def test_the_worker_checks_in_so_health_turns_green(queue_app):
    from app.queue.tasks import make_consumer

    client = queue_app.test_client()
    assert client.get("/healthz").status_code == 503
    with queue_app.app_context():
        make_consumer(1)  # checks in when it is made, before its first periodic tick
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok", body
    assert body["checks"]["queue"]["backend"] in {"SqliteStorage", "RedisStorage"}


def test_a_message_runs_once_at_a_time_even_past_its_lease_while_its_worker_lives(queue_app):
    # The lease is renewed while the handler runs: a second hand-off (the sweep, a duplicate) finds it held.
    key = uuid.uuid4().hex
    lease = outbox.LEASE
    outbox.LEASE = dt.timedelta(seconds=0.6)  # as a test of a stopped worker shortens it in the worker's process
    try:
        with queue_app.app_context():
            with commit_scope() as session:
                message = outbox.enqueue(session, "test.slow", key=key, seconds=2.0)
            db.session.remove()
        results: list[bool] = []

        def first() -> None:
            with queue_app.app_context():
                results.append(outbox.deliver(message.id))

        worker = threading.Thread(target=first)
        worker.start()
        time.sleep(1.2)  # twice the lease: only its renewals keep it
        with queue_app.app_context():
            assert outbox.pending(older_than=dt.timedelta(0)) == []
            assert outbox.deliver(message.id) is False
            row = db.session.get(OutboxMessage, message.id)
            assert row.done_at is None and row.claimed_until > utcnow()
            db.session.remove()
        worker.join()
    finally:
        outbox.LEASE = lease
    assert results == [True] and SEEN[key] == ["at once: 1"]
    [row] = _outbox_rows(queue_app)
    assert row.done_at is not None and row.claimed_until is None and row.attempts == 1


def test_the_message_of_a_worker_that_stopped_mid_way_is_not_done_and_is_handed_over_after_its_lease(queue_app):
    # The worker claimed it and was killed before the handler returned: the row keeps its lapsing lease.
    key = uuid.uuid4().hex
    with queue_app.app_context():
        with commit_scope() as session:
            message = outbox.enqueue(session, "test.note_level", key=key, level_code="province")
            session.flush()
            message.claimed_until = utcnow() + dt.timedelta(minutes=1)
            message.attempts = 1
        db.session.remove()
        assert outbox.pending(older_than=dt.timedelta(minutes=2)) == []  # its worker may still be alive
        assert outbox.deliver(message.id) is False and key not in SEEN
        with commit_scope() as session:
            session.get(OutboxMessage, message.id).claimed_until = utcnow() - dt.timedelta(seconds=1)
        db.session.remove()
        assert outbox.pending(older_than=dt.timedelta(minutes=2)) == [message.id]
        assert outbox.deliver(message.id) is True
        db.session.remove()
    assert SEEN[key] == ["MISSING"]
    [row] = _outbox_rows(queue_app)
    assert row.done_at is not None and row.attempts == 2
