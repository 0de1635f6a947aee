"""Documents reach only the people allowed to see the meeting, or a signed, expiring link for normal meetings."""

from __future__ import annotations

import io
import time
from urllib.parse import urlsplit

import pytest
from itsdangerous import TimestampSigner
from werkzeug.http import parse_options_header

from app.agenda import service as agenda
from app.auth.models import Role
from app.auth.service import create_token, create_user

from .conftest import minimal_pdf

NAME = "Báo cáo quý 3.pdf"


@pytest.fixture
def published(session):
    """publish(meeting, name): a published document of that meeting."""

    def make(meeting, name: str = NAME):
        agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf()), name))
        agenda.publish(session, meeting)
        session.commit()
        [document] = agenda.mail_documents(session, meeting) or agenda.latest_version(session, meeting).documents
        return document

    return make


@pytest.fixture
def restricted(book):
    return book("Họp về công tác bảo vệ bí mật nhà nước", ["TQ-TP-MX"], restricted=True, start="14:00")


def _path(document) -> str:
    return f"/meetings/{document.meeting_id}/documents/{document.id}"


def test_the_download_carries_the_vietnamese_name_the_type_and_nosniff(user, meeting, published):
    document = published(meeting)
    response = user("viewer").get(_path(document))
    assert response.status_code == 200
    assert response.data == minimal_pdf()
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition == ("attachment; filename=\"Bao cao quy 3.pdf\"; "
                           "filename*=UTF-8''B%C3%A1o%20c%C3%A1o%20qu%C3%BD%203.pdf")
    kind, params = parse_options_header(disposition)
    assert kind == "attachment" and params["filename"] == NAME  # filename* wins, decoded (RFC 6266)
    assert "no-store" in response.headers["Cache-Control"]


def test_site_staff_read_a_restricted_meeting_of_their_site_after_login(user, restricted, published):
    document = published(restricted)
    client = user("site_staff")
    page = client.get(f"/meetings/{restricted.id}/agenda")
    assert page.status_code == 200 and NAME in page.get_data(as_text=True)
    response = client.get(_path(document))
    assert response.status_code == 200 and response.data == minimal_pdf()


def test_site_staff_of_another_site_cannot_see_the_meeting_or_its_documents(app, session, api, restricted, published):
    document = published(restricted)
    other = create_user(session, "na-hang@example.com", Role.SITE_STAFF, "correct horse battery", site_code="TQ-NH")
    token = create_token(session, other)[1]
    session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    for path in (_path(document), f"/meetings/{restricted.id}/agenda",
                 f"/api/v1/meetings/{restricted.id}/documents/{document.id}/download"):
        # A client of its own for each: a bearer-token client keeping cookies trips Flask-Login's session
        # protection once an HTML page has put a CSRF token in its session (reported to the foundation).
        # 404, not 403: to staff of a site not taking part, the meeting does not exist (its title, even that
        # it exists, is not theirs to learn), as on the meeting's own page.
        assert app.test_client().get(path, headers=headers).status_code == 404, path
    # Their own site's staff get it through the API too.
    response = api(Role.SITE_STAFF).get(f"/api/v1/meetings/{restricted.id}/documents/{document.id}/download")
    assert response.status_code == 200 and response.data == minimal_pdf()


def test_site_staff_never_see_the_unpublished_draft(user, session, restricted):
    draft = agenda.add_document(session, restricted, agenda.Upload(io.BytesIO(minimal_pdf()), "nháp.pdf"))
    session.commit()
    client = user("site_staff")
    assert client.get(_path(draft)).status_code == 404
    assert user("viewer").get(_path(draft)).status_code == 200


def test_a_signed_link_downloads_without_login_for_a_normal_meeting(app, session, meeting, published):
    document = published(meeting)
    with app.test_request_context():
        url = agenda.signed_download_url(document)
    assert url.startswith("http://127.0.0.1:5000/meetings/documents/signed/")
    response = app.test_client().get(urlsplit(url).path)
    assert response.status_code == 200 and response.data == minimal_pdf()
    assert response.headers["Content-Disposition"].startswith("attachment;")

    tampered = urlsplit(url).path[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert app.test_client().get(tampered).status_code == 404


def test_a_signed_link_stops_working_after_it_expires(app, meeting, published, monkeypatch):
    document = published(meeting)
    days = app.config["SIGNED_LINK_DAYS"]
    with app.test_request_context(), monkeypatch.context() as m:
        m.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - (days + 1) * 86400)
        url = agenda.signed_download_url(document)
    response = app.test_client().get(urlsplit(url).path)
    assert response.status_code == 410
    assert minimal_pdf() != response.data


def test_a_signed_link_never_serves_a_restricted_meetings_document(app, restricted, published):
    document = published(restricted)
    with app.test_request_context():
        url = agenda.signed_download_url(document)
    client = app.test_client()
    response = client.get(urlsplit(url).path)
    assert response.status_code == 302 and response.data != minimal_pdf()
    assert urlsplit(response.headers["Location"]).path == _path(document)
    response = client.get(_path(document))
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_anonymous_visitor_gets_nothing_without_a_link(app, meeting, published):
    document = published(meeting)
    response = app.test_client().get(_path(document))
    assert response.status_code == 302 and "/login" in response.headers["Location"]
