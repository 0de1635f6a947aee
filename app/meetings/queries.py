"""Meetings room: the read side — lists, calendars, a site's schedule, a meeting's page, who may see what,
and the one rule for the occurrences holding their resources in a window (`holding`).

Site staff see only the meetings in which their own site takes part (in any occurrence); that rule is checked
here, on the objects, for the pages and the API alike. Attendance (who may confirm it, and confirming it) is
the calendar's (app.calendar.service), as are the invitations sent: the meeting's page gets both through
app.meetings.signals.page_extras, never by importing the calendar.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import Role, User
from app.auth.permissions import role_can
from app.db import utcnow
from app.errors import NotFound
from app.meetings.models import HOLDING, Meeting, Occurrence, OccurrenceStatus, Participation
from app.sites.models import Site, Status
from app.sites.scope import Scope, scope_of

# ---------------------------------------------------------------- occurrences holding their resources

def holding(start: dt.datetime, end: dt.datetime, *, from_setup: bool = True,
            exclude: Sequence[int] = ()) -> sa.ColumnElement[bool]:
    """Occurrences that hold their rooms, bridge ports and bandwidth at some instant of start .. end: scheduled
    or in progress (drafts hold nothing, cancelled and completed ones no longer), and overlapping the window
    from their setup start (technicians test an hour before) or, with `from_setup=False`, from their start.
    `exclude` leaves out occurrences being moved (they must not clash with themselves).

    The one rule that booking, availability, the meeting-window guard, the exporter and the operators' board
    apply; combine it with the joins each needs (participations, the host site, the bridge)."""
    begins = Occurrence.setup_starts_at if from_setup else Occurrence.starts_at
    cond = sa.and_(Occurrence.status.in_(HOLDING), begins < end, Occurrence.ends_at > start)
    if exclude:
        cond = sa.and_(cond, Occurrence.id.not_in(list(exclude)))
    return cond


# ---------------------------------------------------------------- who may see what


def own_site_id(user: User) -> int | None:
    """The site a user is limited to (site staff), or None for staff who see every meeting."""
    return user.site_id if user.role is Role.SITE_STAFF else None


def _takes_part(site_id: int) -> sa.ColumnElement[bool]:
    """Meetings in any occurrence of which the site takes part."""
    return sa.exists(sa.select(Participation.id).join(Occurrence, Participation.occurrence_id == Occurrence.id)
                     .where(Occurrence.meeting_id == Meeting.id, Participation.site_id == site_id))


def in_scope(scope: Scope) -> sa.ColumnElement[bool]:
    """Meetings a scope sees: hosted in it, or with a site of it taking part in any occurrence."""
    return sa.or_(scope.clause(Meeting.host_site_id), sa.exists(
        sa.select(Participation.id).join(Occurrence, Participation.occurrence_id == Occurrence.id)
        .where(Occurrence.meeting_id == Meeting.id, scope.clause(Participation.site_id))))


def seen_from(session: so.Session, scope: Scope | None, meeting: Meeting) -> bool:
    return scope is None or session.scalar(
        sa.select(sa.literal(True)).where(Meeting.id == meeting.id, in_scope(scope))) is not None


def can_see(session: so.Session, user: User, meeting: Meeting) -> bool:
    """Staff with meetings.view see every meeting (in their scope); site staff those in which their site takes
    part."""
    if not seen_from(session, scope_of(session, user), meeting):
        return False
    if user.role is Role.SITE_STAFF:
        return user.site_id is not None and session.scalar(
            sa.select(sa.literal(True)).where(Meeting.id == meeting.id, _takes_part(user.site_id))) is not None
    return role_can(user.role, "meetings.view")


def visible_meeting(session: so.Session, user: User, meeting_id: int) -> Meeting:
    """The meeting, if the user may see it; otherwise 404, so that its existence is not revealed (as the
    agenda pages do)."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None or not can_see(session, user, meeting):
        raise NotFound(_("No meeting with id %(id)s.", id=meeting_id))
    return meeting


# ---------------------------------------------------------------- defaults

def default_host_id(session: so.Session) -> int | None:
    """The host site when none is chosen: the root of the tree (the province hall)."""
    return session.scalar(sa.select(Site.id).where(Site.parent_id.is_(None), Site.status != Status.RETIRED)
                          .order_by(Site.id).limit(1))


# ---------------------------------------------------------------- lists

@dataclass
class MeetingFilter:
    q: str = ""
    status: str = ""  # an OccurrenceStatus value: meetings with an occurrence in that state
    within: int | None = None  # a site id: meetings in which a site of its subtree takes part
    site_id: int | None = None  # meetings in which this one site takes part
    viewer_site_id: int | None = None  # site staff: their own site, always applied
    scope: Scope | None = None  # the user's: always applied


