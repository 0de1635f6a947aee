"""A booked meeting gets its conference on its bridge by itself: the simulated Cisco Meeting Server
(simulators/cisco_cms.py) in a network namespace (tests/support/cms.py) holds the coSpace with the meeting's
number and PIN while the meeting is booked, and loses it when the meeting is cancelled or over. A bridge that
does not answer leaves the meeting booked and its conference marked not ready, retried with backoff until the
bridge answers; neither a retry nor two overlapping syncs ever make two conferences.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask_babel import force_locale

from app.conference import service as conferences
from app.conference.metrics import conference_families
from app.conference.models import Conference, ConferenceAttempt, ConferenceState, Desired, UnknownConference
from app.db import utcnow
from app.devices.bridges import service as bridges
from app.devices.bridges.base import ConferenceSpec
from app.meetings import service as meetings
from app.meetings.models import Meeting
from app.meetings.service import BookingRequest
from app.meetings.signals import page_extras
from app.queue.models import OutboxMessage
from app.sites.models import Site
from tests.support.cms import bridge_fixture, cms_fixture, trust  # noqa: F401 - fixtures
from tests.support.netlab import netlab  # noqa: F401 - a fixture


def site(session: Any, code: str) -> Site:
    return session.scalar(sa.select(Site).where(Site.code == code))


def book(session: Any, bridge: Any, title: str = "Giao ban trực tuyến tháng 12",
         starts_in: dt.timedelta = dt.timedelta(days=3)) -> Meeting:
    start = (utcnow() + starts_in).replace(second=0, microsecond=0)
    meeting = meetings.book_meeting(session, BookingRequest(
        title=title, host_site_id=site(session, "TQ").id, site_ids=[site(session, "TQ-LB").id],
        starts_at=start, ends_at=start + dt.timedelta(hours=2), bridge_id=bridge.id))
    session.commit()
    return meeting


def conference_of(session: Any, meeting: Meeting) -> Conference:
    session.expire_all()
    return session.scalar(sa.select(Conference).where(Conference.number == meeting.conference_number))


def on_bridge(session: Any, bridge: Any) -> list[Any]:
    """The coSpaces on the simulator, read as a technician's client would."""
    with bridges.open_bridge(session, bridge) as mcu:
        found = [mcu.get_conference(c.id) for c in mcu.list_conferences()]
    session.commit()
    return found


def queued_syncs(session: Any) -> list[int]:
    return [m.payload["conference_id"] for m in session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.task == conferences.TASK, OutboxMessage.done_at.is_(None)))]


def run_queued(session: Any, now: dt.datetime | None = None) -> list[str]:
    """What a worker does with the queued syncs (each once, as the outbox would)."""
    done = []
    for message in list(session.scalars(sa.select(OutboxMessage).where(
            OutboxMessage.task == conferences.TASK, OutboxMessage.done_at.is_(None)).order_by(OutboxMessage.id))):
        done.append(conferences.sync(message.payload["conference_id"], now=now))
        message = session.get(OutboxMessage, message.id)
        message.done_at = utcnow()
        session.commit()
    return done


def page_text(session: Any, meeting: Meeting) -> str:
    from app.auth.models import User

    viewer = session.scalar(sa.select(User).where(User.email == "operator@example.com"))
    extras = page_extras(session, meeting, viewer, deliveries=False)
    return " ".join(str(s) for s in extras.sections)


# ---------------------------------------------------------------- the stories

def test_a_whole_meeting_booked_then_moved_then_over_has_its_conference_made_kept_and_deleted(session, cms, bridge):
    trust(session, bridge)
    meeting = book(session, bridge)
    conference = conference_of(session, meeting)
    assert queued_syncs(session) == [conference.id]
    assert conference.state is ConferenceState.PENDING

    assert run_queued(session) == ["create"]
    conference = conference_of(session, meeting)
    assert conference.state is ConferenceState.READY and conference.attempts == 1
    [space] = on_bridge(session, bridge)
    assert (space.id, space.number, space.pin, space.name) == (
        conference.bridge_conference_id, meeting.conference_number, meeting.pin, "Giao ban trực tuyến tháng 12")
    with force_locale("vi"):
        assert "Hội nghị trên MCU: sẵn sàng" in page_text(session, meeting)

    # Moved a day later: the same room, checked, still one.
    occurrence = meeting.occurrences[0]
    meetings.move_occurrence(session, occurrence, occurrence.starts_at + dt.timedelta(days=1),
                             occurrence.ends_at + dt.timedelta(days=1))
    session.commit()
    assert run_queued(session) == ["check"]
    assert [s.id for s in on_bridge(session, bridge)] == [space.id]

    # Someone changed the PIN on the bridge by hand: the next sync puts the booked one back.
    with bridges.open_bridge(session, bridge) as mcu:
        mcu.update_conference(space.id, ConferenceSpec(name=space.name, number=space.number, pin="999999"))
    session.commit()
    assert conferences.sync(conference.id) == "update"
    assert [s.pin for s in on_bridge(session, bridge)] == [meeting.pin]

    # Over: the periodic task finds it and the conference goes from the bridge.
    after_end = meeting.occurrences[0].ends_at + dt.timedelta(minutes=1)
    assert conferences.queue_due(session, now=after_end) == 1
    session.commit()
    assert run_queued(session, now=after_end) == ["delete"]
    conference = conference_of(session, meeting)
    assert conference.state is ConferenceState.DELETED and conference.desired is Desired.ABSENT
    assert on_bridge(session, bridge) == []
    assert [a.action for a in session.scalars(sa.select(ConferenceAttempt).where(
        ConferenceAttempt.conference_id == conference.id).order_by(ConferenceAttempt.id))] == \
        ["create", "check", "update", "delete"]


