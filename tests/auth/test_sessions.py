"""Sessions end: logout, a new password, an admin's deactivation or reset end every session of the user (a copied
cookie included); an idle session and one past its lifetime end on their own; "remember me" is a choice; a
generated password is replaced at the first login; guesses at one account count from every address."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import sqlalchemy as sa

from app.auth.access import LOGIN_AT, SEEN_AT
from app.auth.audit import AuditEntry
from app.auth.models import Role, User
from app.auth.service import create_user
from app.db import commit_scope, db
from tests.conftest import PASSWORD

NEW_PASSWORD = "mot mat khau rieng cua toi"


@pytest.fixture
def store(app):
    """The test's database, without an app context left pushed (requests must each load their own user)."""
    session = db.sessionmaker()
    yield session
    session.close()


def _user(store, email):
    store.expire_all()
    return store.scalar(sa.select(User).where(User.email == email))


def _login(client, email, password=PASSWORD, **data):
    return client.post("/login", data={"email": email, "password": password, **data})


def _browser_with(app, role):
    client = app.test_client()
    assert _login(client, f"{role.value}@example.com").status_code == 302
    return client


def _copy_of(app, client):
    """A second browser holding the same session cookie (what someone who copied the cookie has)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def _logged_in(client) -> bool:
    return client.get("/profile").status_code == 200


def _sent_to_login(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def _last(store, action):
    return store.scalar(sa.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id.desc()))


def _move_back(client, *, login_minutes=0.0, seen_minutes=0.0):
    """Move the session's clock: its login and its last use as if they happened that long ago."""
    with client.session_transaction() as cookie:
        cookie[LOGIN_AT] -= login_minutes * 60
        cookie[SEEN_AT] -= seen_minutes * 60


# ---------------------------------------------------------------- what ends every session of a user

def test_a_copied_session_cookie_stops_working_after_logout(app, store):
    browser = _browser_with(app, Role.OPERATOR)
    thief = _copy_of(app, browser)
    assert _logged_in(thief)  # the copy works as long as the session stands
    assert _sent_to_login(browser.post("/logout"))
    assert _sent_to_login(thief.get("/profile"))
    assert _sent_to_login(thief.get("/sites"))
    entry = _last(store, "sessions_end")
    assert entry.summary == "operator@example.com: logout"
    assert entry.actor == "operator@example.com"


