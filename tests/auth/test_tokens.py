"""API tokens: made on one's profile, the secret shown once, sent as a bearer token, revoked for good."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.auth.models import ApiToken, Role, User
from app.db import db


@pytest.fixture
def store(app):
    """The test's database, without an app context left pushed. (The `session` fixture keeps one pushed, so
    every request in the test shares its `g` and Flask-Login's cached user outlives a revoked token.)"""
    session = db.sessionmaker()
    yield session
    session.close()


def _create_token(client, name="nightly backup script"):
    response = client.post("/profile/tokens", data={"name": name})
    assert response.status_code == 201, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    secret = re.search(r'<code id="new-token-secret">([^<]+)</code>', page).group(1)
    return secret, page


def _token_id(store, secret_prefix):
    return store.scalar(sa.select(ApiToken.id).where(ApiToken.prefix == secret_prefix))


def test_technician_creates_a_token_and_sees_its_secret_only_once(login):
    client = login(Role.TECHNICIAN)
    secret, page = _create_token(client)
    assert "shown only this once" in page
    profile = client.get("/profile").get_data(as_text=True)
    assert secret not in profile
    assert "nightly backup script" in profile and f"{secret[:10]}…" in profile  # told apart by its prefix


def test_page_with_the_new_secret_is_not_cached(login):
    response = login(Role.VIEWER).post("/profile/tokens", data={"name": "cron"})
    assert response.headers["Cache-Control"] == "no-store"


def test_token_from_the_profile_works_as_a_bearer_token(login, app):
    secret, _ = _create_token(login(Role.OPERATOR))
    response = app.test_client().get("/profile", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert "operator@example.com" in response.get_data(as_text=True)


def test_revoked_token_is_refused_with_401(login, app, store):
    client = login(Role.OPERATOR)
    secret, _ = _create_token(client)
    response = client.post(f"/profile/tokens/{_token_id(store, secret[:10])}/revoke")
    assert response.status_code == 302
    assert "is revoked" in client.get("/profile").get_data(as_text=True)
    refused = app.test_client().get("/profile", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    assert "unknown or revoked" in refused.get_data(as_text=True)


def test_token_without_a_name_is_refused_with_the_reason(login):
    response = login(Role.VIEWER).post("/profile/tokens", data={"name": ""})
    assert response.status_code == 422
    assert 'data-field="name"' in response.get_data(as_text=True)
    assert "new-token-secret" not in response.get_data(as_text=True)


def test_user_cannot_revoke_someone_elses_token(login, store, app):
    other_token = store.scalar(sa.select(ApiToken).join(User).where(User.email == "secretariat@example.com"))
    response = login(Role.VIEWER).post(f"/profile/tokens/{other_token.id}/revoke")
    assert response.status_code == 404
    assert app.test_client().get("/profile", headers={
        "Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.SECRETARIAT]}"}).status_code == 200


def test_admin_revokes_any_users_token(login, store, app):
    user = store.scalar(sa.select(User).where(User.email == "secretariat@example.com"))
    token = store.scalar(sa.select(ApiToken).where(ApiToken.user_id == user.id))
    client = login(Role.ADMIN)
    assert f"{token.prefix}…" in client.get(f"/users/{user.id}").get_data(as_text=True)
    assert client.post(f"/users/{user.id}/tokens/{token.id}/revoke").status_code == 302
    assert app.test_client().get("/profile", headers={
        "Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.SECRETARIAT]}"}).status_code == 401
