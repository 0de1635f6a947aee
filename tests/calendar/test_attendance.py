"""Each site confirms its attendance through the signed link in its invitation, or in the app."""

from __future__ import annotations

import html
import time

import pytest
import sqlalchemy as sa

from app.auth.models import Role, User
from app.calendar import service
from app.db import db
from app.errors import Conflict
from app.meetings import service as meetings
from app.meetings.models import Participation

from .conftest import booked, participation_of, setup

CONTACT = "vanphong.tqnh@example.com"


def link_for(app, week, code: str = "TQ-NH", email: str = CONTACT, **kw) -> tuple[int, str]:
    def make(session):
        p = participation_of(booked(session, "Họp xác nhận", [code], week, **kw), code)
        return p.id, service.attendance_token(p.id, email)

    return setup(app, make)


def participation(app, participation_id: int) -> Participation:
    with app.app_context():
        p = db.session.get(Participation, participation_id)
        db.session.expunge(p)
        return p


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_site_confirms_its_attendance_once_through_the_link_in_its_invitation(app, client, week):
    participation_id, token = link_for(app, week)
    url = f"/calendar/attendance/{token}"

    shown = client.get(url)
    assert shown.status_code == 200
    assert "Họp xác nhận" in page(shown) and "Huyện Na Hang" in page(shown)
    assert participation(app, participation_id).confirmed_at is None

    confirmed = client.post(url, follow_redirects=True)
    assert confirmed.status_code == 200 and CONTACT in page(confirmed)
    first = participation(app, participation_id)
    assert first.confirmed_at is not None and first.confirmed_by == CONTACT

    again = client.post(url)
    assert again.status_code == 302
    assert participation(app, participation_id).confirmed_at == first.confirmed_at


def test_an_altered_attendance_link_is_refused(app, client, week):
    participation_id, token = link_for(app, week)
    payload, _, signature = token.rpartition(".")
    for altered in (f"{payload}.{signature[:-2]}xx", token.replace(token[2], "A" if token[2] != "A" else "B", 1),
                    "not-a-token"):
        response = client.post(f"/calendar/attendance/{altered}")
        assert response.status_code == 403
        assert "not valid" in page(response)
    assert participation(app, participation_id).confirmed_at is None


def test_an_expired_attendance_link_is_refused_with_a_clear_reason(app, client, week, monkeypatch):
    days = app.config["SIGNED_LINK_DAYS"]
    real = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() - (days + 1) * 86400)
        participation_id, token = link_for(app, week)
    response = client.get(f"/calendar/attendance/{token}")
    assert response.status_code == 400 and "expired" in page(response)
    assert client.post(f"/calendar/attendance/{token}").status_code == 400
    assert participation(app, participation_id).confirmed_at is None


def test_a_cancelled_meetings_link_confirms_nothing(app, client, week):
    participation_id, token = link_for(app, week)
    setup(app, lambda s: meetings.cancel_meeting(s, s.get(Participation, participation_id).occurrence.meeting))
    shown = client.get(f"/calendar/attendance/{token}")
    assert shown.status_code == 200 and "cancelled" in page(shown)
    refused = client.post(f"/calendar/attendance/{token}")
    assert refused.status_code == 409
    assert participation(app, participation_id).confirmed_at is None


def test_site_staff_may_confirm_only_their_own_sites_attendance(app, session, week):
    staff = session.scalar(sa.select(User).where(User.role == Role.SITE_STAFF))
    viewer = session.scalar(sa.select(User).where(User.role == Role.VIEWER))
    secretary = session.scalar(sa.select(User).where(User.role == Role.SECRETARIAT))
    meeting = booked(session, "Họp phường", ["TQ-TP-MX", "TQ-NH"], week)
    own, other = participation_of(meeting, "TQ-TP-MX"), participation_of(meeting, "TQ-NH")
    assert service.may_confirm(staff, own) and not service.may_confirm(staff, other)
    assert not service.may_confirm(viewer, own) and service.may_confirm(secretary, other)

    service.confirm_attendance(session, own, by=staff.email)
    assert own.confirmed_at is not None and own.confirmed_by == staff.email
    meetings.cancel_meeting(session, meeting)
    with app.test_request_context(), pytest.raises(Conflict):  # the refusal is worded in the user's language
        service.confirm_attendance(session, other, by=secretary.email)
