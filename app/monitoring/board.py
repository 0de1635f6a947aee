"""Monitoring room: the operators' board, each site's state judged from the probe agents' latest states and an hour of
history, the board (the tree of sites with their states and sparklines), and a link's page.

A site's state is the worst of its parts: its path (the primary uplink, or a backup when the primary is down)
and its room systems. Worst first: down > unreachable via upstream > degraded > unknown > maintenance > ok.
A site below an ancestor whose path is down shows "unreachable via upstream" instead of its own failure
(the probes to it cross the downed link, so its own figures say nothing new); a site under a maintenance
window shows "maintenance". The thresholds are the Prometheus rules'. Plain functions of a session, no commits.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import format_datetime, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.db import utcnow
from app.errors import NotFound
from app.monitoring.models import EndpointState, Incident, LinkSample, LinkState
from app.monitoring.topology import Topology, topology
from app.sites.models import Endpoint, EndpointKind, Level, Link, MaintenanceWindow, Site, Status
from app.sites.scope import Scope, sees, within

SPARKLINE_MINUTES = 60  # the board's sparklines: the last hour


class SiteState(enum.StrEnum):
    OK = "ok"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"
    DEGRADED = "degraded"
    UNREACHABLE = "unreachable"  # via upstream: an ancestor's path is down
    DOWN = "down"


# How bad each state is, for "the worst of" and for the board's order of counts.
SEVERITY = {state: rank for rank, state in enumerate(SiteState)}
STATE_LABELS = {
    SiteState.OK: _l("OK"),
    SiteState.MAINTENANCE: _l("Maintenance"),
    SiteState.UNKNOWN: _l("Unknown"),
    SiteState.DEGRADED: _l("Degraded"),
    SiteState.UNREACHABLE: _l("Unreachable via upstream"),
    SiteState.DOWN: _l("Down"),
}


def worst(states: Iterable[SiteState]) -> SiteState:
    return max(states, key=SEVERITY.__getitem__, default=SiteState.OK)


@dataclass(frozen=True)
class Thresholds:
    """The alert thresholds (the same as the Prometheus rules') and how old a measurement may be."""

    loss_ratio: float = 0.01
    rtt_seconds: float = 0.300
    jitter_seconds: float = 0.030
    step_seconds: float = 60.0
    stale_steps: int = 3

    @property
    def stale_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.step_seconds * self.stale_steps)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        return cls(step_seconds=float(config["PROBE_STEP_SECONDS"]))


@dataclass(frozen=True)
class Problem:
    code: str  # link_down, failover, loss, latency, jitter, no_data, stale, endpoint_down, endpoint_unregistered,
    #            upstream_down, maintenance
    message: str


