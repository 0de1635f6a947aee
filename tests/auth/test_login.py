"""Logging in: one answer for every wrong guess, deactivated accounts stay out, guessing is slowed down,
cookies cannot be read by scripts or sent cross-site, `next` never leaves the site, forms need their token."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import Role, User
from app.auth.service import create_user
from app.db import commit_scope, db
from tests.conftest import PASSWORD


@pytest.fixture
def store(app):
    """The test's database, without an app context left pushed. (The `session` fixture keeps one pushed, so
    every request in the test shares its `g` and Flask-Login's cached user outlives a revoked token.)"""
    session = db.sessionmaker()
    yield session
    session.close()


def _login(client, email, password=PASSWORD, **kwargs):
    return client.post("/login", data={"email": email, "password": password}, **kwargs)


def test_technician_logs_in_and_lands_on_the_page_they_asked_for(client):
    response = _login(client, "technician@example.com", query_string={"next": "/sites?q=TQ"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/sites?q=TQ"
    assert client.get("/profile").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(client):
    wrong_password = _login(client, "technician@example.com", "not the password")
    unknown_email = _login(client, "nobody@example.com", "not the password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert "Wrong email or password." in wrong_password.get_data(as_text=True)
    assert "Wrong email or password." in unknown_email.get_data(as_text=True)
    assert client.get("/profile").status_code == 302  # still logged out


def test_login_form_names_the_missing_field(client):
    response = client.post("/login", data={"email": "technician@example.com", "password": ""})
    assert response.status_code == 422
    assert re.search(r'data-field="password">[^<]+<', response.get_data(as_text=True))


def test_deactivated_user_cannot_log_in_even_with_the_right_password(client, store):
    user = store.scalar(sa.select(User).where(User.email == "viewer@example.com"))
    user.active = False
    store.commit()
    response = _login(client, "viewer@example.com")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_each_login_is_in_the_audit_log(login, store):
    login(Role.OPERATOR)
    entry = store.scalar(sa.select(AuditEntry).where(AuditEntry.action == "login")
                           .order_by(AuditEntry.id.desc()))
    assert entry.actor == "operator@example.com"
    assert entry.object_type == "User"


def test_login_never_redirects_to_another_site(app, client):
    from app.auth.routes import _safe_next

    with app.test_request_context():
        for target in ("https://evil.example/phish", "//evil.example/phish", "/\\evil.example", "/\t/evil.example",
                       "javascript:alert(1)", "http:/evil.example", "", None):
            assert _safe_next(target) == "/", target
        assert _safe_next("/sites/4?tab=links") == "/sites/4?tab=links"
    response = _login(client, "viewer@example.com", query_string={"next": "//evil.example/phish"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_attempts_are_rate_limited_per_address(fresh_app):
    app = fresh_app("sqlite", LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for _ in range(3):
        assert _login(client, "guess@example.com", "guess guess guess").status_code == 401
    refused = _login(client, "guess@example.com", "guess guess guess")
    assert refused.status_code == 429
    assert "Too many login attempts from your address. Try again in 1 minute." in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    # Another address is not held back by this one's guesses.
    other = _login(client, "guess@example.com", "guess guess guess", environ_base={"REMOTE_ADDR": "198.18.0.9"})
    assert other.status_code == 401


def test_session_cookie_is_httponly_samesite_lax_and_secure_behind_https(fresh_app):
    app = fresh_app("sqlite", BASE_URL="https://vcops.example.vn")
    with app.app_context(), commit_scope() as session:
        create_user(session, "admin@example.com", Role.ADMIN, PASSWORD)
    response = _login(app.test_client(), "admin@example.com", base_url="https://vcops.example.vn")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie


def test_session_cookie_is_not_marked_secure_on_plain_http(client):
    cookie = _login(client, "viewer@example.com").headers["Set-Cookie"]
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie and "Secure" not in cookie


def test_a_form_posted_without_its_csrf_token_is_refused(fresh_app):
    app = fresh_app("sqlite", WTF_CSRF_ENABLED=True)
    with app.app_context(), commit_scope() as session:
        create_user(session, "admin@example.com", Role.ADMIN, PASSWORD)
    client = app.test_client()
    assert _login(client, "admin@example.com").status_code == 400
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    # Logged in, a change without the token is refused too, and nothing is saved.
    assert client.post("/profile/tokens", data={"name": "nightly-backup-job"}).status_code == 400
    assert "nightly-backup-job" not in client.get("/profile").get_data(as_text=True)


def test_the_embedded_rate_limit_storage_counts_in_a_file_every_process_opens(tmp_path):
    # What each gunicorn worker of the embedded mode does with its own connection: count in one shared file.
    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    uri = f"vcops+sqlite:///{tmp_path / 'ratelimits.db'}"
    workers = [FixedWindowRateLimiter(storage_from_string(uri)) for _ in range(4)]
    limit = parse("5 per minute")
    allowed = [workers[i % 4].hit(limit, "198.18.0.7", "login") for i in range(12)]
    assert allowed == [True] * 5 + [False] * 7
    assert workers[0].hit(limit, "198.18.0.8", "login")  # another address counts on its own
    assert 55 < workers[3].get_window_stats(limit, "198.18.0.7", "login").reset_time - time.time() <= 60
    workers[1].storage.clear(limit.key_for("198.18.0.7", "login"))
    assert workers[2].hit(limit, "198.18.0.7", "login")


def test_a_rate_limit_storage_url_without_a_file_is_refused():
    from limits.storage import storage_from_string

    with pytest.raises(ValueError, match="name the file"):
        storage_from_string("vcops+sqlite://")
