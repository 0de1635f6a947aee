"""A title, name or code is one line: a line break (a forged mail header, a broken iCalendar line) or a control
character is refused, naming the field, by the API, the pages and the services alike, and nothing is written.
Notes keep their lines (CR LF becomes LF) and tabs, but no other control character."""

from __future__ import annotations

import datetime as dt
import html
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.db import db
from app.errors import Invalid
from app.meetings.models import Meeting
from app.monitoring.schemas import AlertmanagerPayload
from app.sites.models import Site
from app.web.schemas import Input, Text

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
ONE_LINE = "must be one line, without line breaks or control characters"
LINES = "may hold line breaks and tabs but no other control characters"


def in_app(app, fn):
    with app.app_context():
        result = fn(db.session)
        db.session.commit()
        return result


@pytest.fixture
def ids(app) -> dict[str, int]:
    return in_app(app, lambda s: dict(s.execute(sa.select(Site.code, Site.id)).all()))


@pytest.fixture
def day() -> dt.date:
    soon = dt.date.today() + dt.timedelta(days=7)
    return soon + dt.timedelta(days=(7 - soon.weekday()) % 7)


def booking(ids, day, **overrides) -> dict:
    start = dt.datetime.combine(day, dt.time(8, 0), tzinfo=LOCAL)
    return {"title": "Giao ban", "site_ids": [ids["TQ-YS"]], "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(hours=1)).isoformat(), **overrides}


def meetings_titled(app, title: str) -> list[str]:
    return in_app(app, lambda s: list(s.scalars(sa.select(Meeting.notes).where(Meeting.title.startswith(title)))))


@pytest.mark.parametrize("title", ["Giao ban\r\nBcc: everyone@example.com", "Giao ban\ttuần", "Giao\x00ban",
                                   "Giao ban\x1b[31m", "Giao ban\u2028tuần", "Giao ban\x85"])
def test_a_title_with_a_line_break_or_control_character_is_refused_by_the_api_naming_it(app, api, ids, day, title):
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json=booking(ids, day, title=title))
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["fields"] == {"title": [ONE_LINE]} and f"title: {ONE_LINE}" in error["message"]
    assert meetings_titled(app, "Giao") == []


def test_notes_keep_their_lines_and_tabs_as_lf_but_no_other_control_character(app, api, ids, day):
    secretariat = api(Role.SECRETARIAT)
    response = secretariat.post("/api/v1/meetings", json=booking(ids, day, title="Giao ban có ghi chú",
                                                                 notes="Dòng 1\r\nDòng 2\r\tthụt lề"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["notes"] == "Dòng 1\nDòng 2\n\tthụt lề"
    refused = secretariat.post("/api/v1/meetings", json=booking(ids, day, title="Giao ban khác",
                                                                notes="chuông\x07"))
    assert refused.status_code == 422 and refused.get_json()["error"]["fields"] == {"notes": [LINES]}
    assert meetings_titled(app, "Giao ban khác") == []


def test_text_inside_lists_and_nested_objects_is_checked_and_named_too(api, ids, day):
    secretariat = api(Role.SECRETARIAT)
    response = secretariat.post("/api/v1/meetings", json=booking(ids, day, level_codes=["commune\n"]))
    assert response.status_code == 422 and response.get_json()["error"]["fields"] == {"level_codes.0": [ONE_LINE]}
    tech = api(Role.TECHNICIAN)
    patched = tech.patch(f"/api/v1/sites/{ids['TQ-YS']}", json={
        "name": "Huyện\nYên Sơn", "contacts": [{"name": "Nguyễn\x1bA", "role": "leader"}]})
    assert patched.status_code == 422
    assert patched.get_json()["error"]["fields"] == {"name": [ONE_LINE], "contacts.0.name": [ONE_LINE]}
    assert tech.get(f"/api/v1/sites/{ids['TQ-YS']}").get_json()["name"] == "Huyện Yên Sơn"


def test_an_agenda_item_title_with_a_line_break_is_refused_by_the_api_and_the_service(app, api, ids, day):
    secretariat = api(Role.SECRETARIAT)
    meeting = secretariat.post("/api/v1/meetings", json=booking(ids, day, title="Họp có chương trình")).get_json()
    response = secretariat.post(f"/api/v1/meetings/{meeting['id']}/agenda/items", json={"title": "Khai\r\nmạc"})
    assert response.status_code == 422 and response.get_json()["error"]["fields"] == {"title": [ONE_LINE]}

    from app.agenda import service as agenda

    with app.test_request_context(), pytest.raises(Invalid) as refused:
        agenda.add_item(db.session, db.session.get(Meeting, meeting["id"]), {"title": "Khai\x00mạc"})
    assert refused.value.fields == {"title": [ONE_LINE]}


def test_the_booking_page_refuses_a_title_with_a_line_break_naming_it_and_keeps_the_notes_lines(app, login, ids,
                                                                                              day):
    client = login("secretariat")
    form = {"title": "Giao ban\r\nBcc: x@example.com", "chair": "", "host_site_id": str(ids["TQ"]),
            "site_ids": [str(ids["TQ-YS"])], "date": day.isoformat(), "start_time": "08:00", "end_time": "09:00",
            "bridge_id": "", "setup_minutes": "60", "bitrate_kbps": "2000", "notes": "Dòng 1\r\nDòng 2",
            "classification": "normal", "frequency": "", "interval": "1", "until": "", "count": ""}
    refused = client.post("/meetings/new", data=form)
    assert refused.status_code in (200, 422)
    assert f"Title: {ONE_LINE}." in html.unescape(refused.get_data(as_text=True))
    assert meetings_titled(app, "Giao ban") == []

    booked = client.post("/meetings/new", data={**form, "title": "Giao ban trang"})
    assert booked.status_code == 302, html.unescape(booked.get_data(as_text=True))
    assert meetings_titled(app, "Giao ban trang") == ["Dòng 1\nDòng 2"]


def test_the_site_form_refuses_a_name_with_a_control_character_naming_it(app, login):
    client = login("technician")
    response = client.post("/sites/new", data={
        "code": "TQ-LB-PY", "name": "Xã Phúc\x1bYên", "level": "commune", "parent_id": "", "address": "",
        "latitude": "", "longitude": "", "status": "active", "notes": "", "contacts-0-name": "An\nB",
        "contacts-0-role": "leader", "contacts-0-email": "", "contacts-0-phone": ""})
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code in (200, 422)
    assert f"Name: {ONE_LINE}." in page
    assert in_app(app, lambda s: s.scalar(sa.select(Site.id).where(Site.code == "TQ-LB-PY"))) is None


def test_alertmanager_descriptions_may_span_lines_but_names_may_not(app):
    with app.test_request_context():
        payload = AlertmanagerPayload().load({"status": "firing", "alerts": [{
            "status": "firing", "labels": {"alertname": "LinkDown"}, "fingerprint": "abc",
            "annotations": {"description": "Dòng 1\nDòng 2"}, "startsAt": "2026-12-02T08:00:00+07:00"}]})
        assert payload["alerts"][0]["annotations"]["description"] == "Dòng 1\nDòng 2"


def test_every_string_field_of_an_input_schema_gets_the_check_without_touching_the_class():
    class Sample(Input):
        name = Text()

    first, second = Sample(), Sample()
    assert first.fields["name"] is not second.fields["name"]
    assert len(first.fields["name"].validators) == 1 == len(Sample._declared_fields["name"].validators) + 1
