"""While the database does not answer, clients hear so: 503 in the one error format, never a generic 500."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.auth.service import create_token, create_user
from app.db import commit_scope, db
from app.errors import error_body
from app.web.access import public
from tests.support.served import free_port

PASSWORD = "a long enough password"
OUTAGE_MESSAGE = "The database does not answer at the moment; try again in a few moments."
SECRET = "s3cret-db-password"


@pytest.fixture
def outage_app(fresh_app) -> Iterator[tuple[Any, str, Callable[[], None]]]:
    """(app, an operator's API token, outage()): outage() points the app's sessions at a PostgreSQL server that
    is not there (a port where nothing listens), as when the database host is down."""
    app = fresh_app("sqlite", DEFAULT_LANGUAGE="vi")
    with app.app_context(), commit_scope() as session:
        user = create_user(session, "operator@example.com", Role.OPERATOR, PASSWORD)
        secret = create_token(session, user, "outage")[1]
    dead = sa.create_engine(f"postgresql+psycopg://vcops:{SECRET}@127.0.0.1:{free_port()}/vcops",
                            connect_args={"connect_timeout": 5})

    def outage() -> None:
        db.bind_to(dead)

    try:
        yield app, secret, outage
    finally:
        db.bind_to(app.extensions["vcops_engine"])
        dead.dispose()


def test_the_api_answers_503_unavailable_with_retry_after_while_the_database_is_down(outage_app, caplog):
    app, token, outage = outage_app
    client = app.test_client()
    outage()
    with caplog.at_level(logging.ERROR, logger="app.web.cycle"):
        response = client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"})

    assert response.status_code == 503
    assert response.get_json() == error_body(503, "unavailable", OUTAGE_MESSAGE)
    assert int(response.headers["Retry-After"]) > 0
    # The detail is for the operators' log, not for the client; and the log never shows the password.
    assert "127.0.0.1" not in response.get_data(as_text=True)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "database unreachable: postgresql+psycopg://vcops:***@127.0.0.1" in logged
    assert SECRET not in logged


def test_the_api_says_it_in_the_clients_language(outage_app):
    app, token, outage = outage_app
    outage()
    body = app.test_client().get("/api/v1/sites", headers={"Authorization": f"Bearer {token}",
                                                           "Accept-Language": "vi"}).get_json()
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["message"] == "Cơ sở dữ liệu hiện không phản hồi; vui lòng thử lại sau ít phút."


def test_a_signed_in_user_gets_a_503_page_saying_the_database_does_not_answer(outage_app):
    app, _token, outage = outage_app
    client = app.test_client()
    assert client.post("/login", data={"email": "operator@example.com", "password": PASSWORD}).status_code == 302
    client.get("/language/en")
    outage()
    response = client.get("/sites")

    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert OUTAGE_MESSAGE in page
    assert "psycopg" not in page and "127.0.0.1" not in page


def test_a_statement_error_is_still_a_500_not_an_outage(fresh_app):
    """Only a database that does not answer is a 503: a bug in a query must not tell clients to come back later."""
    app = fresh_app("sqlite", PROPAGATE_EXCEPTIONS=False)

    @app.get("/broken-query")
    @public("a test's view with a bug in its query")
    def broken_query() -> str:
        db.session.execute(sa.text("SELECT * FROM no_such_table"))
        return "not reached"

    response = app.test_client().get("/broken-query", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "error"
