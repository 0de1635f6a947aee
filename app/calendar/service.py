"""Calendar room: attendance (signed links, and the in-app button and API), ICS feeds behind revocable tokens,
and delivery records.

Plain functions on a session; the caller's commit point commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.auth import audit
from app.auth.models import Role, User
from app.auth.permissions import role_can
from app.calendar import ics, wording
from app.calendar.models import Delivery, DeliveryStatus, FeedToken
from app.db import get_or_raise, utcnow
from app.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus, Participation
from app.meetings.queries import can_see
from app.queue import outbox
from app.sites import scope as scopes
from app.sites.models import Site
from app.sites.scope import Scope, scope_of

ATTENDANCE_SALT = "attendance"
FEED_PAST_DAYS = 90  # a feed shows meetings from this many days back, and everything to come


class LinkExpired(DomainError):
    status = 400
    code = "link_expired"


class LinkInvalid(Forbidden):
    code = "link_invalid"


def base_url() -> str:
    return str(current_app.config["BASE_URL"]).rstrip("/")


def meeting_url(meeting_id: int) -> str:
    return f"{base_url()}/meetings/{meeting_id}"


# ---------------------------------------------------------------- attendance

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=ATTENDANCE_SALT)


def attendance_token(participation_id: int, email: str) -> str:
    """A signed token naming the participation and the contact it was sent to."""
    return _serializer().dumps({"p": participation_id, "e": email})


def attendance_url(participation_id: int, email: str) -> str:
    return f"{base_url()}/calendar/attendance/{attendance_token(participation_id, email)}"


@dataclass(frozen=True)
class AttendanceLink:
    participation: Participation
    email: str


def read_attendance_link(session: so.Session, token: str) -> AttendanceLink:
    """The participation a link is for; 400 when it has expired, 403 when it was altered or is not ours."""
    max_age = int(current_app.config["SIGNED_LINK_DAYS"]) * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkExpired(_("This attendance link has expired. Confirm attendance in VCOps, or ask the "
                            "secretariat to send the invitation again.")) from None
    except BadSignature:
        raise LinkInvalid(_("This attendance link is not valid: it may have been cut or altered. Use the whole "
                            "link from the invitation.")) from None
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        raise LinkInvalid(_("This attendance link is not valid."))
    participation = get_or_raise(session, Participation, data["p"], _("The meeting of this link no longer exists."))
    return AttendanceLink(participation, str(data.get("e", "")))


def may_confirm(user: User, participation: Participation) -> bool:
    """Whether a logged-in user may confirm this site's attendance (site staff: their own site only)."""
    if not role_can(user.role, "meetings.attend"):
        return False
    return user.role is not Role.SITE_STAFF or user.site_id == participation.site_id


def confirm_attendance(session: so.Session, participation: Participation, by: str,
                       now: dt.datetime | None = None) -> Participation:
    """Record that the site will attend; the first confirmation stands, a second one changes nothing."""
    if participation.confirmed_at is not None:
        return participation
    now = now or utcnow()
    occurrence = participation.occurrence
    if occurrence.status is OccurrenceStatus.CANCELLED:
        raise Conflict(_("This meeting was cancelled; there is no attendance to confirm."), code="cancelled")
    if occurrence.status is OccurrenceStatus.DRAFT:
        raise Conflict(_("This meeting is not scheduled yet."), code="draft")
    if occurrence.ends_at <= now:
        raise Conflict(_("This meeting is over; attendance can no longer be confirmed."), code="closed")
    participation.confirmed_at = now
    participation.confirmed_by = by.strip()[:254]
    audit.record(session, "confirm", "Participation", str(participation.id),
                 summary=f"{participation.site.name}: {participation.confirmed_by}",
                 after={"occurrence_id": occurrence.id, "site_id": participation.site_id,
                        "confirmed_by": participation.confirmed_by, "confirmed_at": now.isoformat()})
    session.flush()
    return participation


