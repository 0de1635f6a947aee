"""ICS feeds: a site's calendar (or the whole province's) behind a secret, revocable address, with ETag."""

from __future__ import annotations

import html
import re

import icalendar
import sqlalchemy as sa

from app.calendar import service
from app.meetings.models import Classification
from app.sites.models import Site

from .conftest import booked, setup


def site_id(session, code: str) -> int:
    return session.scalar(sa.select(Site.id).where(Site.code == code))


def uids(response) -> set[str]:
    cal = icalendar.Calendar.from_ical(response.data)
    return {str(e["UID"]) for e in cal.walk("VEVENT")}


def test_a_sites_feed_holds_its_meetings_and_answers_304_while_nothing_changes(app, client, week):
    def prepare(session):
        ours = booked(session, "Họp có Na Hang", ["TQ-NH"], week)
        booked(session, "Họp không có Na Hang", ["TQ-LB"], week)
        _token, secret = service.create_feed_token(session, site_id(session, "TQ-NH"), "Outlook văn phòng")
        return ours.uid, secret

    uid, secret = setup(app, prepare)
    url = f"/calendar/feeds/{secret}.ics"
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert uids(first) == {uid}
    cal = icalendar.Calendar.from_ical(first.data)
    assert cal["METHOD"] == "PUBLISH" and cal.walk("VTIMEZONE")
    assert all("ATTENDEE" not in e for e in cal.walk("VEVENT"))  # RFC 5546: PUBLISH names no attendees
    etag = first.headers["ETag"]

    unchanged = client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""

    later = setup(app, lambda s: booked(s, "Họp thứ hai có Na Hang", ["TQ-NH"], week, "14:00", "15:00").uid)
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert uids(changed) == {uid, later}


def test_the_province_feed_holds_every_meeting_but_not_a_restricted_meetings_pin(app, client, week):
    def prepare(session):
        normal = booked(session, "Họp toàn tỉnh", ["TQ-CH"], week)
        secret_meeting = booked(session, "Họp mật", ["TQ-HY"], week, classification=Classification.RESTRICTED)
        _token, secret = service.create_feed_token(session, None)
        return normal.uid, secret_meeting.uid, secret_meeting.pin, secret

    normal, restricted, pin, secret = setup(app, prepare)
    response = client.get(f"/calendar/feeds/{secret}.ics")
    assert {normal, restricted} <= uids(response)
    [event] = [e for e in icalendar.Calendar.from_ical(response.data).walk("VEVENT") if e["UID"] == restricted]
    assert pin not in event["DESCRIPTION"] and event["CLASS"] == "CONFIDENTIAL"


def test_a_revoked_or_unknown_feed_address_answers_404(app, client):
    token_id, secret = setup(app, lambda s: (lambda t: (t[0].id, t[1]))(service.create_feed_token(s, None)))
    assert client.get(f"/calendar/feeds/{secret}.ics").status_code == 200
    setup(app, lambda s: service.revoke_feed_token(s, token_id))
    assert client.get(f"/calendar/feeds/{secret}.ics").status_code == 404
    assert client.get("/calendar/feeds/guessed-secret.ics").status_code == 404


def test_the_secretariat_creates_a_feed_sees_its_address_once_and_revokes_it(app, login):
    client = login("secretariat")
    assert client.get("/calendar/feeds").status_code == 200
    na_hang = setup(app, lambda s: site_id(s, "TQ-NH"))
    created = client.post("/calendar/feeds", data={"site_id": str(na_hang), "name": "Lịch của Na Hang"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    page = html.unescape(created.get_data(as_text=True))
    [address] = re.findall(r"https?://[^\s<]+/calendar/feeds/([\w-]+)\.ics", page)
    assert client.get(f"/calendar/feeds/{address}.ics").status_code == 200

    listed = html.unescape(client.get("/calendar/feeds").get_data(as_text=True))
    assert "Lịch của Na Hang" in listed and address[:8] in listed and address not in listed
    token_id = setup(app, lambda s: service.feed_tokens(s)[0].id)
    assert client.post(f"/calendar/feeds/{token_id}/revoke").status_code == 302
    assert client.get(f"/calendar/feeds/{address}.ics").status_code == 404


def test_a_feed_for_a_site_that_does_not_exist_is_refused(app, login):
    client = login("admin")
    response = client.post("/calendar/feeds", data={"site_id": "999999", "name": ""})
    assert response.status_code == 422


def test_only_the_secretariat_and_admins_manage_feeds(app, login):
    client = login("technician")
    assert client.get("/calendar/feeds").status_code == 403
    assert client.post("/calendar/feeds", data={"site_id": "0"}).status_code == 403