def meeting_query(session: so.Session, f: MeetingFilter, now: dt.datetime | None = None) -> sa.Select[tuple[Meeting]]:
    """Meetings matching the filter, those with an occurrence still to come first (soonest first), then the past
    ones (latest first)."""
    now = now or utcnow()
    stmt = sa.select(Meeting)
    if f.scope is not None:
        stmt = stmt.where(in_scope(f.scope))
    if f.q:
        like = f"%{f.q.lower()}%"
        stmt = stmt.where(sa.or_(sa.func.lower(Meeting.title).like(like), sa.func.lower(Meeting.chair).like(like),
                                 sa.func.lower(Meeting.notes).like(like)))
    if f.status:
        stmt = stmt.where(sa.exists(sa.select(Occurrence.id).where(Occurrence.meeting_id == Meeting.id,
                                                                   Occurrence.status == f.status)))
    if f.within is not None:
        root = session.get(Site, f.within)
        if root is None:
            raise NotFound(_("No site with id %(id)s.", id=f.within), {"within": [_("no such site")]})
        stmt = stmt.where(sa.exists(
            sa.select(Participation.id).join(Occurrence, Participation.occurrence_id == Occurrence.id)
            .join(Site, Participation.site_id == Site.id)
            .where(Occurrence.meeting_id == Meeting.id, Site.path.startswith(root.path))))
    for site_id in (f.site_id, f.viewer_site_id):
        if site_id is not None:
            stmt = stmt.where(_takes_part(site_id))
    upcoming = (sa.select(sa.func.min(Occurrence.starts_at))
                .where(Occurrence.meeting_id == Meeting.id, Occurrence.ends_at > now,
                       Occurrence.status != OccurrenceStatus.CANCELLED).correlate(Meeting).scalar_subquery())
    latest = (sa.select(sa.func.max(Occurrence.starts_at)).where(Occurrence.meeting_id == Meeting.id)
              .correlate(Meeting).scalar_subquery())
    return stmt.order_by(sa.case((upcoming.is_(None), 1), else_=0), upcoming, latest.desc(), Meeting.id.desc())


@dataclass
class Summary:
    """What a list shows of a meeting: its next (or else its last) occurrence and how many it has."""

    first: Occurrence | None = None
    next: Occurrence | None = None
    last: Occurrence | None = None
    count: int = 0
    statuses: dict[OccurrenceStatus, int] = field(default_factory=dict)

    @property
    def shown(self) -> Occurrence | None:
        return self.next or self.last


def summaries(session: so.Session, meetings: Sequence[Meeting], now: dt.datetime | None = None) -> dict[int, Summary]:
    now = now or utcnow()
    found: dict[int, Summary] = defaultdict(Summary)
    if not meetings:
        return found
    for occurrence in session.scalars(sa.select(Occurrence).where(
            Occurrence.meeting_id.in_([m.id for m in meetings])).order_by(Occurrence.starts_at)):
        s = found[occurrence.meeting_id]
        s.count += 1
        s.statuses[occurrence.status] = s.statuses.get(occurrence.status, 0) + 1
        s.first = s.first or occurrence
        s.last = occurrence
        if s.next is None and occurrence.ends_at > now and occurrence.status is not OccurrenceStatus.CANCELLED:
            s.next = occurrence
    return found


# ---------------------------------------------------------------- calendars

VIEWS = ("day", "week", "month")


@dataclass
class CalendarRange:
    """The days a calendar page shows, and where its previous and next pages start."""

    view: str
    anchor: dt.date
    first: dt.date
    last: dt.date  # inclusive
    previous: dt.date
    next: dt.date

    @classmethod
    def of(cls, view: str, anchor: dt.date) -> CalendarRange:
        if view == "day":
            return cls(view, anchor, anchor, anchor, anchor - dt.timedelta(days=1), anchor + dt.timedelta(days=1))
        if view == "week":
            monday = anchor - dt.timedelta(days=anchor.weekday())
            return cls(view, anchor, monday, monday + dt.timedelta(days=6), monday - dt.timedelta(days=7),
                       monday + dt.timedelta(days=7))
        first = anchor.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        return cls("month", anchor, first, following - dt.timedelta(days=1), previous, following)

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def weeks(self) -> list[list[dt.date]]:
        """Whole weeks, Monday first, covering the range (a month's grid)."""
        start = self.first - dt.timedelta(days=self.first.weekday())
        end = self.last + dt.timedelta(days=6 - self.last.weekday())
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        return [days[i:i + 7] for i in range(0, len(days), 7)]

    def bounds(self, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        return (dt.datetime.combine(self.first, dt.time(0), tzinfo=zone),
                dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(0), tzinfo=zone))


