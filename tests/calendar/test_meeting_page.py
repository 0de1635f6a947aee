"""The calendar's part of a meeting's page: the secretariat sees who was mailed what, and each user gets the
attendance buttons they may press (site staff: their own site's only), which post to the calendar's view."""

from __future__ import annotations

import html

from app.calendar.models import Delivery, DeliveryKind, DeliveryStatus
from tests.conftest import PASSWORD

from .conftest import booked, participation_of, setup

REFUSED = "550 5.1.1 <vanphong.tqnh@example.com>: Recipient address rejected"


def meeting_page(app, role: str, meeting_id: int) -> str:
    """The meeting's page as a user of the role sees it (a client of its own for each)."""
    client = app.test_client()
    assert client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD}).status_code == 302
    return html.unescape(client.get(f"/meetings/{meeting_id}").get_data(as_text=True))


def test_the_meeting_page_shows_the_deliveries_to_the_secretariat_and_not_to_site_staff(app, week):
    def make(session):
        meeting = booked(session, "Họp có người nhận sai", ["TQ-NH", "TQ-TP-MX"], week)
        session.add(Delivery(batch="b1", meeting_id=meeting.id, kind=DeliveryKind.REQUEST,
                             email="vanphong.tqnh@example.com", name="Văn phòng Na Hang",
                             status=DeliveryStatus.FAILED, reply=REFUSED))
        return meeting.id, {code: participation_of(meeting, code).id for code in ("TQ", "TQ-NH", "TQ-TP-MX")}

    meeting_id, participations = setup(app, make)
    page = meeting_page(app, "secretariat", meeting_id)
    assert "<h2>Deliveries</h2>" in page and "vanphong.tqnh@example.com" in page and REFUSED in page
    # The secretariat records any site's attendance.
    assert all(f'action="/meetings/participations/{p}/confirm"' in page for p in participations.values())

    page = meeting_page(app, "site_staff", meeting_id)
    assert "Deliveries" not in page and "vanphong.tqnh@example.com" not in page
    assert [p for p in participations.values() if f'action="/meetings/participations/{p}/confirm"' in page] == [
        participations["TQ-TP-MX"]]
