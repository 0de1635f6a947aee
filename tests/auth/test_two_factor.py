"""Two-factor sign-in: admins and technicians set it up at their next login (TWO_FACTOR_REQUIRED_ROLES), then log
in with a code from their authenticator app or, once each, a recovery code; the secret is encrypted at rest and
never logged; code guesses count against the account."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import sqlalchemy as sa

from app.auth import two_factor
from app.auth.audit import AuditEntry
from app.auth.models import RecoveryCode, Role, User
from app.auth.service import create_user
from app.db import commit_scope, db
from tests.conftest import PASSWORD


@pytest.fixture
def store(app):
    session = db.sessionmaker()
    yield session
    session.close()


@pytest.fixture
def required(app, monkeypatch):
    """The shipped default: admins and technicians must sign in with a second factor."""
    monkeypatch.setitem(app.config, "TWO_FACTOR_REQUIRED_ROLES", "admin,technician")


def _user(store, email):
    store.expire_all()
    return store.scalar(sa.select(User).where(User.email == email))


def _login(client, email, password=PASSWORD, **kwargs):
    return client.post("/login", data={"email": email, "password": password}, **kwargs)


def _next_code(secret: str) -> str:
    # The code of the next 30-second step, which the server accepts (a phone's clock may run ahead): a code is
    # good once, so a login right after the enrolment needs the next one rather than a wait.
    return pyotp.TOTP(secret).at(time.time() + 30)


def _enrol(client) -> tuple[str, list[str]]:
    page = client.get("/profile/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    response = client.post("/profile/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 201, response.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    return secret, codes


def test_a_technician_must_set_up_two_factor_at_login_and_then_logs_in_with_a_code(app, required, store):
    browser = app.test_client()
    assert _login(browser, "technician@example.com").status_code == 302
    for path in ("/", "/sites", "/jobs/", "/profile"):
        assert browser.get(path).headers.get("Location") == "/profile/two-factor", path

    page = browser.get("/profile/two-factor")
    text = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "Your role needs two-factor sign-in: set it up before you go on." in text
    assert re.search(r'<img src="data:image/svg\+xml[^"]+" alt="QR code for the authenticator app"', text)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', text).group(1)
    # Reloading the page keeps the secret already scanned.
    assert secret in browser.get("/profile/two-factor").get_data(as_text=True)

    wrong = browser.post("/profile/two-factor", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000"
                                                      else "111111"})
    assert wrong.status_code == 422
    assert "That code is not the one the app shows" in wrong.get_data(as_text=True)
    done = browser.post("/profile/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 201
    assert done.headers["Cache-Control"] == "no-store"
    assert len(re.findall(r"<li><code>[a-z0-9]{5}-[a-z0-9]{5}</code></li>", done.get_data(as_text=True))) == 10
    assert browser.get("/sites").status_code == 200

    browser.post("/logout")
    password_step = _login(browser, "technician@example.com", query_string={"next": "/sites?q=TQ"})
    assert password_step.headers["Location"] == "/login/code"
    assert browser.get("/profile").status_code == 302  # not logged in between the two steps
    assert browser.post("/login/code", data={"code": "12345"}).status_code == 401
    logged_in = browser.post("/login/code", data={"code": _next_code(secret)})
    assert logged_in.headers["Location"] == "/sites?q=TQ"
    assert browser.get("/sites").status_code == 200

    # The same code again (someone who watched it typed) is refused.
    other = app.test_client()
    _login(other, "technician@example.com")
    refused = other.post("/login/code", data={"code": _next_code(secret)})
    assert refused.status_code == 401
    assert "That code is wrong, or was used already." in refused.get_data(as_text=True)


def test_the_secret_is_encrypted_at_rest_and_never_in_the_audit_log(app, required, store):
    browser = app.test_client()
    _login(browser, "admin@example.com")
    secret, _codes = _enrol(browser)
    admin = _user(store, "admin@example.com")
    assert admin.totp_secret and secret not in admin.totp_secret
    assert admin.totp_secret.startswith("gAAAA")  # a Fernet token
    for entry in store.scalars(sa.select(AuditEntry).where(AuditEntry.object_type == "User")):
        assert secret not in repr((entry.before, entry.after, entry.summary))
        assert "totp_secret" not in (entry.after or {})
    assert store.scalar(sa.select(AuditEntry.id).where(AuditEntry.action == "2fa_enable"))


def test_a_recovery_code_lets_the_user_in_once(app, required, store):
    browser = app.test_client()
    _login(browser, "admin@example.com")
    _secret, codes = _enrol(browser)
    browser.post("/logout")

    phone_lost = app.test_client()
    _login(phone_lost, "admin@example.com")
    response = phone_lost.post("/login/code", data={"code": codes[3].upper().replace("-", " ")})
    assert response.status_code == 302
    assert phone_lost.get("/users").status_code == 200
    assert "Recovery codes left: 9." in phone_lost.get("/profile/two-factor").get_data(as_text=True)
    entry = store.scalar(sa.select(AuditEntry).where(AuditEntry.action == "recovery_code_use"))
    assert entry.summary == "admin@example.com: 9 left"

    again = app.test_client()
    _login(again, "admin@example.com")
    assert again.post("/login/code", data={"code": codes[3]}).status_code == 401
    stored = store.scalars(sa.select(RecoveryCode.code_hash)).all()
    assert stored and not any(code.replace("-", "") in h for code in codes for h in stored)


def test_the_code_page_without_the_password_step_sends_back_to_login(client):
    response = client.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.post("/login/code", data={"code": "123456"}).headers["Location"] == "/login"


def test_with_the_requirement_off_two_factor_is_a_choice(app):
    browser = app.test_client()
    _login(browser, "admin@example.com")
    assert browser.get("/sites").status_code == 200  # not sent to set it up
    _secret, codes = _enrol(browser)  # but may
    assert len(codes) == 10


def test_an_admin_turns_off_the_second_factor_of_a_user_who_lost_phone_and_codes(app, required, login, store):
    browser = app.test_client()
    _login(browser, "technician@example.com")
    _enrol(browser)
    technician = _user(store, "technician@example.com")
    admin = app.test_client()
    _login(admin, "admin@example.com")
    _enrol(admin)
    assert admin.post(f"/users/{technician.id}/two-factor/off").status_code == 302
    assert browser.get("/sites").status_code == 302  # their sessions ended too
    assert _user(store, "technician@example.com").totp_enabled_at is None
    again = app.test_client()
    assert _login(again, "technician@example.com").headers["Location"] == "/"  # no code asked
    assert again.get("/sites").headers["Location"] == "/profile/two-factor"  # and set up anew


def test_guesses_at_the_code_count_against_the_account_from_every_address(fresh_app):
    app = fresh_app("sqlite", LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    with app.app_context(), commit_scope() as session:
        user = create_user(session, "ky.thuat@example.com", Role.TECHNICIAN, PASSWORD)
        secret = two_factor.pending_secret(session, user)
        two_factor.confirm_enrolment(session, user, pyotp.TOTP(secret).now())
    for address in ("198.18.0.31", "198.18.0.32", "198.18.0.33"):
        client = app.test_client()
        assert _login(client, "ky.thuat@example.com", environ_overrides={"REMOTE_ADDR": address}
                      ).status_code == 302
        assert client.post("/login/code", data={"code": "999999"},
                           environ_overrides={"REMOTE_ADDR": address}).status_code == 401
    client = app.test_client()
    assert _login(client, "ky.thuat@example.com", environ_overrides={"REMOTE_ADDR": "198.18.0.34"}
                  ).status_code == 429


def test_new_recovery_codes_replace_the_old_ones(app, store):
    browser = app.test_client()
    _login(browser, "operator@example.com")
    _secret, old = _enrol(browser)
    response = browser.post("/profile/two-factor/recovery-codes")
    assert response.status_code == 201
    new = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    browser.post("/logout")
    stale = app.test_client()
    _login(stale, "operator@example.com")
    assert stale.post("/login/code", data={"code": old[0]}).status_code == 401
    assert stale.post("/login/code", data={"code": new[0]}).status_code == 302


def test_the_console_turns_off_a_second_factor_and_ends_the_sessions(fresh_app):
    from app.auth.commands import user_two_factor_off

    app = fresh_app("sqlite")
    with app.app_context(), commit_scope() as session:
        user = create_user(session, "ky.thuat@example.com", Role.TECHNICIAN, PASSWORD)
        secret = two_factor.pending_secret(session, user)
        two_factor.confirm_enrolment(session, user, pyotp.TOTP(secret).now())
    browser = app.test_client()
    _login(browser, "ky.thuat@example.com")
    assert browser.post("/login/code", data={"code": _next_code(secret)}).status_code == 302
    result = app.test_cli_runner().invoke(user_two_factor_off, ["ky.thuat@example.com"])
    assert result.exit_code == 0, result.output
    assert browser.get("/profile").status_code == 302
    assert _login(app.test_client(), "ky.thuat@example.com").headers["Location"] == "/"
    with app.app_context():
        entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "2fa_disable"))
        assert entry.actor == "cli"