def occurrences_between(session: so.Session, start: dt.datetime, end: dt.datetime, *, within: int | None = None,
                        site_id: int | None = None, viewer_site_id: int | None = None,
                        include_cancelled: bool = False, scope: Scope | None = None) -> list[Occurrence]:
    """Occurrences overlapping [start, end) in which a site of the subtree (or the one site) takes part (of
    meetings the scope sees)."""
    stmt = (sa.select(Occurrence).join(Meeting, Occurrence.meeting_id == Meeting.id)
            .where(Occurrence.starts_at < end, Occurrence.ends_at > start)
            .where(in_scope(scope) if scope is not None else sa.true())
            .options(so.contains_eager(Occurrence.meeting).joinedload(Meeting.host_site))
            .order_by(Occurrence.starts_at, Meeting.title, Occurrence.id))
    if not include_cancelled:
        stmt = stmt.where(Occurrence.status != OccurrenceStatus.CANCELLED)
    if within is not None:
        root = session.get(Site, within)
        if root is None:
            raise NotFound(_("No site with id %(id)s.", id=within), {"within": [_("no such site")]})
        stmt = stmt.where(sa.exists(sa.select(Participation.id).join(Site, Participation.site_id == Site.id).where(
            Participation.occurrence_id == Occurrence.id, Site.path.startswith(root.path))))
    for one in (site_id, viewer_site_id):
        if one is not None:
            stmt = stmt.where(sa.exists(sa.select(Participation.id).where(
                Participation.occurrence_id == Occurrence.id, Participation.site_id == one)))
    return list(session.scalars(stmt).unique())


def by_local_day(occurrences: Sequence[Occurrence], zone: ZoneInfo) -> dict[dt.date, list[Occurrence]]:
    """Each occurrence under every local day it touches (a meeting past midnight shows on both days)."""
    days: dict[dt.date, list[Occurrence]] = defaultdict(list)
    for o in occurrences:
        day = o.starts_at.astimezone(zone).date()
        last = (o.ends_at - dt.timedelta(microseconds=1)).astimezone(zone).date()
        while day <= last:
            days[day].append(o)
            day += dt.timedelta(days=1)
    return days


def hour_grid(days: Sequence[dt.date], by_day: dict[dt.date, list[Occurrence]], zone: ZoneInfo,
              first_hour: int) -> dict[tuple[dt.date, int], list[Occurrence]]:
    """The cells of a day or week grid: (day, local hour) -> the occurrences starting then. One that began on
    an earlier day sits in the day's first row."""
    grid: dict[tuple[dt.date, int], list[Occurrence]] = defaultdict(list)
    for day in days:
        for o in by_day.get(day, []):
            start = o.starts_at.astimezone(zone)
            grid[(day, start.hour if start.date() == day else first_hour)].append(o)
    return grid


def site_schedule(session: so.Session, site: Site, start: dt.datetime, limit: int = 100) -> list[Participation]:
    """A site's own schedule: its participations from `start` on, soonest first, with their occurrences."""
    return list(session.scalars(
        sa.select(Participation).join(Occurrence, Participation.occurrence_id == Occurrence.id)
        .where(Participation.site_id == site.id, Occurrence.ends_at > start)
        .options(so.contains_eager(Participation.occurrence).joinedload(Occurrence.meeting),
                 so.joinedload(Participation.endpoint))
        .order_by(Occurrence.starts_at, Occurrence.id).limit(limit)))


# ---------------------------------------------------------------- a meeting's page

def meeting_with_details(session: so.Session, meeting: Meeting, participations: bool = True) -> Meeting:
    """Load in a few statements what a meeting's answer shows: its occurrences with their bridges and, unless
    told not to (a page of a long series shows the sites of one occurrence only), their sites and rooms."""
    options = [so.joinedload(Occurrence.bridge)]
    if participations:
        options.append(so.selectinload(Occurrence.participations).options(
            so.joinedload(Participation.site), so.joinedload(Participation.endpoint)))
    session.scalars(sa.select(Occurrence).where(Occurrence.meeting_id == meeting.id).options(*options)).all()
    return meeting


def with_sites(session: so.Session, occurrence: Occurrence) -> Occurrence:
    """Load one occurrence's participations with their sites and rooms."""
    session.scalars(sa.select(Occurrence).where(Occurrence.id == occurrence.id).options(
        so.selectinload(Occurrence.participations).options(so.joinedload(Participation.site),
                                                           so.joinedload(Participation.endpoint)))).all()
    return occurrence


def split_relatives(session: so.Session, meeting: Meeting) -> tuple[Meeting | None, list[Meeting]]:
    """The series this one was split from, and the series split from this one."""
    parent = session.get(Meeting, meeting.split_from_id) if meeting.split_from_id else None
    children = list(session.scalars(sa.select(Meeting).where(Meeting.split_from_id == meeting.id)
                                    .order_by(Meeting.id)))
    return parent, children


def focus(meeting: Meeting, occurrence_id: int | None, now: dt.datetime | None = None) -> Occurrence | None:
    """The occurrence whose sites a meeting's page lists: the one asked for, else the next, else the first."""
    for o in meeting.occurrences:
        if o.id == occurrence_id:
            return o
    now = now or utcnow()
    upcoming = [o for o in meeting.occurrences if o.ends_at > now and o.status is not OccurrenceStatus.CANCELLED]
    return (upcoming or meeting.occurrences or [None])[0]
