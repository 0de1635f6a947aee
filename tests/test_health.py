"""/healthz tells a load balancer whether the app can serve and work, and the operators what is wrong: an
anonymous caller sees each check's state only, never an error naming a host, a port or a file."""

import datetime as dt
import logging

import sqlalchemy as sa

from app.auth.models import Role
from app.db import utcnow
from app.queue.models import WorkerCheckin

# A database that refuses connections: its driver's error names the host, the port and the user.
UNREACHABLE_DATABASE = "postgresql+psycopg://vcops@127.0.0.1:1/vcops"


def test_a_load_balancer_gets_503_and_the_failing_check_by_name_only(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == {"ok": True, "backend": "sqlite"}
    assert body["checks"]["queue"]["ok"] is True
    assert body["checks"]["worker"] == {"ok": False}
    assert body["problems"] == ["worker"]


def test_an_operator_logged_in_reads_what_is_wrong(login):
    body = login(Role.OPERATOR).get("/healthz").get_json()
    assert body["problems"] == ["worker: no worker has checked in"]
    assert body["checks"]["worker"]["error"] == "no worker has checked in"
    assert "pending" in body["checks"]["queue"]


def test_monitoring_with_an_api_token_reads_what_is_wrong(api):
    response = api(Role.OPERATOR).get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["worker: no worker has checked in"]


def test_a_user_without_monitoring_view_and_a_bad_token_get_the_state_only(login, app):
    # Site staff may not watch the network; a wrong or revoked token is not refused (a load balancer with a
    # stale header must keep working), it just reads no details.
    assert login(Role.SITE_STAFF).get("/healthz").get_json()["problems"] == ["worker"]
    response = app.test_client().get("/healthz", headers={"Authorization": "Bearer vcops_not-a-token"})
    assert response.status_code == 503
    assert response.get_json()["problems"] == ["worker"]
    odd = app.test_client().get("/healthz", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert (odd.status_code, odd.get_json()["problems"]) == (503, ["worker"])


def test_health_is_200_when_a_worker_checked_in_recently(api, session):
    session.add(WorkerCheckin(name="w1", seen_at=utcnow() - dt.timedelta(seconds=20)))
    session.commit()
    body = api(Role.OPERATOR).get("/healthz").get_json()
    assert body["status"] == "ok"
    assert 19 <= body["checks"]["worker"]["last_check_in_seconds_ago"] < 60


def test_health_tells_an_operator_how_long_a_stale_worker_has_been_silent(api, session):
    session.add(WorkerCheckin(name="w1", seen_at=utcnow() - dt.timedelta(minutes=10)))
    session.commit()
    response = api(Role.OPERATOR).get("/healthz")
    assert response.status_code == 503
    assert "no worker has checked in for 6" in response.get_json()["problems"][0]


def test_a_database_that_does_not_answer_is_named_to_anyone_and_described_only_in_the_log(fresh_app, caplog):
    app = fresh_app("sqlite")
    from app.db import db

    with app.app_context():
        db.session.add(WorkerCheckin(name="w", seen_at=utcnow()))
        db.session.commit()
    engine = sa.create_engine(UNREACHABLE_DATABASE, connect_args={"connect_timeout": 5})
    db.bind_to(engine)
    try:
        with caplog.at_level(logging.WARNING, logger="app.web.health"):
            response = app.test_client().get("/healthz")
    finally:
        engine.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == {"ok": False}
    assert "database" in body["problems"]
    text = response.get_data(as_text=True)
    assert "127.0.0.1" not in text and "OperationalError" not in text and "vcops@" not in text
    logged = [r.getMessage() for r in caplog.records if "health check database failed" in r.getMessage()]
    assert logged and "127.0.0.1" in logged[0] and "OperationalError" in logged[0]