def confirm_in_app(session: so.Session, user: User, participation_id: int) -> Participation:
    """A logged-in user confirms a site's attendance (the meeting page's button, the API): the participation
    must be of a meeting they may see (else 404, as if it did not exist) and of their own site (site staff)."""
    participation = session.get(Participation, participation_id)
    if participation is None or not can_see(session, user, participation.occurrence.meeting):
        raise NotFound(_("No participation with id %(id)s.", id=participation_id))
    if not may_confirm(user, participation):
        raise Forbidden(_("You may confirm the attendance of your own site only."))
    return confirm_attendance(session, participation, user.email)


# ---------------------------------------------------------------- deliveries

def deliveries_for(session: so.Session, meeting_id: int) -> list[Delivery]:
    """The meeting's deliveries, newest send-out first: who was sent what, and what the server said."""
    return list(session.scalars(sa.select(Delivery).where(Delivery.meeting_id == meeting_id)
                                .order_by(Delivery.created_at.desc(), Delivery.id)))


def failed_for_good(session: so.Session, meeting_id: int | None = None) -> list[Delivery]:
    """Deliveries given up (a 5xx, out of attempts, or maybe delivered by a worker that stopped): a person must
    resend them. All the province's with meeting_id None."""
    query = sa.select(Delivery).where(Delivery.status == DeliveryStatus.FAILED, Delivery.permanent)
    if meeting_id is not None:
        query = query.where(Delivery.meeting_id == meeting_id)
    return list(session.scalars(query.order_by(Delivery.id)))


def resend(session: so.Session, user: User, meeting_id: int, delivery_id: int | None = None) -> list[Delivery]:
    """Send again one delivery failed for good (or, delivery_id None, all of the meeting's), after the commit.

    Each goes back to queued with a fresh count of attempts, and its send-out is asked for again (one outbox
    message per send-out): the mail is written from the meeting as it is now, with the send-out's note.
    """
    meeting = session.get(Meeting, meeting_id)
    if meeting is None or not can_see(session, user, meeting):
        raise NotFound(_("No meeting with id %(id)s.", id=meeting_id))
    scopes.require(scope_of(session, user), meeting.host_site_id)  # the host's secretariat sends again
    rows = failed_for_good(session, meeting_id)
    if delivery_id is not None:
        rows = [d for d in rows if d.id == delivery_id]
        if not rows:
            found = session.get(Delivery, delivery_id)
            if found is None or found.meeting_id != meeting_id:  # another meeting's is none of this page's
                raise NotFound(_("No delivery with id %(id)s.", id=delivery_id))
            raise Conflict(_("This invitation has not failed for good: it was sent, or is still being tried."),
                           code="not_failed")
    batches: dict[str, Delivery] = {}
    for delivery in rows:
        audit.record(session, "resend", "Delivery", str(delivery.id), summary=delivery.email,
                     after={"failed_reply": delivery.reply, "attempts": delivery.attempts,
                            "maybe_sent": delivery.maybe_sent})
        delivery.status, delivery.permanent, delivery.reply = DeliveryStatus.QUEUED, False, ""
        delivery.attempts, delivery.handed_at = 0, None
        batches.setdefault(delivery.batch, delivery)
    session.flush()
    for batch, delivery in batches.items():
        outbox.enqueue(session, "calendar.send_invitations", meeting_id=meeting_id, method=delivery.kind.value,
                       occurrence_ids=delivery.occurrence_ids, note=delivery.note, batch=batch)
    session.flush()
    return rows


# ---------------------------------------------------------------- feeds

def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def feed_url(secret: str) -> str:
    return f"{base_url()}/calendar/feeds/{secret}.ics"


def create_feed_token(session: so.Session, site_id: int | None, name: str = "",
                      created_by_id: int | None = None, scope: Scope | None = None) -> tuple[FeedToken, str]:
    """A new feed token for a site (or the whole province, site_id None); the secret is returned once. A scoped
    user makes feeds of the sites in the scope only (403 naming it)."""
    scopes.require(scope, site_id)
    site = None
    if site_id is not None:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(_("No site with id %(id)s.", id=site_id), {"site_id": [_("no such site")]})
    name = name.strip()
    if len(name) > 100:
        raise Invalid(_("The name is at most 100 characters."), {"name": [_("at most 100 characters")]})
    secret = secrets.token_urlsafe(32)
    token = FeedToken(site=site, name=name, prefix=secret[:8], token_hash=_hash(secret), created_by_id=created_by_id)
    session.add(token)
    session.flush()
    audit.record(session, "create", "FeedToken", str(token.id),
                 summary=f"{site.name if site else 'province'} {name}".strip(),
                 after={"site_id": site_id, "name": name, "prefix": token.prefix})
    return token, secret


