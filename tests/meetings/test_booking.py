"""The secretariat books meetings: rooms, bridge ports and link bandwidth are never over-committed."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.meetings import service
from app.meetings.models import LinkReservation, OccurrenceStatus
from app.meetings.service import BookingRefused, Frequency, Recurrence
from app.sites.maintenance import create_maintenance
from app.sites.models import Endpoint, Status

from ..sites.lines import fail_over, replace_dedicated_line
from .conftest import local


def clashes_of(err: pytest.ExceptionInfo[BookingRefused]) -> list[dict]:
    return [c for occ in err.value.details() for c in occ["clashes"]]


def test_a_meeting_of_the_whole_province_takes_a_room_per_site_and_a_bridge(session, request_for, sites, bridge):
    req = request_for("Giao ban tháng", [])
    req.subtree_ids = [sites["TQ"].id]
    meeting = service.book_meeting(session, req)
    occurrence = meeting.occurrences[0]
    assert occurrence.status is OccurrenceStatus.SCHEDULED and occurrence.bridge_id == bridge.id
    assert len(occurrence.participations) == 1 + 7 + 14
    assert occurrence.participations[0].site == sites["TQ"]
    assert occurrence.setup_starts_at == occurrence.starts_at - dt.timedelta(minutes=60)


def test_a_districts_uplink_carries_its_communes_too(session, request_for, uplink):
    meeting = service.book_meeting(session, request_for("Họp huyện Chiêm Hóa", ["TQ-CH", "TQ-CH-VL", "TQ-CH-KB"]))
    load = {r.link_id: r.kbps for r in meeting.occurrences[0].link_reservations}
    assert load[uplink("TQ-CH").id] == 3 * 2400  # 2 Mbit/s per site plus 20% overhead, three sites
    assert load[uplink("TQ-CH-VL").id] == 2400


def test_a_room_cannot_be_in_two_overlapping_meetings(session, request_for):
    service.book_meeting(session, request_for("Họp về phòng chống lũ", ["TQ-NH"], "08:00", "10:00"))
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp chuyển đổi số", ["TQ-NH"], "09:30", "11:00"))
    assert err.value.status == 409
    assert "Phòng họp trực tuyến (Huyện Na Hang)" in err.value.message
    assert "Họp về phòng chống lũ" in err.value.message


def test_a_site_with_two_rooms_holds_two_meetings_at_once(session, request_for):
    first = service.book_meeting(session, request_for("Họp A", ["TQ-LB"]))
    second = service.book_meeting(session, request_for("Họp B", ["TQ-NH"]))
    rooms = {first.occurrences[0].participations[0].endpoint_id, second.occurrences[0].participations[0].endpoint_id}
    assert len(rooms) == 2  # the province hall's two rooms
    with pytest.raises(BookingRefused):
        service.book_meeting(session, request_for("Họp C", ["TQ-YS"]))


def test_the_setup_buffer_holds_the_room_for_the_test_call(session, request_for):
    service.book_meeting(session, request_for("Họp sáng", ["TQ-HY-TS"], "08:00", "09:00", setup_minutes=0))
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp 9h30", ["TQ-HY-TS"], "09:30", "10:30"))
    assert any(c["kind"] == "room" and c["meeting_title"] == "Họp sáng" for c in clashes_of(err))
    service.book_meeting(session, request_for("Họp 9h30", ["TQ-HY-TS"], "09:30", "10:30", setup_minutes=30))


def test_bridge_ports_count_the_largest_overlap_not_the_sum_of_the_day(session, request_for, bridge):
    bridge.total_ports = 6
    # Each meeting also takes one of the province hall's two rooms (the host site): three rooms each.
    service.book_meeting(session, request_for("A", ["TQ-LB", "TQ-NH"], "08:00", "09:00", setup_minutes=0))
    service.book_meeting(session, request_for("B", ["TQ-CH", "TQ-HY"], "10:00", "11:00", setup_minutes=0))
    # 08:30-10:30 overlaps both: at most 3 + 3 = 6 ports at any instant, although the day holds 9.
    service.book_meeting(session, request_for("C", ["TQ-YS-TM", "TQ-SD-TT"], "08:30", "10:30", setup_minutes=0))
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("D", ["TQ-TP-MX"], "08:45", "09:15", setup_minutes=0,
                                                  rooms={}))
    [clash] = [c for c in clashes_of(err) if c["kind"] == "bridge"]
    assert "MCU-TQ-01 has 6 ports; 6 are already taken" in clash["message"]


def test_a_link_never_carries_more_than_its_contracted_bandwidth(session, request_for, uplink):
    uplink("TQ-CH").bandwidth_kbps = 5000
    service.book_meeting(session, request_for("Xã Vĩnh Lộc", ["TQ-CH-VL"], setup_minutes=0))
    service.book_meeting(session, request_for("Xã Kim Bình", ["TQ-CH-KB"], setup_minutes=0))  # 4800 of 5000
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Huyện Chiêm Hóa", ["TQ-CH"], setup_minutes=0))
    [clash] = [c for c in clashes_of(err) if c["kind"] == "link"]
    assert clash["resource"] == f"link {uplink('TQ-CH').code}"
    assert "7200 kbit/s" in clash["message"]


def test_maintenance_on_a_link_on_the_path_blocks_the_booking(session, request_for, uplink, day):
    create_maintenance(session, "link", uplink("TQ-SD").id, local(day, "07:00"), local(day, "12:00"),
                       "Thay thiết bị quang", None)
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Xã Tân Trào", ["TQ-SD-TT"]))
    assert "Thay thiết bị quang" in err.value.message


def test_maintenance_on_the_bridge_or_a_retired_room_blocks_the_booking(session, request_for, bridge, sites, day):
    create_maintenance(session, "bridge", bridge.id, local(day, "07:00"), local(day, "12:00"), "Nâng cấp MCU", None)
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp", ["TQ-LB"]))
    assert "Nâng cấp MCU" in err.value.message
    room = session.scalar(sa.select(Endpoint).where(Endpoint.site_id == sites["TQ-LB-LC"].id))
    room.status = Status.RETIRED
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp", ["TQ-LB-LC"], "14:00", "15:00"))
    assert "retired" in err.value.message


def test_no_meeting_in_the_past_and_none_that_ends_before_it_starts(session, request_for, day):
    from app.errors import Invalid

    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp", ["TQ-LB"], on=day - dt.timedelta(days=30),
                                                  end_on=day - dt.timedelta(days=30)))
    assert "in the past" in err.value.message
    with pytest.raises(Invalid) as err:
        service.book_meeting(session, request_for("Họp", ["TQ-LB"], "10:00", "09:00"))
    assert err.value.fields == {"ends_at": ["must be after the start"]}


def test_a_weekly_series_reports_its_clashes_per_occurrence_and_may_skip_them(session, request_for, day):
    service.book_meeting(session, request_for("Họp đột xuất", ["TQ-YS"], on=day + dt.timedelta(days=14),
                                              end_on=day + dt.timedelta(days=14)))
    weekly = Recurrence(Frequency.WEEKLY, count=4)
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Giao ban tuần", ["TQ-YS"], recurrence=weekly))
    assert len(err.value.clashes) == 1  # only the third Monday clashes
    meeting = service.book_meeting(session, request_for("Giao ban tuần", ["TQ-YS"], recurrence=weekly,
                                                        skip_clashing=True))
    statuses = [o.status for o in meeting.occurrences]
    assert statuses.count(OccurrenceStatus.SCHEDULED) == 3 and statuses[2] is OccurrenceStatus.CANCELLED
    assert meeting.rrule == "FREQ=WEEKLY;COUNT=4"
    assert [o.starts_at.astimezone(local(day, "08:00").tzinfo).hour for o in meeting.occurrences] == [8] * 4


def test_a_series_has_at_most_365_occurrences(session, request_for, day):
    from app.errors import Invalid

    with pytest.raises(Invalid) as err:
        service.book_meeting(session, request_for("Hằng ngày", ["TQ-YS"], recurrence=Recurrence(
            Frequency.DAILY, until=day + dt.timedelta(days=400))))
    assert "365" in err.value.message


def test_moving_one_occurrence_rechecks_and_raises_its_sequence(session, request_for, day):
    meeting = service.book_meeting(session, request_for("Giao ban", ["TQ-NH"], recurrence=Recurrence(
        Frequency.WEEKLY, count=3)))
    service.book_meeting(session, request_for("Họp khác", ["TQ-NH"], "14:00", "15:00"))
    second = meeting.occurrences[1]
    with pytest.raises(BookingRefused):
        service.move_occurrence(session, second, local(day, "14:30"), local(day, "15:30"))
    target = local(day + dt.timedelta(days=8), "09:00")
    service.move_occurrence(session, second, target, target + dt.timedelta(hours=1))
    assert second.starts_at == target and second.sequence == 1
    assert meeting.occurrences[0].sequence == 0


def test_moving_this_and_following_starts_a_new_series_with_its_own_uid(session, request_for, day):
    meeting = service.book_meeting(session, request_for("Giao ban", ["TQ-NH"], recurrence=Recurrence(
        Frequency.WEEKLY, count=4)))
    third = meeting.occurrences[2]
    new_start = third.starts_at + dt.timedelta(hours=6)
    new = service.move_occurrence(session, third, new_start, new_start + dt.timedelta(hours=1), following=True)
    assert new.uid != meeting.uid and new.split_from_id == meeting.id
    assert len(meeting.occurrences) == 2 and len(new.occurrences) == 2
    assert "UNTIL=" in meeting.rrule and "COUNT" not in meeting.rrule and meeting.sequence == 1
    assert new.rrule == "FREQ=WEEKLY;COUNT=2"
    assert all(o.recurrence_id == o.starts_at for o in new.occurrences)


def test_a_cancelled_meeting_frees_its_rooms_ports_and_bandwidth(session, request_for, bridge, uplink):
    meeting = service.book_meeting(session, request_for("Họp", ["TQ-LB"], bridge_id=bridge.id))
    held = meeting.occurrences[0]
    rooms = {p.site_id: p.endpoint_id for p in held.participations}
    # The meeting takes every port of the bridge and the whole of the district's uplink: the replacement below
    # fits only if the cancellation gave back all of them.
    bridge.total_ports = held.ports
    uplink("TQ-LB").bandwidth_kbps = 2400
    session.flush()
    service.cancel_meeting(session, meeting)
    assert session.scalar(sa.select(sa.func.count(LinkReservation.id)).where(
        LinkReservation.occurrence_id == held.id)) == 0
    again = service.book_meeting(session, request_for("Họp thay thế", ["TQ-LB"], bridge_id=bridge.id)).occurrences[0]
    assert {p.site_id: p.endpoint_id for p in again.participations} == rooms
    assert again.bridge_id == bridge.id and again.ports == bridge.total_ports == 2
    assert {r.link_id: r.kbps for r in again.link_reservations} == {uplink("TQ-LB").id: 2400}


def test_a_booking_across_a_replaced_dedicated_line_reserves_the_new_line_not_the_older_backup(session, request_for):
    lines = replace_dedicated_line(session, "TQ-CH")
    meeting = service.book_meeting(session, request_for("Họp huyện Chiêm Hóa", ["TQ-CH"]))
    load = {r.link_id: r.kbps for r in meeting.occurrences[0].link_reservations}
    assert load == {lines.replacement.id: 2400}


def test_a_failed_over_site_books_on_its_backup_within_the_backups_own_bandwidth(session, request_for):
    lines = fail_over(session, "TQ-NH", backup_kbps=2000)
    with pytest.raises(BookingRefused) as err:
        service.book_meeting(session, request_for("Họp về phòng chống lũ", ["TQ-NH"]))
    [clash] = clashes_of(err)
    assert clash["kind"] == "link" and clash["resource"] == "link TQ-NH-4G"
    assert "The link TQ-NH-4G (2000 kbit/s) would carry 2400 kbit/s" in clash["message"]
    lines.backup.bandwidth_kbps = 3000
    meeting = service.book_meeting(session, request_for("Họp về phòng chống lũ", ["TQ-NH"]))
    assert {r.link_id: r.kbps for r in meeting.occurrences[0].link_reservations} == {lines.backup.id: 2400}


def test_a_draft_holds_nothing_until_it_is_scheduled(session, request_for):
    draft = service.book_meeting(session, request_for("Dự thảo", ["TQ-LB"], draft=True))
    assert draft.occurrences[0].status is OccurrenceStatus.DRAFT
    taken = service.book_meeting(session, request_for("Họp thật", ["TQ-LB"]))
    with pytest.raises(BookingRefused) as err:
        service.schedule_draft(session, draft)
    assert "Họp thật" in err.value.message
    service.cancel_meeting(session, taken)
    service.schedule_draft(session, draft)
    assert draft.occurrences[0].status is OccurrenceStatus.SCHEDULED


def test_meetings_start_and_end_on_their_own(session, request_for, day):
    meeting = service.book_meeting(session, request_for("Họp", ["TQ-LB"]))
    occurrence = meeting.occurrences[0]
    service.advance_lifecycle(session, now=occurrence.starts_at + dt.timedelta(minutes=5))
    assert occurrence.status is OccurrenceStatus.IN_PROGRESS
    service.advance_lifecycle(session, now=occurrence.ends_at)
    assert occurrence.status is OccurrenceStatus.COMPLETED


def test_moving_a_whole_date_ended_series_keeps_its_last_occurrence_in_the_rule(session, request_for, day):
    meeting = service.book_meeting(session, request_for("Giao ban", ["TQ-NH"], recurrence=Recurrence(
        Frequency.WEEKLY, until=day + dt.timedelta(days=14))))
    first = meeting.occurrences[0]
    later = first.starts_at + dt.timedelta(hours=2)
    service.move_occurrence(session, first, later, later + dt.timedelta(hours=1), following=True)
    from dateutil.rrule import rrulestr

    rule = rrulestr(meeting.rrule, dtstart=meeting.occurrences[0].starts_at)
    assert list(rule) == [o.starts_at for o in meeting.occurrences]
    assert all(o.recurrence_id == o.starts_at for o in meeting.occurrences)


def test_moving_the_last_occurrence_with_its_following_ones_moves_only_it(session, request_for, day):
    meeting = service.book_meeting(session, request_for("Giao ban", ["TQ-NH"], recurrence=Recurrence(
        Frequency.WEEKLY, count=3)))
    last = meeting.occurrences[2]
    original = last.starts_at
    target = service.move_occurrence(session, last, original + dt.timedelta(hours=3),
                                     original + dt.timedelta(hours=4), following=True)
    assert target is meeting and meeting.rrule == "FREQ=WEEKLY;COUNT=3"
    assert last.recurrence_id == original and last.sequence == 1


def test_booking_moving_and_cancelling_are_in_the_audit_log(session, request_for, day):
    from app.auth.audit import Actor, AuditEntry, reset_actor, set_actor

    token = set_actor(Actor(None, "secretariat@example.com"))
    try:
        meeting = service.book_meeting(session, request_for("Họp ban chỉ đạo", ["TQ-LB"]))
        occurrence = meeting.occurrences[0]
        later = occurrence.starts_at + dt.timedelta(hours=2)
        service.move_occurrence(session, occurrence, later, later + dt.timedelta(hours=1))
        service.cancel_meeting(session, meeting)
    finally:
        reset_actor(token)
    entries = session.scalars(sa.select(AuditEntry).where(
        AuditEntry.object_type.in_(["Meeting", "Occurrence"]), AuditEntry.actor == "secretariat@example.com")
        .order_by(AuditEntry.id)).all()
    assert [(e.object_type, e.action) for e in entries][:2] == [("Meeting", "create"), ("Occurrence", "create")]
    moved = next(e for e in entries if e.action == "update" and "starts_at" in (e.after or {}))
    assert moved.after["starts_at"] == later.astimezone(dt.UTC).isoformat()
    assert any(e.after and e.after.get("status") == "cancelled" for e in entries)
