"""Invitations that failed for good: the secretariat sees them on the meeting's page and resends one or all; a
resend goes through the outbox and the real SMTP server like the first send-out."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.calendar.models import Delivery, DeliveryKind, DeliveryStatus
from app.db import db, utcnow
from tests.conftest import PASSWORD
from tests.support.outbox import drain_outbox

from .conftest import Recorder, booked, setup

REFUSED = "550 5.1.1 <vanphong.tqnh@example.com>: Recipient address rejected"


@pytest.fixture
def mailing(app: Any, smtp: Recorder, smtp_server: tuple[Recorder, int]) -> Iterator[Recorder]:
    """The shared app sends through the real SMTP server for this test."""
    saved = dict(app.config)
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server[1], SMTP_STARTTLS=False, SMTP_TIMEOUT=10)
    yield smtp
    app.config.update(saved)


def client_of(app: Any, role: str) -> Any:
    client = app.test_client()
    assert client.post("/login", data={"email": f"{role}@example.com", "password": PASSWORD}).status_code == 302
    return client


def page_of(client: Any, meeting_id: int) -> str:
    return html.unescape(client.get(f"/meetings/{meeting_id}").get_data(as_text=True))


def deliveries(app: Any, meeting_id: int) -> dict[str, Delivery]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Delivery).where(Delivery.meeting_id == meeting_id))
        found = {d.email: d for d in rows}
        db.session.remove()
        return found


def test_secretariat_resends_an_invitation_refused_for_good_once_the_address_is_fixed(app, week, mailing):
    mailing.refuse["vanphong.tqnh@example.com"] = REFUSED
    meeting_id = setup(app, lambda s: booked(s, "Họp có người nhận sai", ["TQ-NH"], week).id)
    assert drain_outbox(app, keep_going=True) == []  # a 5xx is final: nothing for the queue to retry
    refused = deliveries(app, meeting_id)["vanphong.tqnh@example.com"]
    assert refused.failed_for_good and not refused.maybe_sent

    secretariat = client_of(app, "secretariat")
    page = page_of(secretariat, meeting_id)
    assert "1 invitation failed for good" in page and REFUSED in page
    action = f'action="/meetings/{meeting_id}/deliveries/{refused.id}/resend"'
    assert action in page
    assert f'action="/meetings/{meeting_id}/deliveries/resend"' not in page  # "all" only when there are several
    viewer_page = page_of(client_of(app, "viewer"), meeting_id)
    assert action not in viewer_page
    assert "not tried again until the secretariat resends them" in viewer_page  # not told to resend it himself
    assert client_of(app, "viewer").post(f"/meetings/{meeting_id}/deliveries/{refused.id}/resend").status_code \
        == 403

    mailing.refuse.clear()  # the site's mailbox was put right
    sent = deliveries(app, meeting_id)["kythuat.tqnh@example.com"]
    conflict = secretariat.post(f"/meetings/{meeting_id}/deliveries/{sent.id}/resend")
    assert conflict.status_code == 409  # a delivery that was sent is not "resent"
    other_id = setup(app, lambda s: booked(s, "Họp khác", ["TQ-LB"], week).id)
    assert drain_outbox(app, keep_going=True) == []  # the other meeting's own invitations, sent
    # Through another meeting's address, the delivery does not exist (and is not resent)
    assert secretariat.post(f"/meetings/{other_id}/deliveries/{refused.id}/resend").status_code == 404
    assert deliveries(app, meeting_id)["vanphong.tqnh@example.com"].failed_for_good
    response = secretariat.post(f"/meetings/{meeting_id}/deliveries/{refused.id}/resend")
    assert response.status_code == 302
    assert "The invitation to vanphong.tqnh@example.com will be sent again." in page_of(secretariat, meeting_id)
    before = len(mailing.received)
    assert drain_outbox(app, keep_going=True) == []

    assert [r.rcpt_tos for r in mailing.received[before:]] == [["vanphong.tqnh@example.com"]]
    resent = deliveries(app, meeting_id)["vanphong.tqnh@example.com"]
    assert resent.status is DeliveryStatus.SENT and not resent.permanent and resent.attempts == 1
    assert "failed for good" not in page_of(secretariat, meeting_id)


def test_a_mail_whose_reply_was_lost_after_its_data_is_not_sent_again_and_shows_it_may_have_arrived(app, week,
                                                                                                   mailing):
    mailing.keep_and_hang_up.add("vanphong.tqsd@example.com")  # the server took it, the reply never came
    meeting_id = setup(app, lambda s: booked(s, "Họp mất trả lời", ["TQ-SD"], week).id)
    assert drain_outbox(app, keep_going=True) == []
    assert drain_outbox(app, keep_going=True) == []  # nothing left for a retry: it is not sent twice

    assert len(mailing.to("vanphong.tqsd@example.com")) == 1
    found = deliveries(app, meeting_id)
    lost = found["vanphong.tqsd@example.com"]
    assert lost.failed_for_good and lost.maybe_sent and "SMTPServerDisconnected" in lost.reply
    assert all(d.status is DeliveryStatus.SENT for email, d in found.items() if email != lost.email)
    page = page_of(client_of(app, "secretariat"), meeting_id)
    assert "1 invitation failed for good" in page and "may have arrived" in page


def test_secretariat_resends_every_invitation_given_up_including_one_that_may_have_arrived(app, week, mailing):
    def make(session):
        meeting = booked(session, "Họp gửi lại", ["TQ-LB"], week)
        for email, handed in (("vanphong.tqlb@example.com", utcnow()), ("kythuat.tqlb@example.com", None)):
            # As the sending left them: one cut off after its end of data, one out of attempts.
            session.add(Delivery(batch="given-up", meeting_id=meeting.id, kind=DeliveryKind.REQUEST,
                                 email=email, status=DeliveryStatus.FAILED, permanent=True, attempts=10,
                                 handed_at=handed, reply="" if handed else "451 4.3.0 Mailbox busy"))
        return meeting.id

    meeting_id = setup(app, make)
    assert drain_outbox(app, keep_going=True) == []  # the booking's own send-out, all sent
    secretariat = client_of(app, "secretariat")
    page = page_of(secretariat, meeting_id)
    assert "2 invitations failed for good" in page
    assert "the worker stopped before the mail server answered: it may have arrived" in page
    assert "may have arrived" in page and "451 4.3.0 Mailbox busy" in page

    assert secretariat.post(f"/meetings/{meeting_id}/deliveries/resend").status_code == 302
    assert "2 invitations will be sent again." in page_of(secretariat, meeting_id)
    before = len(mailing.received)
    assert drain_outbox(app, keep_going=True) == []

    assert sorted(r.rcpt_tos[0] for r in mailing.received[before:]) == ["kythuat.tqlb@example.com",
                                                                       "vanphong.tqlb@example.com"]
    assert {d.status for d in deliveries(app, meeting_id).values()} == {DeliveryStatus.SENT}
    assert "failed for good" not in page_of(secretariat, meeting_id)
    assert "No invitation of this meeting has failed for good." in html.unescape(
        secretariat.post(f"/meetings/{meeting_id}/deliveries/resend", follow_redirects=True).get_data(as_text=True))