@dataclass
class LinkView:
    """A link as the board shows it: its latest measurement, if any, judged against the thresholds."""

    id: int
    code: str
    medium: str
    role: str  # "primary" or "backup"
    up: bool | None = None  # None: never measured
    stale: bool = False
    rtt: float | None = None
    rtt_min: float | None = None
    rtt_max: float | None = None
    loss_ratio: float | None = None
    jitter: float | None = None
    measured_at: dt.datetime | None = None
    changed_at: dt.datetime | None = None
    state: SiteState = SiteState.UNKNOWN
    problems: list[Problem] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Measured up recently: traffic can take this link."""
        return bool(self.up) and not self.stale


@dataclass
class EndpointView:
    id: int
    room_name: str
    reachable: bool | None = None
    registered: bool | None = None
    in_call: bool | None = None
    measured_at: dt.datetime | None = None
    stale: bool = False
    error: str = ""
    state: SiteState = SiteState.UNKNOWN
    problems: list[Problem] = field(default_factory=list)


@dataclass
class SiteStatus:
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    path: str
    depth: int = 0
    uplink: LinkView | None = None
    backups: list[LinkView] = field(default_factory=list)
    endpoints: list[EndpointView] = field(default_factory=list)
    path_state: SiteState | None = None  # of the way to the site alone; None for a site without an uplink
    path_problems: list[Problem] = field(default_factory=list)
    upstream_site: str = ""  # the highest ancestor whose path is down, when there is one
    upstream_link: str = ""
    maintenance_until: dt.datetime | None = None
    state: SiteState = SiteState.UNKNOWN
    problems: list[Problem] = field(default_factory=list)
    history: list[tuple[dt.datetime, float | None]] = field(default_factory=list)  # (time, rtt; None = lost)

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[self.state])


@dataclass
class Board:
    generated_at: dt.datetime
    root: SiteStatus | None
    sites: list[SiteStatus]  # in tree order, after the state filter
    summary: dict[SiteState, int]  # over the subtree, before the state filter
    history_since: dt.datetime


# ---------------------------------------------------------------- judging measurements

def _number(value: float, digits: int = 1) -> str:
    return format_decimal(round(value, digits), format="#,##0." + "0" * digits if digits else "#,##0")


def _judge_link(view: LinkView, t: Thresholds, now: dt.datetime) -> None:
    if view.measured_at is None:
        view.state, view.problems = SiteState.UNKNOWN, [
            Problem("no_data", _("No measurement of link %(link)s yet.", link=view.code))]
        return
    age = now - view.measured_at
    if age > t.stale_after:
        view.stale = True
        view.state, view.problems = SiteState.UNKNOWN, [Problem("stale", _(
            "The last measurement of link %(link)s is %(minutes)s min old.", link=view.code,
            minutes=int(age.total_seconds() // 60)))]
        return
    if not view.up:
        view.state, view.problems = SiteState.DOWN, [
            Problem("link_down", _("Link %(link)s is down.", link=view.code))]
        return
    problems = []
    if view.loss_ratio is not None and view.loss_ratio > t.loss_ratio:
        problems.append(Problem("loss", _("Packet loss %(value)s%% on %(link)s (alert above %(limit)s%%).",
                                          value=_number(view.loss_ratio * 100), link=view.code,
                                          limit=_number(t.loss_ratio * 100))))
    if view.rtt is not None and view.rtt > t.rtt_seconds:
        problems.append(Problem("latency", _("Round trip %(value)s ms on %(link)s (alert above %(limit)s ms).",
                                             value=_number(view.rtt * 1000, 0), link=view.code,
                                             limit=_number(t.rtt_seconds * 1000, 0))))
    if view.jitter is not None and view.jitter > t.jitter_seconds:
        problems.append(Problem("jitter", _("Jitter %(value)s ms on %(link)s (alert above %(limit)s ms).",
                                            value=_number(view.jitter * 1000), link=view.code,
                                            limit=_number(t.jitter_seconds * 1000, 0))))
    view.state = SiteState.DEGRADED if problems else SiteState.OK
    view.problems = problems


def _judge_endpoint(view: EndpointView, t: Thresholds, now: dt.datetime) -> None:
    room = view.room_name
    if view.measured_at is None:
        view.state, view.problems = SiteState.UNKNOWN, [
            Problem("no_data", _("No measurement of room %(room)s yet.", room=room))]
    elif now - view.measured_at > t.stale_after:
        view.stale = True
        view.state, view.problems = SiteState.UNKNOWN, [Problem("stale", _(
            "The last measurement of room %(room)s is %(minutes)s min old.", room=room,
            minutes=int((now - view.measured_at).total_seconds() // 60)))]
    elif not view.reachable:
        view.state, view.problems = SiteState.DOWN, [
            Problem("endpoint_down", _("Room %(room)s is unreachable.", room=room))]
    elif view.registered is False:
        view.state, view.problems = SiteState.DEGRADED, [
            Problem("endpoint_unregistered", _("Room %(room)s is not registered with the call server.", room=room))]
    else:
        view.state, view.problems = SiteState.OK, []


def _judge_path(site: SiteStatus) -> None:
    """The state of the way to the site: its primary uplink, or a backup carrying the traffic instead."""
    primary = site.uplink
    if primary is None:
        return
    site.path_state, site.path_problems = primary.state, list(primary.problems)
    if primary.state is SiteState.DOWN:
        standby = next((b for b in site.backups if b.usable), None)
        if standby is not None:
            site.path_state = SiteState.DEGRADED if standby.state is not SiteState.DOWN else SiteState.DOWN
            site.path_problems = [Problem("failover", _("Uplink %(link)s is down; traffic is on backup %(backup)s.",
                                                        link=primary.code, backup=standby.code)),
                                  *standby.problems]


def _judge_site(site: SiteStatus, upstream: SiteStatus | None) -> None:
    endpoint_states = [e.state for e in site.endpoints]
    # A site with rooms that are all unreachable cannot take part, whatever its link says; one of several is
    # a degraded site.
    if endpoint_states and all(s is SiteState.DOWN for s in endpoint_states):
        rooms_state = SiteState.DOWN
    else:
        rooms_state = worst(SiteState.DEGRADED if s is SiteState.DOWN else s for s in endpoint_states)
    if site.path_state is SiteState.DOWN:
        # The rooms are out of reach because the link is: their failures say nothing more.
        site.state, site.problems = SiteState.DOWN, list(site.path_problems)
    else:
        parts = [rooms_state] + ([site.path_state] if site.path_state is not None else [])
        site.state = worst(parts)
        site.problems = [*site.path_problems, *(p for e in site.endpoints for p in e.problems)]
        if site.path_state is None and not site.endpoints:
            site.state = SiteState.UNKNOWN  # nothing measured at all (a root without rooms to probe)
    if upstream is not None:
        site.upstream_site = upstream.code
        site.upstream_link = upstream.uplink.code if upstream.uplink else ""
        site.state = SiteState.UNREACHABLE
        site.problems = [Problem("upstream_down", _(
            "Cut off: the uplink %(link)s of %(site)s, above it, is down.", link=site.upstream_link,
            site=upstream.name))]
    if site.maintenance_until is not None:
        site.state = SiteState.MAINTENANCE
        site.problems = [Problem("maintenance", _("Under maintenance until %(until)s.", until=format_datetime(
            site.maintenance_until, "HH:mm dd/MM"))), *site.problems]


# ---------------------------------------------------------------- reading the states

def _site_rows(session: so.Session, ids: Iterable[int] | None) -> list[Any]:
    stmt = (sa.select(Site.id, Site.code, Site.name, Site.parent_id, Site.path, Level.name.label("level"))
            .join(Level, Level.id == Site.level_id).where(Site.status == Status.ACTIVE))
    if ids is not None:
        stmt = stmt.where(Site.id.in_(list(ids)))
    return list(session.execute(stmt))


def _link_views(session: so.Session, topo: Topology, codes: set[str] | None, now: dt.datetime,
                t: Thresholds) -> dict[str, LinkView]:
    """The given links (every active one when None) with their latest state, judged."""
    if codes is not None and not codes:
        return {}
    backups = {lt.code for lt in topo.links if lt.backup_of}
    stmt = sa.select(Link.id, Link.code, Link.medium, LinkState).outerjoin(LinkState, LinkState.link_id == Link.id)
    # The whole board reads every link without a list of thousands of codes.
    stmt = stmt.where(Link.status == Status.ACTIVE) if codes is None else stmt.where(Link.code.in_(codes))
    rows = session.execute(stmt)
    views = {}
    for row in rows:
        view = LinkView(id=row.id, code=row.code, medium=row.medium.value,
                        role="backup" if row.code in backups else "primary")
        state: LinkState | None = row.LinkState
        if state is not None:
            view.up, view.rtt, view.rtt_min, view.rtt_max = state.up, state.rtt_median, state.rtt_min, state.rtt_max
            view.loss_ratio, view.jitter = state.loss_ratio, state.jitter
            view.measured_at, view.changed_at = state.measured_at, state.changed_at
        _judge_link(view, t, now)
        views[view.code] = view
    return views


def _endpoint_views(session: so.Session, site_ids: Iterable[int] | None, now: dt.datetime,
                    t: Thresholds) -> dict[int, list[EndpointView]]:
    """The rooms the probe agents measure (active room systems with a management address) of the given sites
    (all when None), per site."""
    found: dict[int, list[EndpointView]] = {}
    stmt = (sa.select(Endpoint.id, Endpoint.site_id, Endpoint.room_name, EndpointState)
            .outerjoin(EndpointState, EndpointState.endpoint_id == Endpoint.id)
            .where(Endpoint.status == Status.ACTIVE, Endpoint.kind == EndpointKind.ROOM_SYSTEM,
                   Endpoint.mgmt_address != "")
            .order_by(Endpoint.room_name))
    if site_ids is not None:
        ids = list(site_ids)
        if not ids:
            return found
        stmt = stmt.where(Endpoint.site_id.in_(ids))
    rows = session.execute(stmt)
    for row in rows:
        view = EndpointView(id=row.id, room_name=row.room_name)
        state: EndpointState | None = row.EndpointState
        if state is not None:
            view.reachable, view.registered, view.in_call = state.up, state.registered, state.in_call
            view.measured_at, view.error = state.measured_at, state.error
        _judge_endpoint(view, t, now)
        found.setdefault(row.site_id, []).append(view)
    return found


def _maintenance_until(session: so.Session, sites: Iterable[SiteStatus], now: dt.datetime) -> dict[int, dt.datetime]:
    """Sites under a window now, on the site itself, one of its rooms, or one of its uplinks: until when."""
    windows = session.execute(sa.select(MaintenanceWindow.site_id, MaintenanceWindow.endpoint_id,
                                        MaintenanceWindow.link_id, MaintenanceWindow.ends_at)
                              .where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)).all()
    if not windows:
        return {}
    endpoint_site: dict[int, int] = {row.id: row.site_id for row in session.execute(
        sa.select(Endpoint.id, Endpoint.site_id).where(
            Endpoint.id.in_([w.endpoint_id for w in windows if w.endpoint_id is not None])))}
    link_site: dict[int, int] = {}
    for s in sites:
        for link in ([s.uplink] if s.uplink else []) + s.backups:
            link_site[link.id] = s.id
    until: dict[int, dt.datetime] = {}
    for w in windows:
        site_id = w.site_id or endpoint_site.get(w.endpoint_id) or link_site.get(w.link_id)
        if site_id is not None:
            until[site_id] = max(until.get(site_id, w.ends_at), w.ends_at)
    return until


def site_statuses(session: so.Session, site_ids: Iterable[int] | None = None, *, now: dt.datetime | None = None,
                  thresholds: Thresholds = Thresholds()) -> dict[int, SiteStatus]:
    """The state of the given active sites (all when None), judged with their ancestors' paths."""
    now = now or utcnow()
    wanted = None if site_ids is None else set(site_ids)
    rows = _site_rows(session, wanted)
    if wanted is not None:
        # The ancestors decide "unreachable via upstream".
        ancestors = {int(p) for r in rows for p in r.path.strip("/").split("/") if p} - wanted
        rows += _site_rows(session, ancestors) if ancestors else []
    topo = topology(session)
    backups_of: dict[str, list[str]] = {}
    for lt in topo.links:
        if lt.backup_of:
            backups_of.setdefault(lt.site_code, []).append(lt.code)
    codes = None
    if wanted is not None:
        codes = {topo.uplink_of_site[r.code] for r in rows if r.code in topo.uplink_of_site}
        codes |= {c for r in rows for c in backups_of.get(r.code, [])}
    links = _link_views(session, topo, codes, now, thresholds)

    statuses = {r.id: SiteStatus(id=r.id, code=r.code, name=r.name, level=r.level, parent_id=r.parent_id,
                                 path=r.path) for r in rows}
    shown = [s for s in statuses.values() if wanted is None or s.id in wanted]
    rooms = _endpoint_views(session, wanted, now, thresholds)
    for s in statuses.values():
        s.uplink = links.get(topo.uplink_of_site.get(s.code, ""))
        s.backups = [links[c] for c in backups_of.get(s.code, []) if c in links]
        s.endpoints = rooms.get(s.id, [])
        _judge_path(s)
    until = _maintenance_until(session, shown, now)
    for s in shown:
        s.maintenance_until = until.get(s.id)
        chain = [statuses[int(p)] for p in s.path.strip("/").split("/")[:-1] if p and int(p) in statuses]
        # The highest ancestor whose path is down is the cause; the ones below it are down because of it.
        upstream = next((a for a in chain if a.path_state is SiteState.DOWN), None)
        _judge_site(s, upstream)
    return {s.id: s for s in shown}