def test_a_cancelled_meeting_has_its_conference_deleted(session, cms, bridge):
    trust(session, bridge)
    meeting = book(session, bridge)
    run_queued(session)
    assert len(on_bridge(session, bridge)) == 1
    meetings.cancel_meeting(session, meeting)
    session.commit()
    assert run_queued(session) == ["delete"]
    assert on_bridge(session, bridge) == []
    assert conference_of(session, meeting).state is ConferenceState.DELETED


def test_a_bridge_down_at_booking_leaves_the_meeting_booked_marked_and_retried_until_it_answers(session, cms,
                                                                                               bridge):
    trust(session, bridge)
    cms.stop()  # the MCU is off when the secretariat books
    meeting = book(session, bridge)
    assert run_queued(session) == ["failed"]
    conference = conference_of(session, meeting)
    assert conference.state is ConferenceState.FAILED and conference.attempts == 1
    assert "MCU-LAB" in conference.last_error
    assert meeting.occurrences[0].status.value == "scheduled"  # still booked
    with force_locale("vi"):
        text = page_text(session, meeting)
    assert "Hội nghị trên MCU: chưa sẵn sàng" in text and "MCU-LAB" in text and "Lần thử tiếp theo lúc" in text
    [attempt] = conference.attempt_rows
    assert not attempt.ok and attempt.error == conference.last_error

    # Shown to the operators and to Prometheus.
    [family] = conference_families(session, utcnow())
    assert [labels for labels, _value in family.samples] == [
        {"meeting": str(meeting.id), "title": meeting.title, "number": meeting.conference_number}]
    page = _operator_page(session)
    assert meeting.title in page and "MCU-LAB" in page

    # Backoff: the first retry waits 30 seconds, not less.
    failed_at = conference.next_attempt_at - dt.timedelta(seconds=30)
    assert abs((failed_at - utcnow()).total_seconds()) < 20
    assert conferences.queue_due(session, now=failed_at + dt.timedelta(seconds=10)) == 0
    assert conferences.queue_due(session, now=conference.next_attempt_at + dt.timedelta(seconds=1)) == 1
    session.commit()
    assert run_queued(session) == ["failed"]  # still down: the second wait is a minute
    conference = conference_of(session, meeting)
    assert conference.attempts == 2
    assert dt.timedelta(seconds=55) < conference.next_attempt_at - conference.attempt_rows[-1].at \
        <= dt.timedelta(seconds=61)

    cms.start()  # the MCU is back
    conferences.queue_due(session, now=conference.next_attempt_at + dt.timedelta(seconds=1))
    session.commit()
    assert run_queued(session) == ["create"]
    [space] = on_bridge(session, bridge)
    assert space.number == meeting.conference_number
    conference = conference_of(session, meeting)
    assert conference.state is ConferenceState.READY and conference.last_error == ""
    assert conference_families(session, utcnow())[0].samples == []
    # A retry after that, however many, never makes a second one.
    assert conferences.sync(conference.id) == "check"
    assert len(on_bridge(session, bridge)) == 1


def _operator_page(session: Any) -> str:
    from flask import current_app

    from app.auth.models import Role

    client = current_app.test_client()
    client.post("/login", data={"email": f"{Role.OPERATOR.value}@example.com", "password": _password()})
    response = client.get("/conferences")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _password() -> str:
    from tests.conftest import PASSWORD

    return PASSWORD


def test_a_create_whose_answer_was_lost_is_found_by_its_number_and_not_made_twice(session, cms, bridge):
    trust(session, bridge)
    meeting = book(session, bridge)
    conference = conference_of(session, meeting)
    # The bridge made it, but VCOps never heard back (the worker died before recording it).
    with bridges.open_bridge(session, bridge) as mcu:
        mcu.create_conference(ConferenceSpec(name=meeting.title, number=meeting.conference_number, pin=meeting.pin))
    session.commit()
    assert conferences.sync(conference.id) == "update"  # adopted, and given the booked participant limit
    assert len(on_bridge(session, bridge)) == 1
    assert conference_of(session, meeting).state is ConferenceState.READY


def test_a_sync_finding_another_sync_at_work_leaves_the_conference_to_it(session, cms, bridge):
    trust(session, bridge)
    meeting = book(session, bridge)
    conference = conference_of(session, meeting)
    # Another worker has claimed it and is talking to the bridge now.
    conference.claimed_until = utcnow() + dt.timedelta(minutes=1)
    session.commit()
    assert conferences.sync(conference.id) == "busy"
    assert on_bridge(session, bridge) == []
    assert conference_of(session, meeting).attempts == 0


def test_reconciliation_reports_a_conference_nobody_booked_and_makes_a_missing_one_again(session, cms, bridge):
    trust(session, bridge)
    meeting = book(session, bridge)
    run_queued(session)
    with bridges.open_bridge(session, bridge) as mcu:
        stranger = mcu.create_conference(ConferenceSpec(name="Phòng họp tạo tay", number="77001234"))
        mcu.delete_conference(conference_of(session, meeting).bridge_conference_id)  # deleted by hand
    session.commit()

    counts = conferences.reconcile()
    assert counts == {"unknown": 1, "missing": 1, "unreachable": 0}
    [unknown] = session.scalars(sa.select(UnknownConference)).all()
    assert (unknown.bridge_conference_id, unknown.number, unknown.name) == (stranger.id, "77001234",
                                                                          "Phòng họp tạo tay")
    assert "Phòng họp tạo tay" in _operator_page(session)
    assert run_queued(session) == ["create"]
    numbers = sorted(s.number for s in on_bridge(session, bridge))
    assert numbers == sorted(["77001234", meeting.conference_number])  # the stranger is never deleted
    assert conferences.reconcile()["missing"] == 0
