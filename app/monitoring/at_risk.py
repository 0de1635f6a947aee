"""Monitoring room: the meetings at risk, meetings in progress or starting within the next hours whose sites are
failing right now, each failing site named with why.

What threatens a site's part is read from its state on the board (app.monitoring.board): its path, the room it
joins from, a maintenance window. Which occurrences count is the meetings' own rule for "holding its resources"
(app.meetings.queries.holding), from the start of the meeting, not its setup. Plain functions of a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import utcnow
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus
from app.meetings.queries import holding
from app.monitoring.board import Problem, SiteState, SiteStatus, Thresholds, site_statuses


@dataclass
class SiteAtRisk:
    code: str
    name: str
    state: SiteState
    problems: list[Problem]


@dataclass
class MeetingAtRisk:
    occurrence_id: int
    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: OccurrenceStatus
    in_progress: bool
    sites: list[SiteAtRisk]


def _risks(status: SiteStatus, endpoint_id: int | None) -> list[Problem]:
    """What threatens a site's part in a meeting: its path, the room it joins from (or its rooms), maintenance.
    An unmeasured site is not called at risk: the board shows it as unknown."""
    if status.upstream_site:
        found = [p for p in status.problems if p.code == "upstream_down"]
    elif status.path_state in (SiteState.DOWN, SiteState.DEGRADED):
        found = list(status.path_problems)
    else:
        found = []
    if not status.upstream_site and status.path_state is not SiteState.DOWN:
        rooms = [e for e in status.endpoints if endpoint_id is None or e.id == endpoint_id]
        found += [p for e in rooms if e.state in (SiteState.DOWN, SiteState.DEGRADED) for p in e.problems]
    if status.maintenance_until is not None:
        found.insert(0, next(p for p in status.problems if p.code == "maintenance"))
    return found


def meetings_at_risk(session: so.Session, *, now: dt.datetime | None = None,
                     horizon: dt.timedelta = dt.timedelta(hours=3),
                     thresholds: Thresholds = Thresholds()) -> list[MeetingAtRisk]:
    """Meetings in progress or starting within `horizon` (scheduled or in progress) with at least one failing
    site, soonest first, each failing site named with why."""
    now = now or utcnow()
    occurrences = list(session.scalars(
        sa.select(Occurrence).join(Meeting, Meeting.id == Occurrence.meeting_id)
        .where(holding(now, now + horizon, from_setup=False))
        .options(so.selectinload(Occurrence.participations), so.contains_eager(Occurrence.meeting))
        .order_by(Occurrence.starts_at, Occurrence.id)))
    site_ids = {p.site_id for o in occurrences for p in o.participations}
    statuses = site_statuses(session, site_ids, now=now, thresholds=thresholds) if site_ids else {}
    found = []
    for o in occurrences:
        failing = []
        for p in sorted(o.participations, key=lambda p: p.id):
            status = statuses.get(p.site_id)
            problems = _risks(status, p.endpoint_id) if status is not None else []
            if problems:
                failing.append(SiteAtRisk(code=status.code, name=status.name, state=status.state, problems=problems))
        if failing:
            found.append(MeetingAtRisk(occurrence_id=o.id, meeting_id=o.meeting_id, title=o.meeting.title,
                                       starts_at=o.starts_at, ends_at=o.ends_at, status=o.status,
                                       in_progress=o.starts_at <= now, sites=failing))
    return found

