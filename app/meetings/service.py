"""The secretariat's operations on meetings: book, schedule a draft, move, cancel, and the lifecycle.

Plain functions on a session; the caller's commit point commits. Every change raises the iCalendar
SEQUENCE of what it touched and asks for invitations through the outbox, so mail goes out only after
the change is committed, and a mail failure never undoes it.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from dateutil import rrule as du
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from app.db import get_or_raise
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.meetings import booking, signals
from app.meetings.booking import Clash, Plan, Window
from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus
from app.meetings.queries import seen_from
from app.sites import scope as scopes
from app.sites.models import Level, Site, Status
from app.sites.scope import Scope
from app.web.schemas import multi_line_problem, normalise_newlines, single_line_problem

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_OCCURRENCES = 365


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass
class Recurrence:
    frequency: Frequency
    interval: int = 1
    until: dt.date | None = None  # last day (local) on which an occurrence may start
    count: int | None = None


@dataclass
class BookingRequest:
    title: str
    host_site_id: int
    starts_at: dt.datetime  # aware; forms and the API convert local input
    ends_at: dt.datetime
    site_ids: list[int] = field(default_factory=list)  # picked one by one
    subtree_ids: list[int] = field(default_factory=list)  # a site with everything under it
    level_codes: list[str] = field(default_factory=list)  # every active site of a level
    rooms: dict[int, int] = field(default_factory=dict)  # site id -> endpoint id, where the user chose
    bridge_id: int | None = None
    chair: str = ""
    setup_minutes: int = 60
    bitrate_kbps: int = 2000
    notes: str = ""
    classification: Classification = Classification.NORMAL
    recurrence: Recurrence | None = None
    skip_clashing: bool = False  # book the free occurrences of a series, skip the clashing ones
    draft: bool = False


class BookingRefused(Conflict):
    """409 with every clash of every occurrence, so the secretariat sees them all at once.

    In the one error format (app.extensions.ErrorDetail): `fields.clashes` holds each clash as one line of text
    ("<local start>: <message>", as every field's reasons are strings), and `clashes` beside `fields` the same
    clashes as objects, per occurrence, for programs (which meeting holds which room, bridge or link)."""

    code = "clash"

    def __init__(self, clashes: list[tuple[dt.datetime, list[Clash]]]) -> None:
        self.clashes = clashes
        first = clashes[0][1][0]
        more = sum(len(c) for _start, c in clashes) - 1
        when = booking._local(clashes[0][0])
        if more:
            message = ngettext("Cannot book (%(when)s): %(clash)s (and %(num)d more clash)",
                               "Cannot book (%(when)s): %(clash)s (and %(num)d more clashes)", more,
                               when=when, clash=first.message)
        else:
            message = _("Cannot book (%(when)s): %(clash)s", when=when, clash=first.message)
        super().__init__(message, {"clashes": [
            f"{booking._local(start)}: {c.message}" for start, found in clashes for c in found]})

    def details(self) -> list[dict[str, object]]:
        """The clashes as objects, per occurrence (ErrorDetail.clashes)."""
        return [{"starts_at": start.isoformat(), "clashes": [c.to_dict() for c in found]}
                for start, found in self.clashes]

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["error"]["clashes"] = self.details()
        return body


# ---------------------------------------------------------------- choosing the sites

def resolve_sites(session: so.Session, host: Site, site_ids: Iterable[int] = (), subtree_ids: Iterable[int] = (),
                  level_codes: Iterable[str] = ()) -> list[Site]:
    """The participating sites, the host site first, each once, in tree order; retired sites under a picked
    subtree or level are left out (a retired site picked one by one is refused by the check)."""
    wanted: dict[int, Site] = {host.id: host}
    ids = list(dict.fromkeys(site_ids))
    if ids:
        # The level is not needed to book (it loads on first use): 150 rows without the join.
        found = {s.id: s for s in session.scalars(sa.select(Site).options(so.lazyload(Site.level))
                                                  .where(booking.among(session, Site.id, ids)))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(_("No site with id %(id)s.", id=", ".join(map(str, missing))),
                           {"site_ids": [_("no such site")]})
        wanted.update(found)
    for root_id in dict.fromkeys(subtree_ids):
        root = session.get(Site, root_id)
        if root is None:
            raise NotFound(_("No site with id %(id)s.", id=root_id), {"subtree_ids": [_("no such site")]})
        wanted.update({s.id: s for s in session.scalars(sa.select(Site).options(so.lazyload(Site.level)).where(
            Site.path.startswith(root.path), Site.status != Status.RETIRED))})
    for code in dict.fromkeys(level_codes):
        level = session.scalar(sa.select(Level).where(Level.code == code))
        if level is None:
            raise Invalid(_("Unknown level %(code)s.", code=repr(code)), {"level_codes": [_("unknown level")]})
        wanted.update({s.id: s for s in session.scalars(sa.select(Site).where(
            Site.level_id == level.id, Site.status != Status.RETIRED, Site.path.startswith(
                "/" + host.path.strip("/").split("/")[0] + "/")))})
    others = sorted((s for s in wanted.values() if s.id != host.id), key=lambda s: s.path)
    return [host, *others]


# ---------------------------------------------------------------- recurrence

def occurrence_starts(starts_at: dt.datetime, recurrence: Recurrence | None) -> list[dt.datetime]:
    """The starts of a series, computed in local wall time (as the secretariat means them), in UTC."""
    if recurrence is None:
        return [starts_at]
    if recurrence.interval < 1:
        raise Invalid(_("The recurrence interval must be at least 1."), {"interval": [_("at least 1")]})
    if (recurrence.until is None) == (recurrence.count is None):
        raise Invalid(_("A series ends either on a date or after a number of occurrences."),
                      {"recurrence": [_("give until or count")]})
    if recurrence.count is not None and not 1 <= recurrence.count <= MAX_OCCURRENCES:
        raise Invalid(_("A series has at most %(max)s occurrences.", max=MAX_OCCURRENCES),
                      {"count": [_("at most %(max)s", max=MAX_OCCURRENCES)]})
    local_start = starts_at.astimezone(LOCAL).replace(tzinfo=None)
    freq = {Frequency.DAILY: du.DAILY, Frequency.WEEKLY: du.WEEKLY, Frequency.MONTHLY: du.MONTHLY}
    until = dt.datetime.combine(recurrence.until, dt.time(23, 59, 59)) if recurrence.until else None
    rule = du.rrule(freq[recurrence.frequency], dtstart=local_start, interval=recurrence.interval,
                    until=until, count=recurrence.count)
    starts = []
    for i, start in enumerate(rule):
        if i >= MAX_OCCURRENCES:
            raise Invalid(_("The series would have more than %(max)s occurrences; end it sooner.",
                            max=MAX_OCCURRENCES), {"until": [_("too many occurrences")]})
        starts.append(start.replace(tzinfo=LOCAL).astimezone(dt.UTC))
    if not starts:
        raise Invalid(_("The series has no occurrence before its end date."), {"until": [_("before the start")]})
    return starts


def rrule_text(recurrence: Recurrence | None, starts_at: dt.datetime) -> str:
    """The RFC 5545 RRULE of a series (UNTIL in UTC, as RFC 5545 requires with a zoned DTSTART)."""
    if recurrence is None:
        return ""
    parts = [f"FREQ={recurrence.frequency.value.upper()}"]
    if recurrence.interval != 1:
        parts.append(f"INTERVAL={recurrence.interval}")
    if recurrence.count is not None:
        parts.append(f"COUNT={recurrence.count}")
    else:
        local_time = starts_at.astimezone(LOCAL).time()
        last = dt.datetime.combine(recurrence.until, local_time, tzinfo=LOCAL).astimezone(dt.UTC)
        parts.append(f"UNTIL={last.strftime('%Y%m%dT%H%M%SZ')}")
    return ";".join(parts)


# ---------------------------------------------------------------- booking

def _window(start: dt.datetime, duration: dt.timedelta, setup_minutes: int) -> Window:
    return Window(start - dt.timedelta(minutes=setup_minutes), start, start + duration)


def max_days_ahead() -> int:
    """How far ahead a meeting may be booked or moved (the setting MAX_BOOKING_DAYS_AHEAD)."""
    return int(current_app.config["MAX_BOOKING_DAYS_AHEAD"])


def check_horizon(starts: Iterable[dt.datetime], now: dt.datetime | None = None) -> None:
    """Refuse a start further ahead than MAX_BOOKING_DAYS_AHEAD: a meeting in the year 9999 is a typing
    mistake, and booking it would hold rooms and send every site an invitation. The one rule for the pages,
    the API and every caller of the service (booking, moving, a series' last occurrence)."""
    days = max_days_ahead()
    now = now or dt.datetime.now(dt.UTC)
    limit = now + dt.timedelta(days=days)
    if any(start > limit for start in starts):
        last_day = limit.astimezone(LOCAL).strftime("%d/%m/%Y")
        raise Invalid(ngettext("A meeting can be booked at most %(num)d day ahead (until %(day)s).",
                               "A meeting can be booked at most %(num)d days ahead (until %(day)s).", days,
                               day=last_day),
                      {"starts_at": [ngettext("at most %(num)d day ahead", "at most %(num)d days ahead", days)]},
                      code="too_far_ahead")


def _validate(req: BookingRequest) -> None:
    errors: dict[str, list[str]] = {}
    if not req.title.strip():
        errors["title"] = [_("required")]
    # The same text rules as the API's and the forms' (app.web.schemas): a caller that skipped both is refused
    # here, before anything is written.
    for name in ("title", "chair"):
        if problem := single_line_problem(getattr(req, name)):
            errors[name] = [problem]
    req.notes = normalise_newlines(req.notes)
    if problem := multi_line_problem(req.notes):
        errors["notes"] = [problem]
    for name in ("starts_at", "ends_at"):
        value = getattr(req, name)
        if value.tzinfo is None:
            raise Invalid(_("Times must carry a time zone."), {name: [_("no time zone")]})
    if req.ends_at <= req.starts_at:
        errors["ends_at"] = [_("must be after the start")]
    elif req.ends_at - req.starts_at > booking.MAX_DURATION:
        errors["ends_at"] = [_("at most 12 hours after the start")]
    if not 0 <= req.setup_minutes <= 480:
        errors["setup_minutes"] = [_("between 0 and 480 minutes")]
    if req.bitrate_kbps <= 0:
        errors["bitrate_kbps"] = [_("must be positive")]
    if errors:
        first = next(iter(errors))
        if first in ("title", "chair", "notes") and errors[first][0] != _("required"):
            message = _("%(field)s: %(problem)s.", field=first, problem=errors[first][0])
        elif first == "title":
            message = _("The meeting needs a title.")
        elif first == "ends_at":
            message = _("The meeting must end after it starts, and last at most 12 hours.")
        elif first == "setup_minutes":
            message = _("The setup buffer is between 0 and 480 minutes.")
        else:
            message = _("The bitrate must be positive.")
        raise Invalid(message, errors)


def _lock(session: so.Session, sites: Sequence[Site], paths: dict[int, list[int]], bridge_id: int | None) -> None:
    """Lock the sites (their rooms), the links of their paths and the bridge. A booking that lets VCOps pick
    the bridge may take any of them: it holds the lock "every bridge" alone, while a booking of one given
    bridge holds that bridge's lock and "every bridge" shared (two such bookings of different bridges run
    side by side; neither runs beside a booking that picks). One lock instead of one per bridge of the
    country."""
    keys = [f"site:{s.id}" for s in sites]
    keys += [f"link:{link_id}" for path in paths.values() for link_id in path]
    if bridge_id is None:
        booking.lock_resources(session, [*keys, "bridge:*"])
    else:
        booking.lock_resources(session, [*keys, f"bridge:{bridge_id}"], shared=["bridge:*"])


def check_scope(session: so.Session, scope: Scope | None, host: Site, sites: Sequence[Site]) -> None:
    """A scoped secretariat books meetings hosted inside its scope (403 naming it), and invites sites outside it
    only where its province allows (Site.invites_outside_scope on the top-level site)."""
    if scope is None:
        return
    if not scope.contains(host.id):
        error = scope.refusal()
        error.fields = {"host_site_id": [error.message]}
        raise error
    outside = [s for s in sites if not scope.contains(s.id)]
    if outside and not scopes.may_invite_outside(session, scope):
        names = ", ".join(s.name for s in outside[:5]) + (", …" if len(outside) > 5 else "")
        raise Forbidden(_("Outside your scope (%(name)s): %(sites)s. Your province does not allow inviting sites "
                          "outside it.", name=scope.name, sites=names),
                        {"site_ids": [_("outside your scope")]}, code="out_of_scope")


def _book_meeting(session: so.Session, req: BookingRequest, created_by_id: int | None = None,
                  now: dt.datetime | None = None, scope: Scope | None = None) -> Meeting:
    """Check every occurrence and book them all, or refuse with every clash (409)."""
    _validate(req)
    host = session.get(Site, req.host_site_id)
    if host is None:
        raise NotFound(_("No site with id %(id)s.", id=req.host_site_id), {"host_site_id": [_("no such site")]})
    sites = resolve_sites(session, host, req.site_ids, req.subtree_ids, req.level_codes)
    check_scope(session, scope, host, sites)
    check_horizon([req.starts_at], now)  # before a series is expanded: its first start already too far
    starts = occurrence_starts(req.starts_at, req.recurrence)
    check_horizon(starts, now)  # and its last
    duration = req.ends_at - req.starts_at
    paths, path_clashes = booking.link_paths(session, host, sites[1:])
    if not req.draft:
        _lock(session, sites, paths, req.bridge_id)

    meeting = Meeting(uid=f"{uuid.uuid4()}@vcops", title=req.title.strip(), chair=req.chair.strip(), host_site=host,
                      classification=req.classification, notes=req.notes, setup_minutes=req.setup_minutes,
                      bitrate_kbps=req.bitrate_kbps, rrule=rrule_text(req.recurrence, req.starts_at),
                      conference_number=_conference_number(session), pin=f"{secrets.randbelow(10**6):06d}",
                      created_by_id=created_by_id)
    session.add(meeting)
    refused: list[tuple[dt.datetime, list[Clash]]] = []
    for start in starts:
        w = _window(start, duration, req.setup_minutes)
        occurrence = Occurrence(recurrence_id=start if req.recurrence else None, starts_at=w.starts_at,
                                ends_at=w.ends_at, setup_starts_at=w.setup_starts_at, status=OccurrenceStatus.SCHEDULED,
                                sequence=0)
        if req.draft:
            occurrence.status = OccurrenceStatus.DRAFT
            plan = Plan(rooms={s.id: req.rooms.get(s.id) for s in sites}, bridge_id=req.bridge_id)
        else:
            plan = booking.plan_occurrence(session, host=host, sites=sites, w=w, bitrate_kbps=req.bitrate_kbps,
                                           rooms=req.rooms, bridge_id=req.bridge_id, paths=paths, now=now)
            clashes = path_clashes + plan.clashes
            if clashes:
                refused.append((start, clashes))
                occurrence.status = OccurrenceStatus.CANCELLED  # kept so the series' invite can exclude it
                plan = None
        meeting.occurrences.append(occurrence)
        if plan is not None:
            booking.reserve(session, occurrence, plan)  # the next occurrence of the series sees these
    if refused and (not req.skip_clashing or len(refused) == len(starts)):
        raise BookingRefused(refused)
    session.flush()
    if not req.draft:
        _notify(session, meeting, "request")
    return meeting


def _conference_number(session: so.Session) -> str:
    """A six-digit conference number not used by a meeting still to come."""
    for _attempt in range(20):
        number = f"{secrets.randbelow(900000) + 100000}"
        if session.scalar(sa.select(Meeting.id).where(Meeting.conference_number == number)) is None:
            return number
    raise Conflict(_("Could not find a free conference number; try again."))


def _schedule_draft(session: so.Session, meeting: Meeting, now: dt.datetime | None = None) -> Meeting:
    """Run the checks on a draft's occurrences and make them hold their resources."""
    drafts = [o for o in meeting.occurrences if o.status is OccurrenceStatus.DRAFT]
    if not drafts:
        raise Conflict(_("The meeting has no draft occurrence to schedule."), code="not_draft")
    sites = [p.site for p in drafts[0].participations]
    paths, path_clashes = booking.link_paths(session, meeting.host_site, [s for s in sites if s.id !=
                                                                          meeting.host_site_id])
    _lock(session, sites, paths, drafts[0].bridge_id)
    refused = []
    for occurrence in drafts:
        rooms = {p.site_id: p.endpoint_id for p in occurrence.participations if p.endpoint_id}
        plan = booking.plan_occurrence(session, host=meeting.host_site, sites=sites, w=_occ_window(occurrence),
                                       bitrate_kbps=meeting.bitrate_kbps, rooms=rooms,
                                       bridge_id=occurrence.bridge_id, paths=paths, now=now)
        if path_clashes or plan.clashes:
            refused.append((occurrence.starts_at, path_clashes + plan.clashes))
            continue
        booking.reserve(session, occurrence, plan)
        occurrence.status = OccurrenceStatus.SCHEDULED
        session.flush()
    if refused:
        raise BookingRefused(refused)
    _notify(session, meeting, "request")
    return meeting


def _occ_window(occurrence: Occurrence) -> Window:
    return Window(occurrence.setup_starts_at, occurrence.starts_at, occurrence.ends_at)


def book_meeting(session: so.Session, req: BookingRequest, created_by_id: int | None = None,
                 now: dt.datetime | None = None, scope: Scope | None = None) -> Meeting:
    """Check every occurrence and book them all, or refuse with every clash (409) and write nothing; a scoped
    user's booking is checked against the scope first (check_scope)."""
    with session.begin_nested():  # a refusal rolls back to here, whoever the caller is
        return _book_meeting(session, req, created_by_id, now, scope)


def schedule_draft(session: so.Session, meeting: Meeting, now: dt.datetime | None = None) -> Meeting:
    """Run the checks on a draft's occurrences and make them hold their resources, or change nothing."""
    with session.begin_nested():
        return _schedule_draft(session, meeting, now)


def move_occurrence(session: so.Session, occurrence: Occurrence, starts_at: dt.datetime, ends_at: dt.datetime,
                    following: bool = False, now: dt.datetime | None = None) -> Meeting:
    """Move one occurrence, or this one and all later ones (a new series), re-checking every rule."""
    with session.begin_nested():
        return _move_occurrence(session, occurrence, starts_at, ends_at, following, now)


# ---------------------------------------------------------------- changes

def get_meeting(session: so.Session, meeting_id: int, scope: Scope | None = None) -> Meeting:
    """The meeting to change: 404 when it does not exist or the scope does not see it, 403 naming the scope when
    its host lies outside (changes are the host's)."""
    message = _("No meeting with id %(id)s.", id=meeting_id)
    meeting = get_or_raise(session, Meeting, meeting_id, message)
    _require_host_in(session, scope, meeting, message)
    return meeting


def get_occurrence(session: so.Session, occurrence_id: int, scope: Scope | None = None) -> Occurrence:
    """The occurrence to change, with the same scope rule as get_meeting."""
    message = _("No occurrence with id %(id)s.", id=occurrence_id)
    occurrence = get_or_raise(session, Occurrence, occurrence_id, message)
    _require_host_in(session, scope, occurrence.meeting, message)
    return occurrence


def _require_host_in(session: so.Session, scope: Scope | None, meeting: Meeting, not_found: str) -> None:
    if scope is None:
        return
    if not seen_from(session, scope, meeting):
        raise NotFound(not_found)
    scopes.require(scope, meeting.host_site_id)


def _changeable(occurrence: Occurrence, now: dt.datetime) -> None:
    if occurrence.status in (OccurrenceStatus.CANCELLED, OccurrenceStatus.COMPLETED):
        message = (_("This occurrence is cancelled and cannot be changed.")
                   if occurrence.status is OccurrenceStatus.CANCELLED
                   else _("This occurrence is completed and cannot be changed."))
        raise Conflict(message, code="closed")
    if occurrence.ends_at <= now:
        raise Conflict(_("This occurrence is over and cannot be changed."), code="closed")


def _move_occurrence(session: so.Session, occurrence: Occurrence, starts_at: dt.datetime, ends_at: dt.datetime,
                    following: bool = False, now: dt.datetime | None = None) -> Meeting:
    """Move one occurrence, or this one and all later ones (a new series), re-checking every rule."""
    now = now or dt.datetime.now(dt.UTC)
    _changeable(occurrence, now)
    if ends_at <= starts_at:
        raise Invalid(_("The meeting must end after it starts."), {"ends_at": [_("must be after the start")]})
    if ends_at - starts_at > booking.MAX_DURATION:
        raise Invalid(_("A meeting lasts at most 12 hours."), {"ends_at": [_("at most 12 hours after the start")]})
    meeting = occurrence.meeting
    shift, duration = starts_at - occurrence.starts_at, ends_at - starts_at
    moving = [occurrence]
    if following:
        moving = [o for o in meeting.occurrences if o.starts_at >= occurrence.starts_at
                  and o.status is not OccurrenceStatus.CANCELLED]
    check_horizon([starts_at, *(o.starts_at + shift for o in moving)], now)
    sites = [p.site for p in occurrence.participations]
    paths, path_clashes = booking.link_paths(session, meeting.host_site, [s for s in sites
                                                                          if s.id != meeting.host_site_id])
    _lock(session, sites, paths, occurrence.bridge_id)
    exclude = [o.id for o in moving]
    refused = []
    plans = []
    for o in moving:
        new_start = o.starts_at + shift
        w = _window(new_start, duration, meeting.setup_minutes)
        if o.status is OccurrenceStatus.DRAFT:
            plans.append((o, w, None))
            continue
        rooms = {p.site_id: p.endpoint_id for p in o.participations if p.endpoint_id}
        plan = booking.plan_occurrence(session, host=meeting.host_site, sites=sites, w=w,
                                       bitrate_kbps=meeting.bitrate_kbps, rooms=rooms, bridge_id=o.bridge_id,
                                       exclude=exclude, paths=paths, now=now)
        if path_clashes or plan.clashes:
            refused.append((new_start, path_clashes + plan.clashes))
        plans.append((o, w, plan))
    if refused:
        raise BookingRefused(refused)
    if following and (len(moving) == 1 or not meeting.rrule):
        following = False  # "this and following" of the last one is just this one: an override
    whole = following and moving[0] is meeting.occurrences[0]
    target = meeting
    if following and not whole:
        target = split_series(session, meeting, occurrence, shift)
    for o, w, plan in plans:
        o.starts_at, o.ends_at, o.setup_starts_at = w.starts_at, w.ends_at, w.setup_starts_at
        o.sequence += 1
        if following and o.recurrence_id is not None:
            o.recurrence_id = w.starts_at  # the (new or moved) series' rule now yields this start
        if plan is not None:
            booking.reserve(session, o, plan)
    if whole:
        meeting.rrule = _shift_until(meeting.rrule, shift)
        meeting.sequence += 1
    session.flush()
    _notify(session, target, "request", None if following else [o.id for o in moving])
    if target is not meeting:
        _notify(session, meeting, "request")
    return target


def _shift_until(rule: str, shift: dt.timedelta) -> str:
    """The same rule with its UNTIL moved by `shift`, so a moved series keeps its last occurrence."""
    parts = _rule_parts(rule)
    if "UNTIL" in parts:
        until = dt.datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC) + shift
        parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%SZ")
    return _rule_text(parts)


def split_series(session: so.Session, meeting: Meeting, occurrence: Occurrence,
                 shift: dt.timedelta = dt.timedelta(0)) -> Meeting:
    """End the series before this occurrence (UNTIL) and start a new series, with its own UID, from it."""
    later = [o for o in meeting.occurrences if o.starts_at >= occurrence.starts_at]
    until = (occurrence.recurrence_id or occurrence.starts_at) - dt.timedelta(seconds=1)
    rule = _rule_parts(meeting.rrule)
    count = rule.pop("COUNT", None)
    rule.pop("UNTIL", None)
    new_rule = dict(rule)
    if count is not None:
        new_rule["COUNT"] = str(len(later))
    else:
        new_rule["UNTIL"] = _rule_parts(_shift_until(meeting.rrule, shift)).get("UNTIL", "")
    rule["UNTIL"] = until.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    new = Meeting(uid=f"{uuid.uuid4()}@vcops", title=meeting.title, chair=meeting.chair, host_site=meeting.host_site,
                  classification=meeting.classification, notes=meeting.notes, setup_minutes=meeting.setup_minutes,
                  bitrate_kbps=meeting.bitrate_kbps, rrule=_rule_text(new_rule),
                  conference_number=meeting.conference_number, pin=meeting.pin, split_from_id=meeting.id,
                  created_by_id=meeting.created_by_id)
    session.add(new)
    for o in later:
        o.meeting = new
    meeting.rrule = _rule_text(rule)
    meeting.sequence += 1
    session.flush()
    return new


def _rule_parts(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def _rule_text(parts: dict[str, str]) -> str:
    order = ["FREQ", "INTERVAL", "COUNT", "UNTIL"]
    return ";".join(f"{k}={parts[k]}" for k in sorted(parts, key=lambda k: order.index(k) if k in order else 9)
                    if parts[k])


def cancel_occurrence(session: so.Session, occurrence: Occurrence, following: bool = False,
                      now: dt.datetime | None = None) -> Meeting:
    """Cancel one occurrence, or this one and all later ones (the series then ends before it)."""
    now = now or dt.datetime.now(dt.UTC)
    _changeable(occurrence, now)
    meeting = occurrence.meeting
    cancelled = [occurrence]
    if following:
        cancelled = [o for o in meeting.occurrences if o.starts_at >= occurrence.starts_at
                     and o.status not in (OccurrenceStatus.CANCELLED, OccurrenceStatus.COMPLETED)]
    for o in cancelled:
        o.status = OccurrenceStatus.CANCELLED
        o.sequence += 1
        booking.release(session, o)
    if following and meeting.rrule and occurrence is not meeting.occurrences[0]:
        rule = _rule_parts(meeting.rrule)
        rule.pop("COUNT", None)
        rule["UNTIL"] = ((occurrence.recurrence_id or occurrence.starts_at) - dt.timedelta(seconds=1)) \
            .astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        meeting.rrule = _rule_text(rule)
        meeting.sequence += 1
        session.flush()
        _notify(session, meeting, "request")
        return meeting
    session.flush()
    whole = all(o.status is OccurrenceStatus.CANCELLED for o in meeting.occurrences)
    if whole:
        meeting.sequence += 1
    _notify(session, meeting, "cancel", None if whole else [o.id for o in cancelled])
    return meeting


def cancel_meeting(session: so.Session, meeting: Meeting, now: dt.datetime | None = None) -> Meeting:
    now = now or dt.datetime.now(dt.UTC)
    open_ = [o for o in meeting.occurrences if o.status not in (OccurrenceStatus.CANCELLED, OccurrenceStatus.COMPLETED)
             and o.ends_at > now]
    if not open_:
        raise Conflict(_("The meeting has nothing left to cancel."), code="closed")
    for o in open_:
        o.status = OccurrenceStatus.CANCELLED
        o.sequence += 1
        booking.release(session, o)
    meeting.sequence += 1
    session.flush()
    _notify(session, meeting, "cancel")
    return meeting


def advance_lifecycle(session: so.Session, now: dt.datetime | None = None) -> int:
    """Scheduled occurrences become in progress at their start and completed at their end."""
    now = now or dt.datetime.now(dt.UTC)
    changed = 0
    for o in session.scalars(sa.select(Occurrence).where(
            Occurrence.status.in_([OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS]),
            Occurrence.starts_at <= now)):
        new = OccurrenceStatus.COMPLETED if o.ends_at <= now else OccurrenceStatus.IN_PROGRESS
        if o.status is not new:
            o.status = new
            changed += 1
    session.flush()
    return changed


# ---------------------------------------------------------------- notifications

def _notify(session: so.Session, meeting: Meeting, method: str, occurrence_ids: list[int] | None = None) -> None:
    """Ask for invitations (or cancellations) to every participating site, after the commit."""
    signals.notify_sites(session, meeting, method, occurrence_ids)