def revoke_feed_token(session: so.Session, token_id: int, scope: Scope | None = None) -> FeedToken:
    message = _("No feed token with id %(id)s.", id=token_id)
    token = get_or_raise(session, FeedToken, token_id, message)
    if not scopes.sees(scope, token.site_id):
        raise NotFound(message)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, "revoke", "FeedToken", str(token.id), summary=token.prefix)
        session.flush()
    return token


def feed_tokens(session: so.Session, scope: Scope | None = None) -> list[FeedToken]:
    return list(session.scalars(sa.select(FeedToken).where(scopes.within(scope, FeedToken.site_id))
                                .order_by(FeedToken.revoked_at.is_not(None), FeedToken.created_at.desc(),
                                          FeedToken.id.desc())))


def feed_token(session: so.Session, secret: str) -> FeedToken:
    """The live token for this secret; unknown and revoked ones look the same (404)."""
    token = session.scalar(sa.select(FeedToken).where(FeedToken.token_hash == _hash(secret)))
    if token is None or token.revoked_at is not None:
        raise NotFound(_("No such calendar feed."))
    return token


def feed_meetings(session: so.Session, token: FeedToken,
                  now: dt.datetime | None = None) -> list[tuple[Meeting, list[Occurrence]]]:
    """The meetings of the feed with their occurrences that concern it (the site's, or all)."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=FEED_PAST_DAYS)
    live = sa.and_(Occurrence.status.in_(ics.TAKING_PLACE), Occurrence.ends_at >= cutoff)
    found = sa.select(Occurrence.meeting_id).where(live)
    if token.site_id is not None:
        found = found.join(Participation).where(Participation.site_id == token.site_id)
    meetings = session.scalars(sa.select(Meeting).where(Meeting.id.in_(found)).order_by(Meeting.id)
                               .options(so.selectinload(Meeting.occurrences).selectinload(Occurrence.participations),
                                        so.selectinload(Meeting.occurrences).joinedload(Occurrence.bridge),
                                        so.joinedload(Meeting.host_site)))
    out = []
    for meeting in meetings:
        occurrences = [o for o in meeting.occurrences
                       if token.site_id is None or any(p.site_id == token.site_id for p in o.participations)]
        out.append((meeting, occurrences))
    return out


def feed_calendar(session: so.Session, token: FeedToken, now: dt.datetime | None = None) -> bytes:
    """The feed as iCalendar text (METHOD:PUBLISH): the series with their exceptions, no attendees."""
    config = current_app.config
    organizer = ics.Party(config["MAIL_FROM_NAME"], config["MAIL_FROM"])
    stamp = now or utcnow()
    entries = []
    for meeting, occurrences in feed_meetings(session, token, now):
        url = meeting_url(meeting.id)
        agenda = [] if meeting.classification is Classification.RESTRICTED else wording.agenda_lines(session, meeting)
        details = ics.EventDetails(
            organizer=organizer, url=url, stamp=stamp,
            location=lambda bridge, m=meeting: wording.location(m, bridge),
            description=lambda bridge, start, m=meeting, a=agenda, u=url: wording.description(
                m, bridge, start, a, u, technical=True, feed=True))
        entries.append((meeting, occurrences, details))
    name = f"VCOps · {token.site.name}" if token.site is not None else "VCOps"
    return ics.to_bytes(ics.publish(entries, name))


def feed_etag(body: bytes) -> str:
    """An ETag that ignores DTSTAMP (the time the feed was rendered), so an unchanged feed matches."""
    stable = b"\r\n".join(line for line in body.split(b"\r\n") if not line.startswith(b"DTSTAMP"))
    return hashlib.sha256(stable).hexdigest()[:32]
