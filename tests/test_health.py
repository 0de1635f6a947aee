"""/healthz tells a load balancer and the operators whether the app can serve and work."""

import datetime as dt

import sqlalchemy as sa

from app.db import utcnow
from app.queue.models import WorkerCheckin


def test_health_is_503_and_names_the_missing_worker_when_none_has_checked_in(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["queue"]["ok"] is True
    assert body["problems"] == ["worker: no worker has checked in"]


def test_health_is_200_when_a_worker_checked_in_recently(client, session):
    session.add(WorkerCheckin(name="w1", seen_at=utcnow() - dt.timedelta(seconds=20)))
    session.commit()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert 19 <= body["checks"]["worker"]["last_check_in_seconds_ago"] < 60


def test_health_says_how_long_a_stale_worker_has_been_silent(client, session):
    session.add(WorkerCheckin(name="w1", seen_at=utcnow() - dt.timedelta(minutes=10)))
    session.commit()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no worker has checked in for 6" in response.get_json()["problems"][0]


def test_health_reports_a_database_that_does_not_answer(fresh_app, tmp_path):
    app = fresh_app("sqlite")
    from app.db import db

    with app.app_context():
        db.session.add(WorkerCheckin(name="w", seen_at=utcnow()))
        db.session.commit()
    db.bind_to(sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["ok"] is False
    assert any(p.startswith("database:") for p in response.get_json()["problems"])