def test_after_a_password_change_the_other_sessions_are_logged_out_and_this_one_goes_on(app, store):
    at_work, at_home = _browser_with(app, Role.SECRETARIAT), _browser_with(app, Role.SECRETARIAT)
    response = at_work.post("/profile/password", data={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert _logged_in(at_work)
    assert _sent_to_login(at_home.get("/profile"))
    assert _last(store, "sessions_end").summary == "secretariat@example.com: password_change"


def test_an_admin_deactivating_a_user_ends_their_sessions_for_good_and_stops_their_tokens(app, login, store):
    operator_browser = _browser_with(app, Role.OPERATOR)
    operator = _user(store, "operator@example.com")
    admin = login(Role.ADMIN)
    assert admin.post(f"/users/{operator.id}", data={"name": "operator", "role": "operator"}).status_code == 302
    bearer = {"Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.OPERATOR]}"}
    assert app.test_client().get("/api/v1/sites", headers=bearer).status_code == 401
    # Made active again, the user logs in anew: the session from before the deactivation stays ended.
    assert admin.post(f"/users/{operator.id}", data={"name": "operator", "role": "operator",
                                                     "active": "y"}).status_code == 302
    assert _sent_to_login(operator_browser.get("/profile"))
    assert app.test_client().get("/api/v1/sites", headers=bearer).status_code == 200
    assert _last(store, "sessions_end").summary == "operator@example.com: deactivated"


def test_an_admin_resetting_a_password_ends_the_users_sessions_and_they_choose_their_own(app, login, store):
    viewer_browser = _browser_with(app, Role.VIEWER)
    viewer = _user(store, "viewer@example.com")
    given = "mat khau do quan tri dat"
    assert login(Role.ADMIN).post(f"/users/{viewer.id}/password", data={"password": given}).status_code == 302
    assert _sent_to_login(viewer_browser.get("/profile"))
    assert _last(store, "sessions_end").summary == "viewer@example.com: password_reset"

    browser = app.test_client()
    assert _login(browser, "viewer@example.com", given).status_code == 302
    assert browser.get("/sites").headers["Location"] == "/password/new"
    same = browser.post("/password/new", data={"new_password": given, "confirm": given})
    assert same.status_code == 422
    assert "Choose a password other than the one you were given." in same.get_data(as_text=True)
    assert browser.post("/password/new", data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
                        ).status_code == 302
    assert browser.get("/sites").status_code == 200
    assert _user(store, "viewer@example.com").must_change_password is False


def test_api_tokens_are_not_sessions_and_keep_working_after_logout(app):
    browser = _browser_with(app, Role.TECHNICIAN)
    browser.post("/logout")
    bearer = {"Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.TECHNICIAN]}"}
    assert app.test_client().get("/api/v1/sites", headers=bearer).status_code == 200


# ---------------------------------------------------------------- sessions that end on their own

def test_a_session_left_unused_past_the_idle_timeout_ends(app, store):
    assert app.config["SESSION_IDLE_MINUTES"] == 120
    browser = _browser_with(app, Role.OPERATOR)
    _move_back(browser, login_minutes=119, seen_minutes=119)
    assert _logged_in(browser)  # used within the two hours: it goes on, and counts from now
    _move_back(browser, seen_minutes=121)
    response = browser.get("/profile")
    assert _sent_to_login(response)
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session ended after 120 minutes without use; please log in again." in page
    assert _last(store, "session_expire").summary == "operator@example.com: idle"


def test_a_busy_session_still_ends_at_its_lifetime(app, store):
    assert app.config["SESSION_LIFETIME_HOURS"] == 12
    browser = _browser_with(app, Role.OPERATOR)
    _move_back(browser, login_minutes=11 * 60 + 59)
    assert _logged_in(browser)
    _move_back(browser, login_minutes=2)  # twelve hours and a minute after the login, used a moment ago
    assert _sent_to_login(browser.get("/profile"))
    assert _last(store, "session_expire").summary == "operator@example.com: lifetime"


def test_remember_me_is_a_choice_that_outlives_the_browser_and_the_idle_timeout_but_not_a_logout(app):
    plain = app.test_client()
    cookie = _login(plain, "viewer@example.com").headers["Set-Cookie"]
    assert "Expires=" not in cookie  # a browser-session cookie: gone when the browser closes

    remembered = app.test_client()
    response = _login(remembered, "viewer@example.com", remember="y")
    expires = re.search(r"Expires=([^;]+)", response.headers["Set-Cookie"])
    assert expires, response.headers["Set-Cookie"]
    _move_back(remembered, login_minutes=3 * 24 * 60, seen_minutes=3 * 24 * 60)  # three days off
    assert _logged_in(remembered)
    _move_back(remembered, login_minutes=5 * 24 * 60)  # eight days after the login
    assert _sent_to_login(remembered.get("/profile"))

    again = app.test_client()
    _login(again, "viewer@example.com", remember="y")
    copy = _copy_of(app, again)
    again.post("/logout")
    assert _sent_to_login(copy.get("/profile"))


# ---------------------------------------------------------------- generated passwords

def test_the_demo_admin_chooses_a_new_password_at_first_login_then_sets_up_two_factor(fresh_app):
    from app.sites.commands import seed_demo

    # The shipped requirement, as `make run` has it: admins and technicians sign in with a second factor.
    app = fresh_app("sqlite", TWO_FACTOR_REQUIRED_ROLES="admin,technician")
    result = app.test_cli_runner().invoke(seed_demo, [])
    assert result.exit_code == 0, result.output
    email, password = re.search(r"demo admin: (\S+)\s+password: (\S+)", result.output).groups()
    assert "you choose your own at the first login" in result.output

    browser = app.test_client()
    assert _login(browser, email, password).status_code == 302
    for path in ("/", "/sites", "/users", "/profile"):
        assert browser.get(path).headers.get("Location") == "/password/new", path
    assert browser.get("/api/v1/sites").status_code == 403
    assert browser.post("/password/new", data={"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
                        ).status_code == 302
    # Next, the second factor its role needs; then the rest.
    assert browser.get("/sites").headers["Location"] == "/profile/two-factor"
    page = browser.get("/profile/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert browser.post("/profile/two-factor", data={"code": pyotp.TOTP(secret).now()}).status_code == 201
    assert browser.get("/users").status_code == 200
    assert _login(app.test_client(), email, password).status_code == 401  # the printed password is spent


def test_an_admin_creates_a_user_without_a_password_and_one_is_generated_and_shown_once(app, login, store):
    admin = login(Role.ADMIN)
    response = admin.post("/users/new", data={"email": "tho@example.com", "role": "viewer", "name": "Thơ"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    password = re.search(r'id="generated-password">([^<]+)<', response.get_data(as_text=True)).group(1)
    assert _user(store, "tho@example.com").must_change_password is True
    browser = app.test_client()
    assert _login(browser, "tho@example.com", password).status_code == 302
    assert browser.get("/").headers["Location"] == "/password/new"


def test_user_add_with_a_generated_password_prints_it_once_and_asks_for_a_new_one(fresh_app):
    from app.auth.commands import user_add

    app = fresh_app("sqlite")
    result = app.test_cli_runner().invoke(user_add, ["lan@example.com", "--role", "operator",
                                                     "--generate-password"])
    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)", result.output).group(1)
    browser = app.test_client()
    assert _login(browser, "lan@example.com", password).status_code == 302
    assert browser.get("/").headers["Location"] == "/password/new"


# ---------------------------------------------------------------- guessing

def test_guesses_at_one_account_are_limited_from_every_address_together(fresh_app):
    app = fresh_app("sqlite", LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    with app.app_context(), commit_scope() as session:
        create_user(session, "chu.tich@example.com", Role.SECRETARIAT, PASSWORD)
        create_user(session, "van.thu@example.com", Role.SECRETARIAT, PASSWORD)
    client = app.test_client()
    first, second = {"REMOTE_ADDR": "198.18.0.21"}, {"REMOTE_ADDR": "198.18.0.22"}
    for _ in range(3):
        assert client.post("/login", data={"email": "chu.tich@example.com", "password": "doan thu mot"},
                           environ_overrides=first).status_code == 401
    # From another address, even the right password waits: the account has had its guesses.
    refused = client.post("/login", data={"email": "Chu.Tich@example.com", "password": PASSWORD},
                          environ_overrides=second)
    assert refused.status_code == 429
    assert "Too many failed attempts for this account. Try again in 1 minute." in refused.get_data(as_text=True)
    # Another account from that address is not held back.
    assert app.test_client().post("/login", data={"email": "van.thu@example.com", "password": PASSWORD},
                                  environ_overrides=second).status_code == 302


def test_an_owner_logging_in_often_is_not_counted_as_guessing(fresh_app):
    app = fresh_app("sqlite", LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    with app.app_context(), commit_scope() as session:
        create_user(session, "chu.tich@example.com", Role.SECRETARIAT, PASSWORD)
    for _ in range(5):
        assert _login(app.test_client(), "chu.tich@example.com").status_code == 302


def test_a_session_stamp_is_kept_fresh_without_a_new_cookie_on_every_request(app):
    browser = _browser_with(app, Role.VIEWER)
    with browser.session_transaction() as cookie:
        seen = cookie[SEEN_AT]
    assert browser.get("/profile").status_code == 200
    with browser.session_transaction() as cookie:
        assert cookie[SEEN_AT] == seen  # a second later: unchanged
    _move_back(browser, seen_minutes=5)
    assert browser.get("/profile").status_code == 200
    with browser.session_transaction() as cookie:
        assert time.time() - cookie[SEEN_AT] < 60
