"""SQLite in the embedded mode: web requests and workers writing at once never fail on a locked database."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from app.db import commit_scope, db
from app.sites import service
from app.sites.models import Site


def test_many_writers_at_once_all_succeed_on_sqlite(fresh_app):
    app = fresh_app("sqlite")
    with app.app_context(), commit_scope() as session:
        service.ensure_levels(session, "three-level")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(8):
                with app.app_context(), commit_scope() as session:
                    # Read, then write, in one transaction: a deferred transaction would fail here with
                    # "database is locked" when another writer got in between.
                    service.create_site(session, {"code": f"S{n}-{i}", "name": f"Site {n}-{i}", "level": "province"})
                    time.sleep(0.002)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Site.id))) == 64


def test_pages_are_read_while_a_worker_holds_the_write_lock(fresh_app):
    app = fresh_app("sqlite")
    engine = app.extensions["vcops_engine"]
    with engine.connect() as writer:
        writer.begin()  # BEGIN IMMEDIATE: the write lock is held until rollback
        writer.execute(sa.text("INSERT INTO levels (code, name, rank) VALUES ('x', 'X', 9)"))
        started = time.monotonic()
        response = app.test_client().get("/healthz")  # a read-only request begins deferred
        assert time.monotonic() - started < 5
        assert response.get_json()["checks"]["database"]["ok"] is True
        writer.rollback()
