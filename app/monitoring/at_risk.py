"""Monitoring room: the meetings at risk, meetings in progress or starting within the next hours whose sites are
failing right now, each failing site named with why.

What threatens a site's part is read from its state on the board (app.monitoring.board): its path, the room it
joins from, a maintenance window. Which occurrences count is the meetings' own rule for "holding its resources"
(app.meetings.queries.holding), from the start of the meeting, not its setup. Plain functions of a session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.config import local_zone
from app.db import utcnow
from app.meetings.booking import link_paths
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus
from app.meetings.queries import holding
from app.meetings.queries import in_scope as meetings_in_scope
from app.monitoring.board import Problem, SiteState, SiteStatus, Thresholds, site_statuses
from app.sites.models import Link, MaintenanceWindow
from app.sites.scope import Scope

# What the domains above know of an occurrence's sites (a readiness check not ready, a conference not ready on its
# bridge): (occurrence id, site id, or None for the whole meeting) -> problems. Set by the factory.
RiskSource = Callable[[so.Session, list[int]], dict[tuple[int, int | None], list[Problem]]]
_risk_sources: list[RiskSource] = []


def add_risk_source(source: RiskSource) -> None:
    """Count what `source` says of the occurrences too (the factory adds readiness and the conferences)."""
    if source not in _risk_sources:
        _risk_sources.append(source)


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
    problems: list[Problem] = field(default_factory=list)  # of the whole meeting: its conference not ready


def _risks(status: SiteStatus, endpoint_id: int | None) -> list[Problem]:
    """What threatens a site's part in a meeting: its path, the room it joins from (or its rooms), maintenance;
    a site with nothing recent measured is at risk as unknown (never counted as fine)."""
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
    if not found and status.state is SiteState.UNKNOWN:
        # Fail closed: a site nothing recent was measured of is not fine, it is unknown.
        found = [p for p in status.problems if p.code in ("no_data", "stale")] or [
            Problem("unknown", _("Nothing recent was measured of this site: its state is unknown."))]
    return found


def _planned_maintenance(session: so.Session, occurrence: Occurrence, now: dt.datetime) -> dict[int, list[Problem]]:
    """Site id -> maintenance starting later but overlapping the meeting on a link of its path to the host."""
    sites = [p.site for p in occurrence.participations]
    paths, _clashes = link_paths(session, occurrence.meeting.host_site, sites)
    link_ids = {i for path in paths.values() for i in path}
    if not link_ids:
        return {}
    windows = list(session.scalars(sa.select(MaintenanceWindow).where(
        MaintenanceWindow.link_id.in_(link_ids), MaintenanceWindow.starts_at > now,
        MaintenanceWindow.starts_at < occurrence.ends_at, MaintenanceWindow.ends_at > occurrence.setup_starts_at)))
    found: dict[int, list[Problem]] = {}
    for window in windows:
        link = session.get(Link, window.link_id)
        problem = Problem("maintenance_planned", _(
            "Maintenance on link %(link)s from %(start)s overlaps the meeting: %(reason)s",
            link=link.code if link is not None else "?",
            start=window.starts_at.astimezone(local_zone()).strftime("%H:%M %d/%m"), reason=window.reason))
        for site_id, path in paths.items():
            if window.link_id in path:
                found.setdefault(site_id, []).append(problem)
    return found


def meetings_at_risk(session: so.Session, *, now: dt.datetime | None = None,
                     horizon: dt.timedelta = dt.timedelta(hours=3),
                     thresholds: Thresholds = Thresholds(), scope: Scope | None = None) -> list[MeetingAtRisk]:
    """Meetings in progress or starting within `horizon` (scheduled or in progress) with at least one failing
    site, soonest first, each failing site named with why (of the meetings the scope sees)."""
    now = now or utcnow()
    occurrences = list(session.scalars(
        sa.select(Occurrence).join(Meeting, Meeting.id == Occurrence.meeting_id)
        .where(holding(now, now + horizon, from_setup=False))
        .where(meetings_in_scope(scope) if scope is not None else sa.true())
        .options(so.selectinload(Occurrence.participations), so.contains_eager(Occurrence.meeting))
        .order_by(Occurrence.starts_at, Occurrence.id)))
    site_ids = {p.site_id for o in occurrences for p in o.participations}
    statuses = site_statuses(session, site_ids, now=now, thresholds=thresholds) if site_ids else {}
    above: dict[tuple[int, int | None], list[Problem]] = {}
    for source in _risk_sources:
        for key, problems in source(session, [o.id for o in occurrences]).items():
            above.setdefault(key, []).extend(problems)
    found = []
    for o in occurrences:
        failing = []
        planned = _planned_maintenance(session, o, now)
        for p in sorted(o.participations, key=lambda p: p.id):
            status = statuses.get(p.site_id)
            if status is None:
                continue
            problems = _risks(status, p.endpoint_id) + planned.get(p.site_id, []) + above.get((o.id, p.site_id), [])
            if problems:
                failing.append(SiteAtRisk(code=status.code, name=status.name, state=status.state, problems=problems))
        meeting_wide = above.get((o.id, None), [])
        if failing or meeting_wide:
            found.append(MeetingAtRisk(occurrence_id=o.id, meeting_id=o.meeting_id, title=o.meeting.title,
                                       starts_at=o.starts_at, ends_at=o.ends_at, status=o.status,
                                       in_progress=o.starts_at <= now, sites=failing, problems=meeting_wide))
    return found

