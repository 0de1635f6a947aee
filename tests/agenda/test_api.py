"""The agenda and its documents through the JSON API: the same rules as the pages, the one error format."""

from __future__ import annotations

import hashlib
import io

import pytest

from app.auth.models import Role
from app.calendar import invitations

from .conftest import HTML, minimal_docx, minimal_pdf


@pytest.fixture(autouse=True)
def _no_mail(monkeypatch):
    monkeypatch.setattr(invitations, "queue", lambda *args, **kwargs: None)


def test_secretariat_builds_and_publishes_an_agenda_through_the_api(api, meeting):
    secretariat = api(Role.SECRETARIAT)
    base = f"/api/v1/meetings/{meeting.id}"
    first = secretariat.post(f"{base}/agenda/items", json={"title": "Khai mạc", "presenter": "Chủ tịch",
                                                            "minutes": 5})
    assert first.status_code == 201, first.get_json()
    second = secretariat.post(f"{base}/agenda/items", json={"title": "Báo cáo quý 3", "minutes": 30}).get_json()
    moved = secretariat.patch(f"{base}/agenda/items/{second['id']}", json={"position": 1, "minutes": 25})
    assert moved.status_code == 200 and moved.get_json()["position"] == 1 and moved.get_json()["minutes"] == 25

    pdf = minimal_pdf()
    upload = secretariat.post(f"{base}/documents", data={"file": (io.BytesIO(pdf), "Báo cáo quý 3.pdf"),
                                                         "item_id": str(second["id"])},
                              content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    document = upload.get_json()
    assert document["kind"] == "pdf" and document["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert document["item_id"] == second["id"] and document["version"] is None
    assert secretariat.post(f"{base}/documents", data={"file": (io.BytesIO(minimal_docx()), "Kế hoạch.docx")},
                            content_type="multipart/form-data").status_code == 201

    published = secretariat.post(f"{base}/agenda/publish")
    assert published.status_code == 201
    assert published.headers["Location"].endswith(f"{base}/agenda/versions/1")
    version = published.get_json()
    assert version["number"] == 1 and [i["title"] for i in version["items"]] == ["Báo cáo quý 3", "Khai mạc"]
    assert [d["filename"] for d in version["items"][0]["documents"]] == ["Báo cáo quý 3.pdf"]
    assert {d["filename"] for d in version["documents"]} == {"Báo cáo quý 3.pdf", "Kế hoạch.docx"}

    again = secretariat.post(f"{base}/agenda/publish")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "unchanged"

    listing = api(Role.VIEWER).get(f"{base}/documents").get_json()
    assert len(listing["current"]) == 2 and len(listing["draft"]) == 2
    download = api(Role.VIEWER).get(listing["current"][0]["download_url"].replace("http://localhost", ""))
    assert download.status_code == 200 and download.data in (pdf, minimal_docx())

    shown = api(Role.VIEWER).get(f"{base}/agenda").get_json()
    assert shown["current"]["number"] == 1 and shown["draft"] is None
    assert [v["number"] for v in shown["versions"]] == [1]
    assert api(Role.SECRETARIAT).get(f"{base}/agenda").get_json()["draft"]["pending_changes"] == []


def test_a_refused_upload_answers_in_the_one_error_format(api, meeting, stored):
    before = stored()
    response = api(Role.SECRETARIAT).post(f"/api/v1/meetings/{meeting.id}/documents",
                                          data={"file": (io.BytesIO(HTML), "Báo cáo.pdf")},
                                          content_type="multipart/form-data")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "file_type" and "HTML" in error["message"] and "file" in error["fields"]
    assert stored() == before

    missing = api(Role.SECRETARIAT).post(f"/api/v1/meetings/{meeting.id}/documents", data={"item_id": "1"},
                                         content_type="multipart/form-data")
    assert missing.status_code == 422 and "file" in missing.get_json()["error"]["fields"]


def test_only_the_secretariat_changes_the_agenda_through_the_api(api, meeting):
    base = f"/api/v1/meetings/{meeting.id}"
    for role in (Role.VIEWER, Role.TECHNICIAN, Role.SITE_STAFF):
        assert api(role).post(f"{base}/agenda/items", json={"title": "X"}).status_code == 403
        assert api(role).post(f"{base}/agenda/publish").status_code == 403
    bad = api(Role.SECRETARIAT).post(f"{base}/agenda/items", json={"title": "", "minutes": -1, "colour": "red"})
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"title", "minutes", "colour"}


def test_the_openapi_document_describes_the_agenda_and_stays_valid(client):
    validator = pytest.importorskip("openapi_spec_validator")
    spec = client.get("/api/v1/openapi.json").get_json()
    validator.validate(spec)
    paths = spec["paths"]
    upload = paths["/api/v1/meetings/{meeting_id}/documents"]["post"]["requestBody"]["content"]
    assert set(upload["multipart/form-data"]["schema"]["$ref"].split("/")[-1:]) == {"DocumentUpload"}
    for path in ("/api/v1/meetings/{meeting_id}/agenda", "/api/v1/meetings/{meeting_id}/agenda/publish",
                 "/api/v1/meetings/{meeting_id}/documents/{document_id}/download"):
        assert path in paths
