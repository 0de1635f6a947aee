"""Headers of every answer: HSTS when the app is served over https, and `Cache-Control: no-store` on whatever
carries personal or secret data (every page of a logged-in user, every API answer), so that a shared office
computer's browser cache keeps nothing once the session has ended."""

from __future__ import annotations

from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope
from tests.conftest import PASSWORD


def test_https_deployments_tell_browsers_to_use_https_only(fresh_app):
    app = fresh_app("sqlite", BASE_URL="https://vcops.tuyenquang.example.vn")
    response = app.test_client().get("/login", base_url="https://vcops.tuyenquang.example.vn")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_plain_http_sends_no_hsts(client):
    # On http (the demo on 127.0.0.1) the header would be ignored at best, and pin a name that has no https.
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_pages_of_a_logged_in_user_are_not_stored_by_the_browser(login):
    client = login(Role.SECRETARIAT)
    for path in ("/", "/profile", "/meetings", "/sites"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path


def test_api_answers_are_not_stored_errors_included(api, client):
    assert api(Role.VIEWER).get("/api/v1/sites").headers["Cache-Control"] == "no-store"
    refused = client.get("/api/v1/sites")
    assert refused.status_code == 401
    assert refused.headers["Cache-Control"] == "no-store"


def test_public_pages_and_style_sheets_stay_cacheable(login, client):
    assert "no-store" not in client.get("/login").headers.get("Cache-Control", "")
    browser = login(Role.VIEWER)
    assert "no-store" not in browser.get("/static/vcops.css").headers.get("Cache-Control", "")


def test_hsts_and_no_store_together_on_a_logged_in_page_over_https(fresh_app):
    base = "https://vcops.tuyenquang.example.vn"
    app = fresh_app("sqlite", BASE_URL=base)
    with app.app_context(), commit_scope() as session:
        create_user(session, "thu.ky@example.com", Role.SECRETARIAT, PASSWORD)
    browser = app.test_client()
    assert browser.post("/login", data={"email": "thu.ky@example.com", "password": PASSWORD},
                        base_url=base).status_code == 302
    page = browser.get("/profile", base_url=base)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
