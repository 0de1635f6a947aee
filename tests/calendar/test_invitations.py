"""Every site's contacts receive the meeting by mail, with a calendar invite their mail client understands.

A real SMTP server (aiosmtpd) receives the mails; the invites are read with icalendar and, independently,
with vobject; series are expanded with recurring-ical-events.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import recurring_ical_events
import sqlalchemy as sa
import vobject
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from app.calendar import wording
from app.calendar.invitations import InvitationsNotSent
from app.calendar.models import Delivery, DeliveryStatus
from app.db import db
from app.meetings import service
from app.meetings.models import Classification, Occurrence, OccurrenceStatus
from app.meetings.service import Frequency, Recurrence
from tests.support.served import free_port

from .conftest import (
    LOCAL,
    Recorder,
    book,
    booking,
    calendar_of,
    change,
    events,
    invite_of,
    local,
    meeting,
    run_outbox,
)

MAIL_FROM = "vanphong@tuyenquang.example.com"
NA_HANG = ["vanphong.tqnh@example.com", "kythuat.tqnh@example.com"]


def deliveries(meeting_id: int) -> list[Delivery]:
    rows = list(db.session.scalars(sa.select(Delivery).where(Delivery.meeting_id == meeting_id)
                                   .order_by(Delivery.id)))
    db.session.remove()
    return rows


def occurrence_ids(meeting_id: int) -> list[int]:
    ids = [o.id for o in meeting(meeting_id).occurrences]
    db.session.remove()
    return ids


def weekly(count: int) -> Recurrence:
    return Recurrence(Frequency.WEEKLY, count=count)


def text_body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_body(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def expand(cal, start: dt.date, weeks: int = 10) -> list[dt.datetime]:
    end = start + dt.timedelta(weeks=weeks)
    return sorted(e["DTSTART"].dt for e in recurring_ical_events.of(cal).between(start, end))


# ---------------------------------------------------------------- a booking

def test_each_contact_of_each_site_receives_one_invitation_with_a_calendar_invite(mail_app, smtp, week):
    meeting_id = book(booking("Họp giao ban tháng 3", ["TQ-NH", "TQ-CH-VL"], week, chair="Chủ tịch UBND tỉnh",
                              notes="Các đơn vị chuẩn bị báo cáo."))
    assert run_outbox() == []

    sites = ["tq", "tqnh", "tqchvl"]
    expected = sorted(f"{who}.{s}@example.com" for s in sites for who in ("vanphong", "kythuat"))
    assert sorted(a for r in smtp.received for a in r.rcpt_tos) == expected
    assert all(r.mail_from == MAIL_FROM and len(r.rcpt_tos) == 1 for r in smtp.received)
    assert [d.status for d in deliveries(meeting_id)] == [DeliveryStatus.SENT] * 6
    uid = meeting(meeting_id).uid
    conference, pin = meeting(meeting_id).conference_number, meeting(meeting_id).pin

    [message] = smtp.to("vanphong.tqnh@example.com")
    assert "Họp giao ban tháng 3" in message["Subject"]
    part, raw = invite_of(message)
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST" and part.get_param("charset").upper() == "UTF-8"
    # RFC 5545 to the letter: CRLF everywhere, lines folded at 75 octets.
    assert raw.count(b"\r\n") == raw.count(b"\n") and raw.endswith(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 75

    cal = calendar_of(message)
    assert cal["METHOD"] == "REQUEST" and cal["VERSION"] == "2.0" and cal["PRODID"]
    [tz] = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "Asia/Ho_Chi_Minh"
    assert [s["TZOFFSETTO"].td for s in tz.walk("STANDARD")] == [dt.timedelta(hours=7)]
    [event] = events(cal)
    assert event["UID"] == uid and event["SEQUENCE"] == 0 and event["STATUS"] == "CONFIRMED"
    assert event["DTSTART"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert event["DTSTART"].dt == local(week, "08:00") and event["DTEND"].dt == local(week, "09:00")
    assert event["DTSTAMP"].to_ical().endswith(b"Z")
    assert str(event["ORGANIZER"]) == f"mailto:{MAIL_FROM}" and event["ORGANIZER"].params["CN"] == "Văn phòng UBND tỉnh"
    attendees = event["ATTENDEE"]
    assert sorted(str(a).removeprefix("mailto:") for a in attendees) == expected
    assert {(a.params["RSVP"], a.params["ROLE"], a.params["PARTSTAT"]) for a in attendees} == {
        ("FALSE", "REQ-PARTICIPANT", "NEEDS-ACTION")}
    assert "UBND tỉnh Tuyên Quang" in event["LOCATION"] and "sip:hop@vc.tuyenquang.example.com" in event["LOCATION"]
    assert conference in event["DESCRIPTION"] and pin in event["DESCRIPTION"]
    assert event["URL"] == f"https://vcops.example.gov.vn/meetings/{meeting_id}"

    # A second, independent parser reads the same.
    vcal = vobject.readOne(raw.decode())
    assert vcal.method.value == "REQUEST" and vcal.vtimezone.tzid.value == "Asia/Ho_Chi_Minh"
    vevent = vcal.vevent
    assert vevent.uid.value == uid and vevent.sequence.value == "0"
    # vobject resolves TZID through the invite's own VTIMEZONE, and remembers the name it had.
    assert vevent.dtstart.params["X-VOBJ-ORIGINAL-TZID"] == ["Asia/Ho_Chi_Minh"]
    assert vevent.dtstart.value.utcoffset() == dt.timedelta(hours=7)
    assert vevent.dtstart.value.astimezone(LOCAL) == local(week, "08:00")
    assert vevent.organizer.value == f"mailto:{MAIL_FROM}"
    assert len(vevent.attendee_list) == 6 and all(a.params["RSVP"] == ["FALSE"] for a in vevent.attendee_list)

    text, html = text_body(message), html_body(message)
    for body in (text, html):
        assert "Họp giao ban tháng 3" in body and "Chủ tịch UBND tỉnh" in body and "chuẩn bị báo cáo" in body
        assert "sip:hop@vc.tuyenquang.example.com" in body and conference in body and pin in body
        assert "/calendar/attendance/" in body
        assert f"https://vcops.example.gov.vn/meetings/{meeting_id}" in body


def test_the_sites_technical_contacts_also_get_the_setup_time(mail_app, smtp, week):
    book(booking("Họp kiểm tra", ["TQ-HY"], week, "09:00", "10:00", setup_minutes=45))
    assert run_outbox() == []
    [technician] = smtp.to("kythuat.tqhy@example.com")
    [secretary] = smtp.to("vanphong.tqhy@example.com")
    assert "08:15" in text_body(technician) and "45" in text_body(technician)
    assert "08:15" not in text_body(secretary)
    [event] = events(calendar_of(technician))
    assert "08:15" in event["DESCRIPTION"]
    [alarm] = event.walk("VALARM")
    assert alarm["ACTION"] == "DISPLAY" and alarm["TRIGGER"].dt == -dt.timedelta(minutes=45)
    [plain] = events(calendar_of(secretary))
    assert "08:15" not in plain["DESCRIPTION"] and not plain.walk("VALARM")


def test_the_agenda_and_documents_are_in_the_mail_and_a_restricted_meetings_documents_are_not(
        mail_app, smtp, week, monkeypatch):
    pdf = b"%PDF-1.7\n% minutes\n"
    agenda = SimpleNamespace(
        current_items=lambda session, m: [SimpleNamespace(title="Báo cáo tình hình", presenter="Sở KH&ĐT",
                                                          minutes=15)],
        mail_documents=lambda session, m: [SimpleNamespace(filename="bao-cao.pdf", content_type="application/pdf",
                                                           read_bytes=lambda: pdf)])
    monkeypatch.setattr(wording, "_agenda_module", lambda: agenda)
    book(booking("Họp thường", ["TQ-LB"], week))
    book(booking("Họp mật", ["TQ-SD"], week, classification=Classification.RESTRICTED))
    assert run_outbox() == []

    [normal] = smtp.to("vanphong.tqlb@example.com")
    assert normal.get_content_type() == "multipart/mixed"
    [attachment] = list(normal.iter_attachments())
    assert attachment.get_filename() == "bao-cao.pdf" and attachment.get_content() == pdf
    assert "Báo cáo tình hình" in text_body(normal) and "Sở KH&ĐT" in text_body(normal)
    assert "Sở KH&amp;ĐT" in html_body(normal)
    assert "Báo cáo tình hình" in events(calendar_of(normal))[0]["DESCRIPTION"]

    [restricted] = smtp.to("vanphong.tqsd@example.com")
    assert list(restricted.iter_attachments()) == []
    assert restricted.get_content_type() == "multipart/alternative"
    assert "log in to VCOps" in text_body(restricted)
    assert events(calendar_of(restricted))[0]["CLASS"] == "CONFIDENTIAL"


def test_an_update_with_a_note_says_what_changed_and_raises_the_sequence(mail_app, smtp, week):
    from app.calendar import invitations
    from app.db import commit_scope

    meeting_id = book(booking("Họp có chương trình", ["TQ-LB"], week))
    run_outbox()
    [before] = events(calendar_of(smtp.to("vanphong.tqlb@example.com")[0]))
    smtp.received.clear()
    with commit_scope() as session:
        invitations.queue(session, meeting(meeting_id), "request", note="Version 2: one item added.")
    db.session.remove()
    assert run_outbox() == []

    [message] = smtp.to("vanphong.tqlb@example.com")
    assert message["Subject"].startswith("Updated")
    assert "Version 2: one item added." in text_body(message) and "Version 2: one item added." in html_body(message)
    [after] = events(calendar_of(message))
    assert after["UID"] == before["UID"] and after["SEQUENCE"] > before["SEQUENCE"]


# ---------------------------------------------------------------- series

def test_a_weekly_series_expands_to_its_occurrences_without_the_skipped_one(mail_app, smtp, week):
    third = week + dt.timedelta(weeks=2)
    book(booking("Họp chiếm phòng", ["TQ-NH"], third))
    run_outbox()
    smtp.received.clear()
    book(booking("Giao ban tuần", ["TQ-NH"], week, recurrence=weekly(4), skip_clashing=True))
    run_outbox()

    [message] = smtp.to("vanphong.tqnh@example.com")
    cal = calendar_of(message)
    [master] = events(cal)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=4"
    assert [d.dt for d in master["EXDATE"].dts] == [local(third, "08:00")]
    assert master["EXDATE"].params["TZID"] == "Asia/Ho_Chi_Minh"
    starts = [local(week + dt.timedelta(weeks=n), "08:00") for n in (0, 1, 3)]
    assert expand(cal, week) == starts
    # vobject expands the same rule with its own code.
    vevent = vobject.readOne(invite_of(message)[1].decode()).vevent
    assert [s.astimezone(LOCAL) for s in vevent.getrruleset(addRDate=True)] == starts
    assert "a series" in message["Subject"]
    assert len(re.findall("/calendar/attendance/", text_body(message))) == 3


def test_moving_one_occurrence_sends_that_instance_with_a_higher_sequence(mail_app, smtp, week):
    meeting_id = book(booking("Giao ban tuần", ["TQ-YS"], week, recurrence=weekly(3)))
    run_outbox()
    [first_invite] = smtp.to("vanphong.tqys@example.com")
    [master] = events(calendar_of(first_invite))
    second = week + dt.timedelta(weeks=1)
    occurrence_id = occurrence_ids(meeting_id)[1]
    smtp.received.clear()

    change(service.move_occurrence, db.session.get(Occurrence, occurrence_id), local(second, "14:00"),
           local(second, "15:30"))
    assert run_outbox() == []

    [update] = smtp.to("vanphong.tqys@example.com")
    assert update["Subject"].startswith("Updated")
    cal = calendar_of(update)
    assert cal["METHOD"] == "REQUEST"
    [instance] = events(cal)
    assert instance["UID"] == master["UID"]
    assert instance["RECURRENCE-ID"].dt == local(second, "08:00")
    assert instance["RECURRENCE-ID"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert instance["DTSTART"].dt == local(second, "14:00") and instance["DTEND"].dt == local(second, "15:30")
    assert instance["SEQUENCE"] > master["SEQUENCE"]

    # The whole series as sent later (say, to a feed) holds the move as an override of the rule.
    from app.calendar import ics
    details = ics.EventDetails(organizer=ics.Party("", MAIL_FROM), url="u", location=lambda b: "",
                               description=lambda b, s: "")
    whole = ics.request(meeting(meeting_id), details)
    assert expand(whole, week) == [local(week, "08:00"), local(second, "14:00"),
                                   local(week + dt.timedelta(weeks=2), "08:00")]


def test_moving_this_and_following_ends_the_series_and_starts_one_with_a_new_uid(mail_app, smtp, week):
    meeting_id = book(booking("Giao ban tuần", ["TQ-SD"], week, recurrence=weekly(4)))
    run_outbox()
    [original] = events(calendar_of(smtp.to("vanphong.tqsd@example.com")[0]))
    third = week + dt.timedelta(weeks=2)
    smtp.received.clear()

    change(service.move_occurrence, db.session.get(Occurrence, occurrence_ids(meeting_id)[2]), local(third, "10:00"),
           local(third, "11:00"), following=True)
    assert run_outbox() == []

    sent = {events(calendar_of(m))[0]["UID"]: calendar_of(m) for m in smtp.to("vanphong.tqsd@example.com")}
    assert len(sent) == 2 and original["UID"] in sent
    old = sent.pop(original["UID"])
    [(new_uid, new)] = sent.items()
    [old_master] = events(old)
    assert old_master["SEQUENCE"] > original["SEQUENCE"]
    assert "UNTIL" in old_master["RRULE"] and "COUNT" not in old_master["RRULE"]
    assert expand(old, week) == [local(week, "08:00"), local(week + dt.timedelta(weeks=1), "08:00")]
    assert expand(new, week) == [local(third, "10:00"), local(third + dt.timedelta(weeks=1), "10:00")]
    assert new_uid != original["UID"]


def test_a_series_ending_on_a_date_moved_later_still_shows_every_occurrence(mail_app, smtp, week):
    until = week + dt.timedelta(weeks=3)
    meeting_id = book(booking("Giao ban đến ngày", ["TQ-CH"], week,
                              recurrence=Recurrence(Frequency.WEEKLY, until=until)))
    run_outbox()
    smtp.received.clear()
    change(service.move_occurrence, db.session.get(Occurrence, occurrence_ids(meeting_id)[0]), local(week, "10:00"),
           local(week, "11:00"), following=True)
    assert run_outbox() == []

    [message] = smtp.to("vanphong.tqch@example.com")
    stored = sorted(o.starts_at for o in meeting(meeting_id).occurrences)
    assert expand(calendar_of(message), week) == [s.astimezone(LOCAL) for s in stored]
    assert stored[-1].astimezone(LOCAL) == local(until, "10:00")


# ---------------------------------------------------------------- cancellations

def test_cancelling_a_meeting_sends_a_cancellation_with_the_same_uid_and_a_higher_sequence(mail_app, smtp, week):
    meeting_id = book(booking("Họp hủy", ["TQ-CH"], week))
    run_outbox()
    [invited] = events(calendar_of(smtp.to("vanphong.tqch@example.com")[0]))
    smtp.received.clear()

    change(service.cancel_meeting, meeting(meeting_id))
    assert run_outbox() == []

    [message] = smtp.to("vanphong.tqch@example.com")
    assert message["Subject"].startswith("Cancelled")
    part, raw = invite_of(message)
    assert part.get_param("method") == "CANCEL"
    cal = calendar_of(message)
    assert cal["METHOD"] == "CANCEL"
    [event] = events(cal)
    assert event["UID"] == invited["UID"] and event["SEQUENCE"] > invited["SEQUENCE"]
    assert event["STATUS"] == "CANCELLED" and "RECURRENCE-ID" not in event
    assert vobject.readOne(raw.decode()).method.value == "CANCEL"
    assert "/calendar/attendance/" not in text_body(message)
    assert meeting(meeting_id).occurrences[0].status is OccurrenceStatus.CANCELLED


def test_cancelling_one_occurrence_cancels_that_instance_then_the_series_goes_whole(mail_app, smtp, week):
    meeting_id = book(booking("Giao ban tuần", ["TQ-LB-TL"], week, recurrence=weekly(3)))
    run_outbox()
    smtp.received.clear()
    change(service.cancel_occurrence, db.session.get(Occurrence, occurrence_ids(meeting_id)[1]))
    assert run_outbox() == []

    [message] = smtp.to("vanphong.tqlbtl@example.com")
    cal = calendar_of(message)
    [event] = events(cal)
    assert cal["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
    assert event["RECURRENCE-ID"].dt == local(week + dt.timedelta(weeks=1), "08:00")
    assert event["SEQUENCE"] >= 1

    smtp.received.clear()
    change(service.cancel_meeting, meeting(meeting_id))
    assert run_outbox() == []
    [series] = events(calendar_of(smtp.to("vanphong.tqlbtl@example.com")[0]))
    assert series["STATUS"] == "CANCELLED" and "RECURRENCE-ID" not in series and "EXDATE" not in series
    assert series["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=3" and series["SEQUENCE"] == 1


# ---------------------------------------------------------------- failures and the embedded mode

def test_a_refused_recipient_gets_a_failed_delivery_with_the_reply_and_the_meeting_stays(mail_app, smtp, week):
    smtp.refuse["vanphong.tqnh@example.com"] = "550 5.1.1 <vanphong.tqnh@example.com>: Recipient address rejected"
    meeting_id = book(booking("Họp có người nhận sai", ["TQ-NH"], week))
    assert run_outbox() == []  # a permanent refusal is recorded; retrying would not change it

    by_email = {d.email: d for d in deliveries(meeting_id)}
    refused = by_email.pop("vanphong.tqnh@example.com")
    assert refused.status is DeliveryStatus.FAILED and refused.permanent
    assert refused.reply.startswith("550 5.1.1") and "Recipient address rejected" in refused.reply
    assert {d.status for d in by_email.values()} == {DeliveryStatus.SENT} and len(by_email) == 3
    assert meeting(meeting_id).occurrences[0].status is OccurrenceStatus.SCHEDULED


def test_a_temporary_refusal_is_retried_and_only_the_unsent_mail_goes_again(mail_app, smtp, week):
    smtp.refuse["kythuat.tqnh@example.com"] = "451 4.3.0 Mailbox busy, try again later"
    meeting_id = book(booking("Họp thử lại", ["TQ-NH"], week))
    [error] = run_outbox()
    assert isinstance(error, InvitationsNotSent)
    [failed] = [d for d in deliveries(meeting_id) if d.status is DeliveryStatus.FAILED]
    assert failed.email == "kythuat.tqnh@example.com" and failed.reply.startswith("451")
    assert not failed.permanent and failed.attempts == 1
    assert meeting(meeting_id).occurrences[0].status is OccurrenceStatus.SCHEDULED
    assert len(smtp.received) == 3

    smtp.refuse.clear()
    smtp.received.clear()
    assert run_outbox() == []  # the queue's retry
    assert [r.rcpt_tos for r in smtp.received] == [["kythuat.tqnh@example.com"]]
    rows = deliveries(meeting_id)
    assert {d.status for d in rows} == {DeliveryStatus.SENT} and len(rows) == 4
    assert next(d for d in rows if d.email == "kythuat.tqnh@example.com").attempts == 2


def test_a_mail_server_that_does_not_answer_fails_every_delivery_for_a_retry(mail_app, smtp, week):
    mail_app.config.update(SMTP_PORT=free_port(), SMTP_TIMEOUT=2)
    meeting_id = book(booking("Họp khi máy chủ thư tắt", ["TQ-HY-TS"], week))
    [error] = run_outbox()
    assert isinstance(error, InvitationsNotSent)
    rows = deliveries(meeting_id)
    assert {d.status for d in rows} == {DeliveryStatus.FAILED} and all("Connection" in d.reply for d in rows)
    assert meeting(meeting_id).occurrences[0].status is OccurrenceStatus.SCHEDULED


def test_without_an_smtp_server_each_mail_is_written_as_an_eml_file(mail_app, smtp, week):
    mail_app.config["SMTP_HOST"] = ""
    outbox = Path(mail_app.config["INSTANCE_PATH"]) / "outbox"
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    meeting_id = book(booking("Họp chế độ nhúng", ["TQ-YS-TM"], week))
    assert run_outbox() == []
    files = set(outbox.glob("*.eml")) - before
    assert len(files) == 4 and smtp.received == []
    import email
    import email.policy

    messages = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert {m["To"].addresses[0].addr_spec for m in messages} == {
        "vanphong.tq@example.com", "kythuat.tq@example.com", "vanphong.tqystm@example.com",
        "kythuat.tqystm@example.com"}
    raw = invite_of(messages[0])[1]
    assert raw.count(b"\r\n") == raw.count(b"\n")
    assert events(calendar_of(messages[0]))[0]["UID"] == meeting(meeting_id).uid
    assert {d.status for d in deliveries(meeting_id)} == {DeliveryStatus.SENT}


def test_the_smtp_login_is_used_and_the_password_never_reaches_a_log(mail_app, week, caplog):
    secret = "s3cr3t-Passw0rd"

    class Authenticator:
        def __call__(self, server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"vcops" and auth_data.password == secret.encode()
            return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, authenticator=Authenticator(),
                            auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        mail_app.config.update(SMTP_PORT=port, SMTP_USERNAME="vcops", SMTP_PASSWORD="wrong-" + secret)
        caplog.set_level(logging.DEBUG)
        refused_id = book(booking("Họp mật khẩu sai", ["TQ-CH-KB"], week))
        [error] = run_outbox()
        assert all(d.status is DeliveryStatus.FAILED and d.reply.startswith("535") for d in deliveries(refused_id))
        assert secret not in caplog.text and secret not in str(error)

        mail_app.config["SMTP_PASSWORD"] = secret
        assert run_outbox() == []
        assert {d.status for d in deliveries(refused_id)} == {DeliveryStatus.SENT}
        assert len(recorder.received) == 4
        assert secret not in caplog.text
        assert all(secret not in d.reply for d in deliveries(refused_id))
    finally:
        controller.stop()


def test_a_draft_sends_nothing_until_it_is_scheduled(mail_app, smtp, week):
    meeting_id = book(booking("Bản nháp", ["TQ-LB"], week, draft=True))
    assert run_outbox() == [] and smtp.received == []
    change(service.schedule_draft, meeting(meeting_id))
    assert run_outbox() == []
    assert len(smtp.to("vanphong.tqlb@example.com")) == 1


def test_documents_too_large_for_one_mail_go_as_links_only(mail_app, smtp, week, monkeypatch):
    pdf = b"%PDF-1.7\n% small\n"

    def never_read() -> bytes:
        raise AssertionError("a linked-only document is never read")

    agenda = SimpleNamespace(
        current_items=lambda session, m: [],
        mail_documents=lambda session, m: [SimpleNamespace(filename="giay-moi.pdf", content_type="application/pdf",
                                                           read_bytes=lambda: pdf)],
        linked_documents=lambda session, m: [SimpleNamespace(filename="ban-do.pdf", content_type="application/pdf",
                                                             read_bytes=never_read)],
        signed_download_url=lambda doc: f"https://vcops.example/d/{doc.filename}")
    monkeypatch.setattr(wording, "_agenda_module", lambda: agenda)
    book(booking("Họp thường", ["TQ-LB"], week))
    assert run_outbox() == []
    [normal] = smtp.to("vanphong.tqlb@example.com")
    assert [a.get_filename() for a in normal.iter_attachments()] == ["giay-moi.pdf"]
    assert "ban-do.pdf (too large to attach: download it from the link): https://vcops.example/d/ban-do.pdf" \
        in text_body(normal)
    assert 'href="https://vcops.example/d/ban-do.pdf"' in html_body(normal)
