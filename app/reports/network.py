"""Reports room: the network figures of a period — availability of every link and endpoint, round trip, loss and
jitter, the links below their medium's target, incidents and how fast they were handled, and the rollup along the
site tree — read from the probes' rollups (app.monitoring.rollups), never from Prometheus.

Definitions (the report's footnotes say the same):
- availability = steps up / steps measured, in %: a step is one probe measurement (PROBE_STEP_SECONDS apart).
  A link is up in a step when any echo came back; an endpoint when it answers echoes or its management port.
- minutes down = steps down x PROBE_STEP_SECONDS / 60 (the step length now set: steps that were not measured,
  e.g. while no agent ran, count neither up nor down).
- round trip: the mean and the 95th percentile of the steps' median round trips (the p95 read from the rollups'
  log-scale histogram, within its bucket: at worst 41% wide); loss = echoes lost / sent; jitter = the mean of the
  steps' jitter (mean absolute difference of consecutive round trips).
- a bucket counts when it starts inside the period: periods from local midnight to local midnight read the
  daily rows, any other the hourly ones (kept ROLLUP_HOURLY_DAYS). Each step lies in exactly one bucket, so an
  outage across the end of a month is split between the two months and counted once.
- incidents: those that started in the period (one across the end of the month belongs to the month it started
  in); time to acknowledge = acknowledged_at - starts_at, to resolve = ends_at - starts_at (resolved ones).
- the tree: a link belongs to the site at its far end (the child, as the probes see it), an endpoint to its site;
  every site's figure covers what lies in its subtree, weighted by steps (a link measured all month weighs
  more than one added on the 20th).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from app.monitoring.models import (
    EndpointRollupDaily,
    EndpointRollupHourly,
    Incident,
    IncidentStatus,
    LinkRollupDaily,
    LinkRollupHourly,
)
from app.monitoring.rollups import BUCKET_COLUMNS, histogram_quantile, local_day_start
from app.reports.periods import report_zone
from app.sites.models import Endpoint, Level, Link, LinkMedium, Site


@dataclass(frozen=True)
class TargetFigures:
    """A link or an endpoint over the period."""

    kind: str  # "link" or "endpoint"
    id: int
    code: str  # the link's code; the endpoint's site code and room
    site_id: int  # the far end of a link, the site of an endpoint
    site_code: str
    site_name: str
    medium: LinkMedium | None  # links only
    steps_up: int
    steps_down: int
    minutes_down: float
    availability: float | None  # %, None when never measured in the period
    rtt_mean: float | None  # seconds
    rtt_p95: float | None  # seconds
    loss: float | None  # % of echoes
    jitter: float | None  # seconds
    target: float | None = None  # % its medium must reach (links)

    @property
    def steps(self) -> int:
        return self.steps_up + self.steps_down

    @property
    def below_target(self) -> bool:
        return self.target is not None and self.availability is not None and self.availability < self.target


@dataclass(frozen=True)
class MediumFigures:
    """The links of one medium: their target, their step-weighted availability and those below the target."""

    medium: LinkMedium
    target: float
    links: int
    availability: float | None
    below: list[TargetFigures]


@dataclass(frozen=True)
class Durations:
    """Durations in seconds: how many, their mean and 95th percentile (nearest rank); None when there are none."""

    count: int
    mean: float | None
    p95: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        if not seconds:
            return cls(0, None, None)
        ordered = sorted(seconds)
        return cls(len(ordered), sum(ordered) / len(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


@dataclass(frozen=True)
class IncidentFigures:
    count: int  # started in the period
    acknowledged: Durations  # time from the start to the operator's acknowledgement
    resolved: Durations  # time from the start to the end, for those resolved


@dataclass(frozen=True)
class AreaFigures:
    """A site and everything under it (its subtree): the links' and endpoints' availability, step-weighted."""

    site_id: int
    code: str
    name: str
    level_code: str
    level_rank: int
    parent_id: int | None
    links: int
    endpoints: int
    steps_up: int
    steps_down: int
    minutes_down: float
    availability: float | None


@dataclass(frozen=True)
class NetworkReport:
    start: dt.datetime
    end: dt.datetime
    step_seconds: float
    granularity: str  # "daily" or "hourly": which rollups were read
    links: list[TargetFigures]
    endpoints: list[TargetFigures]
    media: list[MediumFigures]
    incidents: IncidentFigures
    areas: list[AreaFigures] = field(default_factory=list)

    @property
    def availability(self) -> float | None:
        """Every link and endpoint together, step-weighted."""
        return _percent(sum(t.steps_up for t in (*self.links, *self.endpoints)),
                        sum(t.steps for t in (*self.links, *self.endpoints)))


def _percent(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def availability_target(config: Any, medium: LinkMedium) -> float:
    """AVAILABILITY_TARGET_<MEDIUM> (e.g. _DEDICATED, _MOBILE_BACKUP), in %."""
    return float(config[f"AVAILABILITY_TARGET_{medium.name}"])


def _granularity(start: dt.datetime, end: dt.datetime) -> str:
    zone = report_zone()
    daily = all(local_day_start(t, zone) == t.astimezone(dt.UTC) for t in (start, end))
    return "daily" if daily else "hourly"


def _sums(session: so.Session, model: Any, key: str, start: dt.datetime, end: dt.datetime,
          ids: Sequence[int] | None) -> dict[int, Any]:
    """Per target, the sums of its rollups whose bucket starts in [start, end)."""
    table = model.__table__
    columns = ("steps_up", "steps_down", "sent", "lost", "rtt_sum", "rtt_count", "jitter_sum", "jitter_count",
               *BUCKET_COLUMNS)
    query = (sa.select(table.c[key].label("id"), *[sa.func.sum(table.c[c]).label(c) for c in columns])
             .where(table.c.bucket_start >= start, table.c.bucket_start < end).group_by(table.c[key]))
    if ids is not None:
        if not ids:
            return {}
        query = query.where(table.c[key].in_(ids))
    return {row.id: row for row in session.execute(query)}


def _figures(kind: str, target_id: int, code: str, site: Any, medium: LinkMedium | None, sums: Any,
             step_seconds: float, target: float | None) -> TargetFigures:
    up, down = int(sums.steps_up or 0), int(sums.steps_down or 0)
    rtt_count, jitter_count, sent = int(sums.rtt_count or 0), int(sums.jitter_count or 0), int(sums.sent or 0)
    histogram = [int(getattr(sums, c) or 0) for c in BUCKET_COLUMNS]
    return TargetFigures(
        kind=kind, id=target_id, code=code, site_id=site.id, site_code=site.code, site_name=site.name,
        medium=medium, steps_up=up, steps_down=down, minutes_down=down * step_seconds / 60.0,
        availability=_percent(up, up + down), rtt_mean=sums.rtt_sum / rtt_count if rtt_count else None,
        rtt_p95=histogram_quantile(histogram, 0.95), loss=_percent(int(sums.lost or 0), sent),
        jitter=sums.jitter_sum / jitter_count if jitter_count else None, target=target)


def _far_end(link: Any, parent_of: dict[int, int | None]) -> int:
    """The site a link belongs to: its end at the child site (app.monitoring.topology's rule), the b end for a
    link between two sites that are not parent and child."""
    if parent_of.get(link.site_a_id) == link.site_b_id:
        return link.site_a_id
    return link.site_b_id


def _incidents(session: so.Session, start: dt.datetime, end: dt.datetime, site_codes: set[str] | None
               ) -> IncidentFigures:
    query = sa.select(Incident.status, Incident.site_code, Incident.starts_at, Incident.ends_at,
                      Incident.acknowledged_at).where(Incident.starts_at >= start, Incident.starts_at < end)
    rows = [r for r in session.execute(query) if site_codes is None or r.site_code in site_codes]
    acknowledged = [(r.acknowledged_at - r.starts_at).total_seconds() for r in rows if r.acknowledged_at]
    resolved = [(r.ends_at - r.starts_at).total_seconds() for r in rows
                if r.status == IncidentStatus.RESOLVED and r.ends_at is not None]
    return IncidentFigures(count=len(rows), acknowledged=Durations.of(acknowledged), resolved=Durations.of(resolved))


def _areas(sites: dict[int, Any], levels: dict[int, Any], in_scope: set[int], targets: Iterable[TargetFigures],
           step_seconds: float) -> list[AreaFigures]:
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # links, endpoints, steps up, steps down
    for target in targets:
        site = sites[target.site_id]
        for ancestor in (int(p) for p in site.path.strip("/").split("/") if p):
            if ancestor in in_scope:
                total = totals[ancestor]
                total[0 if target.kind == "link" else 1] += 1
                total[2] += target.steps_up
                total[3] += target.steps_down
    areas = []
    for site_id, (links, endpoints, up, down) in totals.items():
        site, level = sites[site_id], levels[sites[site_id].level_id]
        areas.append(AreaFigures(site_id=site_id, code=site.code, name=site.name, level_code=level.code,
                                 level_rank=level.rank, parent_id=site.parent_id, links=links, endpoints=endpoints,
                                 steps_up=up, steps_down=down, minutes_down=down * step_seconds / 60.0,
                                 availability=_percent(up, up + down)))
    return sorted(areas, key=lambda a: (sites[a.site_id].path.count("/"), a.level_rank, a.code))


def network_figures(session: so.Session, start_utc: dt.datetime, end_utc: dt.datetime,
                    subtree_site_id: int | None = None) -> NetworkReport:
    """The network's figures for [start_utc, end_utc) (e.g. app.reports.periods.month_bounds), for the whole
    network or the subtree of one site. Needs the app (its settings: step length, targets, TIMEZONE)."""
    config = current_app.config
    step_seconds = float(config["PROBE_STEP_SECONDS"])
    granularity = _granularity(start_utc, end_utc)
    link_model, endpoint_model = ((LinkRollupDaily, EndpointRollupDaily) if granularity == "daily"
                                  else (LinkRollupHourly, EndpointRollupHourly))

    whole = subtree_site_id is None
    # A subtree reads its own part of the inventory only: a province's month must not load the country.
    site_query = sa.select(Site.id, Site.code, Site.name, Site.parent_id, Site.path, Site.level_id)
    if not whole:
        root_path = session.scalar(sa.select(Site.path).where(Site.id == subtree_site_id))
        site_query = site_query.where(Site.path.startswith(root_path))
    sites = {s.id: s for s in session.execute(site_query)}
    levels = {lv.id: lv for lv in session.execute(sa.select(Level.id, Level.code, Level.rank))}
    in_scope = set(sites)
    parent_of = {s.id: s.parent_id for s in sites.values()}

    link_query = sa.select(Link.id, Link.code, Link.site_a_id, Link.site_b_id, Link.medium)
    endpoint_query = sa.select(Endpoint.id, Endpoint.site_id, Endpoint.room_name)
    if not whole:
        # The subtree's root path is a prefix of every site in it: joined, not a long IN list.
        a_site, b_site = so.aliased(Site), so.aliased(Site)
        link_query = (link_query.join(a_site, a_site.id == Link.site_a_id).join(b_site, b_site.id == Link.site_b_id)
                      .where(sa.or_(a_site.path.startswith(root_path), b_site.path.startswith(root_path))))
        endpoint_query = endpoint_query.join(Site, Site.id == Endpoint.site_id).where(Site.path.startswith(root_path))
    links = {r.id: r for r in session.execute(link_query)}
    # A link with one end outside the subtree belongs to it when its far end is inside: the root's own uplink.
    link_site = {link_id: _far_end(link, parent_of) for link_id, link in links.items()}
    endpoints = {r.id: r for r in session.execute(endpoint_query)}
    scoped_links = [i for i, site_id in link_site.items() if site_id in in_scope]
    scoped_endpoints = [i for i, e in endpoints.items() if e.site_id in in_scope]

    link_sums = _sums(session, link_model, "link_id", start_utc, end_utc, None if whole else scoped_links)
    endpoint_sums = _sums(session, endpoint_model, "endpoint_id", start_utc, end_utc,
                          None if whole else scoped_endpoints)
    link_figures = sorted(
        (_figures("link", i, links[i].code, sites[link_site[i]], links[i].medium, sums, step_seconds,
                  availability_target(config, links[i].medium))
         for i, sums in link_sums.items() if i in links),
        key=lambda f: f.code)
    endpoint_figures = sorted(
        (_figures("endpoint", i, f"{sites[endpoints[i].site_id].code} {endpoints[i].room_name}",
                  sites[endpoints[i].site_id], None, sums, step_seconds, None)
         for i, sums in endpoint_sums.items() if i in endpoints),
        key=lambda f: f.code)

    media = []
    for medium in LinkMedium:
        of_medium = [f for f in link_figures if f.medium == medium]
        if not of_medium:
            continue
        media.append(MediumFigures(
            medium=medium, target=availability_target(config, medium), links=len(of_medium),
            availability=_percent(sum(f.steps_up for f in of_medium), sum(f.steps for f in of_medium)),
            below=sorted((f for f in of_medium if f.below_target), key=lambda f: (f.availability, f.code))))

    site_codes = None if whole else {sites[i].code for i in in_scope}
    return NetworkReport(
        start=start_utc, end=end_utc, step_seconds=step_seconds, granularity=granularity, links=link_figures,
        endpoints=endpoint_figures, media=media, incidents=_incidents(session, start_utc, end_utc, site_codes),
        areas=_areas(sites, levels, in_scope, [*link_figures, *endpoint_figures], step_seconds))
