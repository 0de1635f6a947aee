"""Invitations to the participating sites, sent by the task queue after the change is committed.

A change to a meeting calls `queue()`, which writes an outbox row in the change's own transaction. After
the commit, the queue runs `send_invitations`: it records one Delivery per recipient (each contact with
an email of each participating site), then sends and records each of them on its own, so that one
refusal never stops the others. When some failed for a reason that may pass (a 4xx reply, a server
that does not answer), it raises after recording them: the queue retries the handler, which then
sends only the deliveries not yet sent. A mail failure never touches the meeting: it is committed.

Each delivery is sent at most once. The rule, per delivery: just before the final "." of the mail's data (the
first instant at which the server can take it, app/calendar/mail.py) the worker commits `handed_at`, taken
with a conditional UPDATE so that two runs never hand over the same delivery; after the server's reply it
commits the outcome ("sent" on 250, "failed" with the reply otherwise) and clears `handed_at`. So:
  - a delivery without `handed_at` that is not sent was certainly not delivered: a later run sends it (a worker
    stopped before the final ".", or never reached it: SIGKILL, SIGTERM, a crash);
  - a delivery whose server replied is recorded as the reply says;
  - a delivery still holding `handed_at` when a later run of its send-out finds it (the worker stopped between
    the "." and recording the reply), or whose connection broke after the "." before a reply, may have been
    delivered: SMTP gives no way to ask the server. It is not sent again automatically; it is recorded
    failed for good ("may have arrived"), shown on the meeting's page with a resend, and counted by the
    operators' alert, so a person who can ask the site decides. We chose a possible missing invitation, seen
    and resendable, over a silent duplicate: the window is the server's reply to one mail.
A delivery refused with a 5xx, or out of attempts (MAX_ATTEMPTS), is failed for good too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from app.auth.models import User
from app.calendar import ics, mail, wording
from app.calendar.models import Delivery, DeliveryKind, DeliveryStatus
from app.calendar.service import attendance_url, deliveries_for, may_confirm, meeting_url
from app.db import commit_scope, db, read_only_intent, utcnow
from app.meetings import signals
from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus
from app.queue import outbox
from app.sites.models import ContactRole, Site

log = logging.getLogger(__name__)
MAX_LISTED = 10  # occurrences listed (with their attendance links) in one mail; the rest are in VCOps
# The queue retries a batch a few times and the outbox sweep keeps handing it back; after this many
# attempts a failing delivery is given up (it stays failed, with the last reply, on the meeting's page).
MAX_ATTEMPTS = 10


class InvitationsNotSent(Exception):
    """Some deliveries failed for a reason that may pass; raised so that the task queue retries them."""


class _HandedElsewhere(Exception):
    """Another run of the same send-out handed this delivery over, or recorded it, first."""


def queue(session: so.Session, meeting: Meeting, method: str, occurrence_ids: list[int] | None = None,
          note: str = "") -> None:
    """Ask for invitations (method "request") or cancellations ("cancel"), sent after the commit.

    `occurrence_ids` limits the message to those occurrences of a series (None: the whole meeting);
    `note` says in a few words what changed (shown in the mail). A note on a request means the invite's
    content changed (the agenda, say): its SEQUENCE is raised here, so that every calendar takes the update.
    """
    if method not in {k.value for k in DeliveryKind}:
        raise ValueError(f"unknown invitation method {method!r}")
    if note and method == DeliveryKind.REQUEST:
        meeting.sequence += 1
    session.flush()
    outbox.enqueue(session, "calendar.send_invitations", meeting_id=meeting.id, method=method,
                   occurrence_ids=occurrence_ids, note=note, batch=uuid.uuid4().hex)


def connect() -> None:
    """Receive the meetings' and agenda's changes (app.meetings.signals): each queues the sites' mails; and
    put the calendar's part on a meeting's page (its deliveries, the attendance buttons)."""
    signals.sites_to_notify.connect(_on_sites_to_notify)
    signals.meeting_page.connect(_on_meeting_page)


def _on_meeting_page(meeting: Meeting, *, session: so.Session, viewer: User, extras: signals.PageExtras,
                     deliveries: bool) -> None:
    if deliveries:
        extras.deliveries = deliveries_for(session, meeting.id)
    extras.may_confirm = lambda participation: may_confirm(viewer, participation)


def _on_sites_to_notify(meeting: Meeting, *, session: so.Session, method: str, occurrence_ids: list[int] | None,
                        note: str) -> None:
    queue(session, meeting, method, occurrence_ids, note=note)


def send_invitations(meeting_id: int, method: str, occurrence_ids: list[int] | None = None, note: str = "",
                     batch: str = "") -> None:
    batch = batch or f"meeting-{meeting_id}-{method}"
    with commit_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            return
        rows = list(session.scalars(sa.select(Delivery).where(Delivery.batch == batch).order_by(Delivery.id)))
        if not rows:
            rows = _record_deliveries(session, meeting, DeliveryKind(method), occurrence_ids, batch, note)
        for delivery in rows:
            if delivery.handed_at is not None and delivery.status is not DeliveryStatus.SENT:
                _give_up_maybe_sent(delivery)
        pending = [d.id for d in rows if d.pending]
    if not pending:
        return

    config = current_app.config
    with read_only_intent(), force_locale(config["DEFAULT_LANGUAGE"]):
        send_out = _prepare(db.session(), meeting_id, DeliveryKind(method), occurrence_ids, note, pending)
        db.session.rollback()  # end the read: no transaction stays open while the mail server answers

    retry = 0
    with mail.Mailer(config) as mailer:
        for delivery_id in pending:
            message = send_out.messages[delivery_id]
            try:
                mailer.send(message, handing=lambda delivery_id=delivery_id: _hand_over(delivery_id))
                failure = None
            except mail.SendFailed as exc:
                failure = exc
            except _HandedElsewhere:
                continue  # that run records it
            if not _record(delivery_id, send_out.subject, failure):
                retry += 1
    if retry:
        raise InvitationsNotSent(f"{retry} of {len(pending)} invitations of meeting {meeting_id} were not sent; "
                                 "they will be tried again")


def _give_up_maybe_sent(delivery: Delivery) -> None:
    """A run that stopped between the final "." and recording the reply: maybe delivered, never sent again by
    the queue (see the module's docstring); a person resends it from the meeting's page."""
    delivery.attempts += 1
    delivery.status, delivery.permanent, delivery.reply = DeliveryStatus.FAILED, True, ""
    log.warning("invitation %s to %s may have been delivered by a worker that stopped before recording the "
                "server's reply; it is not sent again unless resent", delivery.id, delivery.email)


def _hand_over(delivery_id: int) -> None:
    """Commit that this delivery's data is about to end (the mail may be delivered from here on); only one run
    gets it, so a delivery is never handed over twice."""
    with commit_scope() as session:
        now = utcnow()
        taken = session.execute(
            sa.update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.handed_at.is_(None),
                   Delivery.status != DeliveryStatus.SENT, sa.not_(Delivery.permanent))
            .values(handed_at=now, last_attempt_at=now)
            .execution_options(synchronize_session=False)).rowcount
    if not taken:
        raise _HandedElsewhere(delivery_id)


def _record(delivery_id: int, subject: str, failure: mail.SendFailed | None) -> bool:
    """Record the outcome of one delivery; False when it failed and should be tried again."""
    with commit_scope() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return True
        delivery.attempts += 1
        delivery.subject = subject[:400]
        delivery.last_attempt_at = utcnow()
        if failure is None:
            delivery.status, delivery.sent_at, delivery.reply = DeliveryStatus.SENT, utcnow(), ""
            delivery.permanent, delivery.handed_at = False, None
        elif failure.maybe_delivered:
            # The "." went out and the connection broke before the reply: as a run that stopped there.
            delivery.status, delivery.permanent, delivery.reply = DeliveryStatus.FAILED, True, failure.reply[:2000]
            log.warning("invitation %s to %s may have been delivered (no reply after its data): %s", delivery_id,
                        delivery.email, failure.reply)
        else:
            delivery.status, delivery.reply, delivery.handed_at = DeliveryStatus.FAILED, failure.reply[:2000], None
            delivery.permanent = failure.permanent or delivery.attempts >= MAX_ATTEMPTS
            log.warning("invitation %s to %s not sent: %s", delivery_id, delivery.email, failure.reply)
        return not delivery.pending


# ---------------------------------------------------------------- who receives it

def _affected(session: so.Session, meeting: Meeting, occurrence_ids: list[int] | None) -> list[Occurrence]:
    if occurrence_ids is None:
        chosen = list(meeting.occurrences)
    else:
        chosen = list(session.scalars(sa.select(Occurrence).where(Occurrence.id.in_(occurrence_ids),
                                                                  Occurrence.meeting_id == meeting.id)))
    return sorted((o for o in chosen if o.status is not OccurrenceStatus.DRAFT), key=lambda o: o.starts_at)


@dataclass
class Recipient:
    site: Site
    email: str
    name: str
    technical: bool


def recipients(session: so.Session, occurrences: list[Occurrence]) -> list[Recipient]:
    """Each contact with an email of each site taking part in these occurrences, once per address."""
    sites: dict[int, Site] = {}
    for occurrence in occurrences:
        for participation in occurrence.participations:
            sites.setdefault(participation.site_id, participation.site)
    found: dict[str, Recipient] = {}
    for site in sorted(sites.values(), key=lambda s: s.path):
        for contact in site.contacts:
            email = contact.email.strip()
            if not email:
                continue
            key = email.lower()
            technical = contact.role is ContactRole.TECHNICAL
            if key in found:
                found[key].technical = found[key].technical or technical
            else:
                found[key] = Recipient(site, email, contact.name, technical)
    return list(found.values())


def _record_deliveries(session: so.Session, meeting: Meeting, kind: DeliveryKind, occurrence_ids: list[int] | None,
                       batch: str, note: str) -> list[Delivery]:
    rows = [Delivery(batch=batch, meeting_id=meeting.id, kind=kind, occurrence_ids=occurrence_ids, site_id=r.site.id,
                     email=r.email, name=r.name, technical=r.technical, note=note)
            for r in recipients(session, _affected(session, meeting, occurrence_ids))]
    session.add_all(rows)
    session.flush()
    return rows


# ---------------------------------------------------------------- what they receive

@dataclass
class SendOut:
    subject: str
    messages: dict[int, Any] = field(default_factory=dict)  # delivery id -> EmailMessage


def _subject(meeting: Meeting, kind: DeliveryKind, first: dt.datetime | None, updated: bool, whole_series: bool) -> str:
    values = {"title": meeting.title, "when": wording.when(first) if first else ""}
    if kind is DeliveryKind.CANCEL:
        return _("Cancelled: %(title)s, a series from %(when)s", **values) if whole_series \
            else _("Cancelled: %(title)s, %(when)s", **values)
    if updated:
        return _("Updated: %(title)s, a series from %(when)s", **values) if whole_series \
            else _("Updated: %(title)s, %(when)s", **values)
    return _("Invitation: %(title)s, a series from %(when)s", **values) if whole_series \
        else _("Invitation: %(title)s, %(when)s", **values)


def _tidy(text: str) -> str:
    """At most one blank line in a row: the template's optional blocks leave gaps."""
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip() + "\n"


def _invite(meeting: Meeting, kind: DeliveryKind, occurrences: list[Occurrence] | None, organizer: ics.Party,
            attendees: list[ics.Party], agenda: list[wording.AgendaLine], *, technical: bool) -> bytes:
    """The invite as sent: technical contacts' copy also carries the setup time and a reminder at it."""
    url = meeting_url(meeting.id)
    details = ics.EventDetails(
        organizer=organizer, url=url, attendees=attendees,
        location=lambda bridge: wording.location(meeting, bridge),
        description=lambda bridge, start: wording.description(meeting, bridge, start, agenda, url,
                                                              technical=technical),
        alarm=(lambda start: wording.setup_line(meeting, start)) if technical else None)
    build = ics.request if kind is DeliveryKind.REQUEST else ics.cancel
    return ics.to_bytes(build(meeting, details, occurrences))


def _prepare(session: so.Session, meeting_id: int, kind: DeliveryKind, occurrence_ids: list[int] | None, note: str,
             delivery_ids: list[int]) -> SendOut:
    """Compose every pending message while the data is at hand; sending happens after the read ends."""
    config = current_app.config
    meeting = session.get(Meeting, meeting_id)
    assert meeting is not None
    affected = _affected(session, meeting, occurrence_ids)
    shown = [o for o in affected if o.status in ics.TAKING_PLACE] if kind is DeliveryKind.REQUEST else affected
    whole_series = occurrence_ids is None and ics.is_series(meeting)
    sequence = meeting.sequence + max((o.sequence for o in affected), default=0)
    named = shown or affected or meeting.occurrences
    updated = bool(sequence or note)
    subject = _subject(meeting, kind, named[0].starts_at if named else None, updated=updated,
                       whole_series=whole_series)
    organizer = ics.Party(config["MAIL_FROM_NAME"], config["MAIL_FROM"])
    url = meeting_url(meeting.id)
    bridge = next((o.bridge for o in shown if o.bridge is not None), None)
    agenda = wording.agenda_lines(session, meeting)
    attendees = [ics.Party(r.name, r.email) for r in recipients(session, affected)]
    documents = wording.mail_documents(session, meeting) if kind is DeliveryKind.REQUEST else []

    targets = None if occurrence_ids is None else affected
    invites = {technical: _invite(meeting, kind, targets, organizer, attendees, agenda, technical=technical)
               for technical in (False, True)}

    now = utcnow()
    to_come = [o for o in shown if o.ends_at > now]
    listed = (to_come or shown)[:MAX_LISTED]
    deliveries = session.scalars(sa.select(Delivery).where(Delivery.id.in_(delivery_ids)))
    out = SendOut(subject=subject)
    for delivery in deliveries:
        rooms = {}
        links = []
        for occurrence in listed:
            for p in occurrence.participations:
                if p.site_id == delivery.site_id:
                    rooms[occurrence.id] = p.endpoint.room_name if p.endpoint else ""
                    if kind is DeliveryKind.REQUEST and p.confirmed_at is None \
                            and occurrence.status is OccurrenceStatus.SCHEDULED:
                        links.append((occurrence, attendance_url(p.id, delivery.email)))
        context = {
            "meeting": meeting, "kind": kind.value, "name": delivery.name, "site": delivery.site,
            "occurrences": listed, "more": max(0, len(to_come) - len(listed)), "rooms": rooms, "links": links,
            "note": note, "agenda": agenda, "dial_in": wording.dial_in(meeting, bridge),
            "technical": delivery.technical, "setup": [wording.setup_line(meeting, o.starts_at) for o in listed[:1]],
            "restricted": meeting.classification is Classification.RESTRICTED,
            "documents": documents, "url": url, "when": wording.when, "clock": wording.clock,
            "whole_series": whole_series, "updated": updated, "sender": organizer.name,
            "hosting": delivery.site_id == meeting.host_site_id,
        }
        out.messages[delivery.id] = mail.compose(
            sender=organizer, to=ics.Party(delivery.name, delivery.email), subject=subject,
            text=_tidy(render_template("calendar/invitation.txt", **context)),
            html=render_template("calendar/invitation.html", **context),
            invite=invites[delivery.technical], method="REQUEST" if kind is DeliveryKind.REQUEST else "CANCEL",
            documents=documents)
    return out
