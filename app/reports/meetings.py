"""Reports room: the meeting figures of a period, for the province or a subtree of sites.

An occurrence belongs to the period (and to the month) in which it starts, so a meeting across midnight at the
end of a month, or across a clock change, counts once; its hours are its real length (UTC end less UTC start).
"Held" is read from the bookings, since no call records exist yet: an occurrence neither cancelled nor a draft
whose end has passed. "Scheduled" is every occurrence booked for the period (cancelled ones included, so that
scheduled against held shows what was called off). A subtree takes the meetings hosted in it or with a site of
it taking part; the per-site figures count only its own sites.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus, Participation
from app.sites.models import Site


@dataclass
class MonthUsage:
    month: dt.date  # the first day of the local month
    meetings: int = 0  # distinct meetings with an occurrence held that month
    occurrences: int = 0  # occurrences held
    hours: float = 0.0
    site_connections: int = 0  # sites taking part, summed over the occurrences held


@dataclass
class SiteAttendance:
    site_id: int
    code: str
    name: str
    level: str
    invited: int = 0  # occurrences (not cancelled) it was booked into
    confirmed: int = 0  # of those, attendance confirmed (the calendar's records)
    connected: int = 0  # of those, held (from the bookings, until call records exist)
    declined: int | None = None  # the calendar records no declines yet: shown as "—"
    hours: float = 0.0


@dataclass
class HeldOccurrence:
    """One occurrence held, with what the savings need: who hosted it and which sites took part."""

    occurrence_id: int
    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    host_site_id: int
    site_ids: list[int]

    @property
    def hours(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds() / 3600


@dataclass
class MeetingFigures:
    start: dt.datetime
    end: dt.datetime
    scheduled: int = 0  # occurrences booked to start in the period (not drafts)
    held: int = 0
    cancelled: int = 0
    upcoming: int = 0  # booked, not cancelled, not over yet
    meetings_held: int = 0  # distinct meetings (a series counts once)
    hours: float = 0.0
    sites_taking_part: int = 0  # distinct sites in the occurrences held
    site_connections: int = 0
    by_host_level: dict[str, int] = field(default_factory=dict)  # occurrences held, by the host's level
    by_site_level: dict[str, int] = field(default_factory=dict)  # site connections, by the sites' level
    by_classification: dict[str, int] = field(default_factory=dict)  # occurrences held: normal / restricted
    by_kind: dict[str, int] = field(default_factory=dict)  # occurrences held: single / series
    months: list[MonthUsage] = field(default_factory=list)
    sites: list[SiteAttendance] = field(default_factory=list)
    occurrences: list[HeldOccurrence] = field(default_factory=list)


def local_month(at: dt.datetime, tz: ZoneInfo) -> dt.date:
    local = at.astimezone(tz)
    return dt.date(local.year, local.month, 1)


def months_between(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> list[dt.date]:
    """The first days of the local months that [start, end) touches."""
    first, last = local_month(start, tz), local_month(end - dt.timedelta(microseconds=1), tz)
    months = []
    while first <= last:
        months.append(first)
        first = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return months


def subtree_site_ids(session: so.Session, subtree_site_id: int | None) -> set[int] | None:
    """The ids of a site and everything under it; None for the whole province."""
    if subtree_site_id is None:
        return None
    root = session.get(Site, subtree_site_id)
    if root is None:
        return set()
    return set(session.scalars(sa.select(Site.id).where(Site.path.startswith(root.path))))


def meeting_figures(session: so.Session, start: dt.datetime, end: dt.datetime, subtree_site_id: int | None = None,
                    *, tz: ZoneInfo, now: dt.datetime) -> MeetingFigures:
    """The figures of the occurrences starting in [start, end)."""
    in_tree = subtree_site_ids(session, subtree_site_id)
    query = (sa.select(Occurrence)
             .join(Meeting, Occurrence.meeting_id == Meeting.id)
             .where(Occurrence.starts_at >= start, Occurrence.starts_at < end,
                    Occurrence.status != OccurrenceStatus.DRAFT)
             .options(so.selectinload(Occurrence.participations).selectinload(Participation.site),
                      so.joinedload(Occurrence.meeting).joinedload(Meeting.host_site))
             .order_by(Occurrence.starts_at, Occurrence.id))
    if in_tree is not None:
        taking_part = sa.select(Participation.occurrence_id).where(Participation.site_id.in_(in_tree))
        query = query.where(sa.or_(Meeting.host_site_id.in_(in_tree), Occurrence.id.in_(taking_part)))
    out = MeetingFigures(start=start, end=end)
    months = {m: MonthUsage(month=m) for m in months_between(start, end, tz)}
    month_meetings: dict[dt.date, set[int]] = defaultdict(set)
    meetings_held: set[int] = set()
    sites_held: set[int] = set()
    host_levels: Counter[str] = Counter()
    site_levels: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    attendance: dict[int, SiteAttendance] = {}

    for occurrence in session.scalars(query).unique():
        meeting = occurrence.meeting
        out.scheduled += 1
        if occurrence.status is OccurrenceStatus.CANCELLED:
            out.cancelled += 1
            continue
        held = occurrence.ends_at <= now
        mine = [p for p in occurrence.participations if in_tree is None or p.site_id in in_tree]
        for p in mine:
            row = attendance.get(p.site_id)
            if row is None:
                row = attendance[p.site_id] = SiteAttendance(p.site_id, p.site.code, p.site.name, p.site.level.name)
            row.invited += 1
            row.confirmed += p.confirmed_at is not None
            if held:
                row.connected += 1
                row.hours += (occurrence.ends_at - occurrence.starts_at).total_seconds() / 3600
        if not held:
            out.upcoming += 1
            continue
        hours = (occurrence.ends_at - occurrence.starts_at).total_seconds() / 3600
        out.held += 1
        out.hours += hours
        out.site_connections += len(occurrence.participations)
        meetings_held.add(meeting.id)
        sites_held.update(p.site_id for p in mine)
        host_levels[meeting.host_site.level.name] += 1
        for p in occurrence.participations:
            site_levels[p.site.level.name] += 1
        classes[meeting.classification.value] += 1
        kinds["series" if meeting.rrule else "single"] += 1
        month = months.setdefault(local_month(occurrence.starts_at, tz),
                                  MonthUsage(month=local_month(occurrence.starts_at, tz)))
        month.occurrences += 1
        month.hours += hours
        month.site_connections += len(occurrence.participations)
        month_meetings[month.month].add(meeting.id)
        out.occurrences.append(HeldOccurrence(
            occurrence.id, meeting.id, meeting.title, occurrence.starts_at, occurrence.ends_at,
            meeting.host_site_id, [p.site_id for p in occurrence.participations]))

    for month, ids in month_meetings.items():
        months[month].meetings = len(ids)
    out.meetings_held = len(meetings_held)
    out.sites_taking_part = len(sites_held)
    out.by_host_level = dict(host_levels.most_common())
    out.by_site_level = dict(site_levels.most_common())
    out.by_classification = {c.value: classes.get(c.value, 0) for c in Classification}
    out.by_kind = {k: kinds.get(k, 0) for k in ("single", "series")}
    out.months = [months[m] for m in sorted(months)]
    out.sites = sorted(attendance.values(), key=lambda s: (-s.invited, s.code))
    return out
