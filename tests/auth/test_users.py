"""Users: each manages their own password and language; an admin creates, edits, deactivates and resets
users, and can neither lock themself out nor leave the province without an admin."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.auth.models import Role, User
from app.auth.service import update_user
from app.db import db
from app.errors import Conflict
from tests.conftest import PASSWORD


@pytest.fixture
def store(app):
    """The test's database, without an app context left pushed. (The `session` fixture keeps one pushed, so
    every request in the test shares its `g` and Flask-Login's cached user outlives a change.)"""
    session = db.sessionmaker()
    yield session
    session.close()


def _user(store, email):
    store.expire_all()
    return store.scalar(sa.select(User).where(User.email == email))


def _logs_in(app, email, password):
    response = app.test_client().post("/login", data={"email": email, "password": password})
    return response.status_code == 302


# ---------------------------------------------------------------- one's own profile

def test_operator_changes_their_password_with_the_current_one(login, app):
    response = login(Role.OPERATOR).post("/profile/password", data={
        "current_password": PASSWORD, "new_password": "a much longer secret", "confirm": "a much longer secret"})
    assert response.status_code == 302
    assert _logs_in(app, "operator@example.com", "a much longer secret")
    assert not _logs_in(app, "operator@example.com", PASSWORD)


def test_password_change_is_refused_when_the_current_password_is_wrong(login, app):
    response = login(Role.OPERATOR).post("/profile/password", data={
        "current_password": "a wrong guess", "new_password": "a much longer secret",
        "confirm": "a much longer secret"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The current password is wrong." in page
    assert 'data-field="current_password">wrong password<' in page
    assert _logs_in(app, "operator@example.com", PASSWORD)


def test_new_password_must_be_long_enough_and_typed_twice_alike(login):
    client = login(Role.VIEWER)
    for new, confirm, problem in [("short", "short", "At least 10 characters."),
                                  ("a much longer secret", "another long secret", "The two new passwords differ.")]:
        response = client.post("/profile/password", data={
            "current_password": PASSWORD, "new_password": new, "confirm": confirm})
        assert response.status_code == 422
        assert problem in response.get_data(as_text=True)


def test_user_switches_the_interface_to_english_and_it_is_remembered(login, app, store):
    client = login(Role.SECRETARIAT)
    assert 'lang="vi"' in client.get("/profile").get_data(as_text=True)
    assert client.post("/profile/language", data={"language": "en"}).status_code == 302
    assert 'lang="en"' in client.get("/profile").get_data(as_text=True)
    assert _user(store, "secretariat@example.com").language == "en"


def test_unknown_language_is_refused(login):
    assert login(Role.SECRETARIAT).post("/profile/language", data={"language": "fr"}).status_code == 422


# ---------------------------------------------------------------- the users admin

def _listed(page):
    return re.findall(r'<td><a href="/users/\d+">([^<]+)</a></td>', page)


def test_admin_finds_users_by_search_and_role(login):
    client = login(Role.ADMIN)
    assert _listed(client.get("/users", query_string={"q": "TECHNICIAN@"}).get_data(as_text=True)) == [
        "technician@example.com"]
    assert _listed(client.get("/users", query_string={"role": "site_staff"}).get_data(as_text=True)) == [
        "site_staff@example.com"]
    assert client.get("/users", query_string={"role": "pope"}).status_code == 422


def test_admin_creates_a_site_staff_user_who_must_belong_to_a_site(login, app, store):
    client = login(Role.ADMIN)
    form = {"email": "Can.Bo@MinhXuan.example.vn", "name": "Cán bộ Minh Xuân", "role": "site_staff",
            "site": "", "password": "mot mat khau dai"}
    refused = client.post("/users/new", data=form)
    assert refused.status_code == 422
    assert 'data-field="site">Required for site staff.<' in refused.get_data(as_text=True)

    unknown_site = client.post("/users/new", data={**form, "site": "TQ-NOWHERE"})
    assert unknown_site.status_code == 422
    assert 'data-field="site">no such site<' in unknown_site.get_data(as_text=True)
    assert _user(store, "can.bo@minhxuan.example.vn") is None

    created = client.post("/users/new", data={**form, "site": "TQ-TP-MX"})
    assert created.status_code == 302
    user = _user(store, "can.bo@minhxuan.example.vn")
    assert (user.role, user.site.code, user.name) == (Role.SITE_STAFF, "TQ-TP-MX", "Cán bộ Minh Xuân")
    assert _logs_in(app, "can.bo@minhxuan.example.vn", "mot mat khau dai")


def test_admin_cannot_create_a_second_user_with_the_same_email(login):
    response = login(Role.ADMIN).post("/users/new", data={
        "email": "viewer@example.com", "role": "viewer", "password": "mot mat khau dai"})
    assert response.status_code == 409
    assert 'data-field="email">already taken<' in response.get_data(as_text=True)


def test_admin_demotes_another_user(login, store):
    technician = _user(store, "technician@example.com")
    response = login(Role.ADMIN).post(f"/users/{technician.id}", data={
        "name": "Kỹ thuật viên", "role": "viewer", "site": "", "active": "y"})
    assert response.status_code == 302
    technician = _user(store, "technician@example.com")
    assert (technician.role, technician.name, technician.active) == (Role.VIEWER, "Kỹ thuật viên", True)


def test_deactivated_user_is_logged_out_and_their_tokens_stop_working(login, app, store):
    operator_browser = app.test_client()
    assert operator_browser.post("/login", data={"email": "operator@example.com", "password": PASSWORD}
                                 ).status_code == 302
    operator = _user(store, "operator@example.com")
    response = login(Role.ADMIN).post(f"/users/{operator.id}", data={"name": "operator", "role": "operator"})
    assert response.status_code == 302
    assert _user(store, "operator@example.com").active is False
    assert operator_browser.get("/profile").status_code == 302  # back to the login page
    bearer = {"Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.OPERATOR]}"}
    assert app.test_client().get("/profile", headers=bearer).status_code == 401


def test_admin_cannot_demote_or_deactivate_themself(login, store):
    admin = _user(store, "admin@example.com")
    client = login(Role.ADMIN)
    for change, field, problem in [({"role": "viewer", "active": "y"}, "role", "you cannot demote yourself"),
                                   ({"role": "admin"}, "active", "you cannot deactivate yourself")]:
        response = client.post(f"/users/{admin.id}", data={"name": "admin", "site": "", **change})
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        assert "You cannot demote or deactivate yourself; ask another admin." in page
        assert f'data-field="{field}">{problem}<' in page
    admin = _user(store, "admin@example.com")
    assert (admin.role, admin.active) == (Role.ADMIN, True)


def test_last_active_admin_cannot_be_demoted_or_deactivated(store):
    admin = _user(store, "admin@example.com")
    for change in ({"role": Role.VIEWER, "active": True}, {"role": Role.ADMIN, "active": False}):
        with pytest.raises(Conflict, match="admin@example.com is the last active admin"):
            update_user(store, admin, name="admin", site_code=None, by=None, **change)
        store.rollback()


def test_admin_may_demote_another_admin_while_one_remains(login, store):
    client = login(Role.ADMIN)
    assert client.post("/users/new", data={"email": "admin2@example.com", "role": "admin",
                                           "password": "mot mat khau dai"}).status_code == 302
    second = _user(store, "admin2@example.com")
    assert client.post(f"/users/{second.id}", data={"role": "viewer", "active": "y"}).status_code == 302
    assert _user(store, "admin2@example.com").role is Role.VIEWER


def test_admin_resets_a_forgotten_password(login, app, store):
    viewer = _user(store, "viewer@example.com")
    client = login(Role.ADMIN)
    short = client.post(f"/users/{viewer.id}/password", data={"password": "short"})
    assert short.status_code == 422 and "At least 10 characters." in short.get_data(as_text=True)
    assert client.post(f"/users/{viewer.id}/password", data={"password": "mot mat khau moi"}).status_code == 302
    assert _logs_in(app, "viewer@example.com", "mot mat khau moi")


def test_editing_a_user_that_does_not_exist_is_404(login):
    assert login(Role.ADMIN).get("/users/999999").status_code == 404


def test_only_admins_open_the_users_pages(api):
    for role in (Role.TECHNICIAN, Role.SECRETARIAT, Role.SITE_STAFF):
        for path in ("/users", "/users/new", "/users/1"):
            assert api(role).get(path).status_code == 403, (role, path)
