"""Vietnamese first, English on request: refusals reach the user in the language they read.

The shared app reads English by default (tests assert on the msgids); these tests make Vietnamese the default
language, as it is in production, and then choose English the way a user or an API client does.
"""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from app.db import db
from app.sites.models import Site


@pytest.fixture
def vietnamese_by_default(app, monkeypatch):
    monkeypatch.setitem(app.config, "DEFAULT_LANGUAGE", "vi")
    return app


def _field_error(page: str, name: str) -> str:
    found = re.search(rf'id="{re.escape(name)}-error">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def _duplicate_of_na_hang(app) -> dict[str, str]:
    # A short app context of its own: Flask-Babel keeps the request's language in `g`, which requests made
    # inside a longer-lived context (the `session` fixture's) would share.
    with app.app_context():
        province = db.session.scalar(sa.select(Site.id).where(Site.code == "TQ"))
    return {"code": "TQ-NH", "name": "Huyện Trùng Mã", "level": "district", "parent_id": str(province),
            "status": "active"}


def test_a_duplicate_site_code_is_refused_in_vietnamese_and_in_english_once_chosen(vietnamese_by_default, login):
    client = login("technician")
    form = _duplicate_of_na_hang(vietnamese_by_default)

    response = client.post("/sites/new", data=form)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert _field_error(page, "code") == "đã được sử dụng"
    assert "Mã điểm cầu 'TQ-NH' đã được dùng cho Huyện Na Hang." in page
    assert 'lang="vi"' in page and "Thêm điểm cầu" in page

    client.get("/language/en")
    response = client.post("/sites/new", data=form)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert _field_error(page, "code") == "already used"
    assert "Site code 'TQ-NH' is already used by Huyện Na Hang." in page
    assert 'lang="en"' in page


def test_an_empty_required_field_is_pointed_out_in_vietnamese(vietnamese_by_default, login):
    # WTForms ships no Vietnamese: its messages come from our catalogue.
    response = login("technician").post("/endpoints/new", data={"room_name": "", "mgmt_port": "abc"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(page, "room_name") == "Không được để trống trường này."
    assert "Không phải số nguyên hợp lệ." in _field_error(page, "mgmt_port")


def test_a_page_that_does_not_exist_says_so_in_vietnamese(vietnamese_by_default, login):
    response = login("viewer").get("/no-such-page")
    assert response.status_code == 404
    assert "Không tìm thấy địa chỉ được yêu cầu" in response.get_data(as_text=True)


def test_the_api_answers_an_unknown_field_in_vietnamese_unless_the_client_asks_for_english(vietnamese_by_default,
                                                                                          api):
    body = {"code": "TQ-ZZ", "name": "Xã Thử", "level": "commune", "colour": "red"}
    client = api("technician")

    vietnamese = client.post("/api/v1/sites", json=body).get_json()["error"]
    assert vietnamese["fields"] == {"colour": ["Trường không xác định."]}
    assert vietnamese["message"] == "Dữ liệu không hợp lệ: colour: Trường không xác định."

    english = client.post("/api/v1/sites", json=body, headers={"Accept-Language": "en"}).get_json()["error"]
    assert english["fields"] == {"colour": ["Unknown field."]}
    assert english["message"] == "Invalid input: colour: Unknown field."


def test_the_api_explains_a_service_refusal_in_the_language_asked_for(vietnamese_by_default, api):
    form = _duplicate_of_na_hang(vietnamese_by_default)
    body = {**form, "parent_id": int(form["parent_id"])}
    client = api("technician")

    vietnamese = client.post("/api/v1/sites", json=body).get_json()["error"]
    assert (vietnamese["code"], vietnamese["fields"]) == ("duplicate", {"code": ["đã được sử dụng"]})
    assert vietnamese["message"] == "Mã điểm cầu 'TQ-NH' đã được dùng cho Huyện Na Hang."

    english = client.post("/api/v1/sites", json=body, headers={"Accept-Language": "en"}).get_json()["error"]
    assert english["message"] == "Site code 'TQ-NH' is already used by Huyện Na Hang."