def _tree_order(statuses: Iterable[SiteStatus]) -> list[SiteStatus]:
    """Parents before their children, siblings by code; the depth below the highest site shown."""
    items = list(statuses)
    ids = {s.id for s in items}
    children: dict[int | None, list[SiteStatus]] = {}
    for s in items:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    ordered: list[SiteStatus] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x.code):
            s.depth = depth
            ordered.append(s)
            walk(s.id, depth + 1)

    walk(None, 0)
    return ordered


def site_by_code(session: so.Session, code: str) -> Site:
    """The site the board's `under` names; a 404 naming the field otherwise (a code, not an id: no get_or_raise)."""
    site = session.scalar(sa.select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(_("No site with code %(code)s.", code=code), {"under": [_("no such site")]})
    return site


def board(session: so.Session, *, under: str = "", state: str = "", now: dt.datetime | None = None,
          thresholds: Thresholds = Thresholds(), history: bool = True, scope: Scope | None = None) -> Board:
    """The board: every active site (or those of `under`'s subtree, itself included) with its state, in tree
    order; `state` keeps only the sites in that state. With `history`, each site's last hour of round trips.
    A scope keeps its own subtree only (an `under` outside it is not found)."""
    now = now or utcnow()
    root_site = site_by_code(session, under) if under else None
    if root_site is not None and not sees(scope, root_site.id):
        raise NotFound(_("No site with code %(code)s.", code=under), {"under": [_("no such site")]})
    ids = None
    top = root_site or (scope.site if scope is not None else None)
    if top is not None:
        ids = session.scalars(sa.select(Site.id).where(Site.path.startswith(top.path),
                                                       Site.status == Status.ACTIVE)).all()
    statuses = site_statuses(session, ids, now=now, thresholds=thresholds)
    ordered = _tree_order(statuses.values())
    summary = {s: 0 for s in reversed(SiteState)}
    for s in ordered:
        summary[s.state] += 1
    if state:
        ordered = [s for s in ordered if s.state == state]
    since = now - dt.timedelta(minutes=SPARKLINE_MINUTES)
    if history:
        _attach_history(session, ordered, since)
    root = statuses.get(root_site.id) if root_site is not None else None
    return Board(generated_at=now, root=root, sites=ordered, summary=summary, history_since=since)


def _attach_history(session: so.Session, sites: list[SiteStatus], since: dt.datetime) -> None:
    by_link = {s.uplink.id: s for s in sites if s.uplink is not None}
    if not by_link:
        return
    rows = session.execute(sa.select(LinkSample.link_id, LinkSample.measured_at, LinkSample.up, LinkSample.rtt_median)
                           .where(LinkSample.link_id.in_(list(by_link)), LinkSample.measured_at >= since)
                           .order_by(LinkSample.link_id, LinkSample.measured_at))
    for row in rows:
        by_link[row.link_id].history.append((row.measured_at, row.rtt_median if row.up else None))


def board_filter_sites(session: so.Session, scope: Scope | None = None) -> list[Site]:
    """The sites worth filtering the board by: those with sites below them."""
    parent_ids = sa.select(Site.parent_id).where(Site.parent_id.is_not(None), Site.status == Status.ACTIVE)
    return list(session.scalars(sa.select(Site).where(Site.id.in_(parent_ids), Site.status == Status.ACTIVE,
                                                      within(scope, Site.id)).order_by(Site.path)))


# ---------------------------------------------------------------- a link's page

@dataclass
class LinkDetail:
    link: Link
    view: LinkView
    site: Site  # the far end: the site the link serves
    parent: Site | None
    primary_code: str  # for a backup, the primary it stands in for; "" for a primary
    samples: list[LinkSample]  # oldest first
    incidents: list[Incident]
    since: dt.datetime


def link_detail(session: so.Session, code: str, *, now: dt.datetime | None = None,
                thresholds: Thresholds = Thresholds(), history_minutes: int = 90,
                scope: Scope | None = None) -> LinkDetail:
    """A link's page: its latest state judged, its two ends, its samples of the last `history_minutes` and its
    latest incidents (not found when neither end lies in the scope)."""
    now = now or utcnow()
    link = session.scalar(sa.select(Link).where(Link.code == code))
    if link is None or not sees(scope, link.site_a_id, link.site_b_id):
        raise NotFound(_("No link with code %(code)s.", code=code))
    topo = topology(session)
    target = next((lt for lt in topo.links if lt.code == code), None)
    view = _link_views(session, topo, {code}, now, thresholds)[code]
    if link.site_b.parent_id == link.site_a_id:
        site, parent = link.site_b, link.site_a
    elif link.site_a.parent_id == link.site_b_id:
        site, parent = link.site_a, link.site_b
    else:
        site, parent = link.site_b, None
    since = now - dt.timedelta(minutes=history_minutes)
    samples = list(session.scalars(sa.select(LinkSample).where(LinkSample.link_id == link.id,
                                                               LinkSample.measured_at >= since)
                                   .order_by(LinkSample.measured_at)))
    incidents = list(session.scalars(sa.select(Incident).where(Incident.link_code == code)
                                     .order_by(Incident.starts_at.desc()).limit(50)))
    return LinkDetail(link=link, view=view, site=site, parent=parent,
                      primary_code=target.backup_of if target is not None else "", samples=samples,
                      incidents=incidents, since=since)


