"""Meetings room: booking — the clash and capacity rules, checked and applied in one transaction.

Everything an occurrence holds is reserved from its setup start (the technicians' test call) to its
end. The rules, each refused with the clashing meeting and resource named:
- a room is in at most one holding occurrence at any instant;
- a bridge's ports in use (one per room) never exceed its capacity at any instant (largest overlap);
- every link on the path from a site up to the host site (on each hop, the primary uplink of
  app.sites.tree: a dedicated line first, its backup when it is down) has the meeting's bandwidth free at
  every instant (per-site bitrate plus 20% overhead, summed over the sites whose path crosses the link);
- nothing retired, nothing under maintenance, nothing in the past.
Concurrent bookings are serialised per resource (PostgreSQL advisory locks taken before the check;
SQLite's writers already queue on BEGIN IMMEDIATE), so the check and the insert cannot interleave.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql

from app.meetings.models import HOLDING, LinkReservation, Meeting, Occurrence, Participation
from app.sites import tree
from app.sites.models import Bridge, Endpoint, Link, MaintenanceWindow, Site, Status

OVERHEAD = 1.2  # protocol overhead on top of the video bitrate
MAX_DURATION = dt.timedelta(hours=12)  # the longest meeting
MAX_SETUP = dt.timedelta(hours=8)  # the longest setup buffer
# No reservation is longer than this, so an overlap query can bound its index range scan from below too.
MAX_SPAN = MAX_DURATION + MAX_SETUP


@dataclass(frozen=True)
class Clash:
    kind: str  # room / bridge / link / maintenance / retired / path / time (for programs: never translated)
    resource: str  # the room, bridge or link in the user's words
    message: str  # translated when the clash is found, in the locale of the request (or the default language)
    meeting_id: int | None = None
    meeting_title: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "resource": self.resource, "message": self.message,
                "meeting_id": self.meeting_id, "meeting_title": self.meeting_title}


@dataclass
class Window:
    setup_starts_at: dt.datetime
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass
class Plan:
    """What one occurrence would hold: its rooms, its bridge and the load on each link."""

    rooms: dict[int, int] = field(default_factory=dict)  # site id -> endpoint id
    bridge_id: int | None = None
    link_kbps: dict[int, int] = field(default_factory=dict)  # link id -> kbps
    clashes: list[Clash] = field(default_factory=list)


# ---------------------------------------------------------------- the tree and the links

def _hops(chain: list[int], common: int) -> list[tuple[int, int]]:
    """(child, parent) pairs from the end of the chain up to its element at index common - 1."""
    return [(chain[i], chain[i - 1]) for i in range(len(chain) - 1, common - 1, -1)]


def link_paths(session: so.Session, host: Site, sites: Sequence[Site]) -> tuple[dict[int, list[int]], list[Clash]]:
    """For each site, the ids of the links from it up to the host site (through their common ancestor)."""
    host_chain = tree.path_ids(host)
    pairs: set[tuple[int, int]] = set()  # (child, parent) hops that must have an active link
    hops_of: dict[int, list[tuple[int, int]]] = {}
    for site in sites:
        chain = tree.path_ids(site)
        common = 0
        while common < min(len(chain), len(host_chain)) and chain[common] == host_chain[common]:
            common += 1
        if common:  # up from the site to the common ancestor, then down to the host site
            hops_of[site.id] = _hops(chain, common) + _hops(host_chain, common)
            pairs.update(hops_of[site.id])

    link_of: dict[tuple[int, int], int] = {}  # (child, parent) -> the hop's primary uplink (app.sites.tree)
    if pairs:
        ids = {i for pair in pairs for i in pair}
        rows = session.execute(sa.select(Link.id, Link.site_a_id, Link.site_b_id, Link.medium).where(
            Link.status == Status.ACTIVE, among(session, Link.site_a_id, ids),
            among(session, Link.site_b_id, ids)))
        link_of = tree.primary_links(rows)

    clashes: list[Clash] = []
    paths: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for site in sites:
        if site.id not in hops_of:
            clashes.append(Clash("path", site.name, _(
                "%(site)s is not in the same tree as the host site %(host)s: there is no path for its media.",
                site=site.name, host=host.name)))
            continue
        path = []
        for child, parent in hops_of[site.id]:
            link_id = link_of.get((child, parent))
            if link_id is None:
                if not names:
                    names.update(session.execute(sa.select(Site.id, Site.name).where(
                        among(session, Site.id, {i for p in pairs for i in p}))).all())
                clashes.append(Clash("path", site.name, _(
                    "No active link between %(child)s and %(parent)s: %(site)s cannot reach the host site.",
                    child=names.get(child), parent=names.get(parent), site=site.name)))
                break
            path.append(link_id)
        paths[site.id] = path
    return paths, clashes


def required_kbps(paths: dict[int, list[int]], bitrate_kbps: int) -> dict[int, int]:
    per_site = int(round(bitrate_kbps * OVERHEAD))
    load: dict[int, int] = defaultdict(int)
    for path in paths.values():
        for link_id in path:
            load[link_id] += per_site
    return dict(load)


# ---------------------------------------------------------------- peak load over time

def peak(intervals: Iterable[tuple[dt.datetime, dt.datetime, int]], start: dt.datetime, end: dt.datetime) -> int:
    """The largest sum of weights of intervals [s, e) overlapping at any instant within [start, end)."""
    events: list[tuple[dt.datetime, int]] = []
    for s, e, w in intervals:
        s, e = max(s, start), min(e, end)
        if s < e:
            events.append((s, w))
            events.append((e, -w))
    # At the same instant, ends come before starts: a meeting ending at 10:00 frees its port for one at 10:00.
    events.sort(key=lambda ev: (ev[0], ev[1]))
    best = current = 0
    for _instant, w in events:
        current += w
        best = max(best, current)
    return best


def among(session: so.Session, column: sa.ColumnElement, ids: Iterable[int]) -> sa.ColumnElement[bool]:
    """`column IN ids`; as one array parameter on PostgreSQL (`= ANY(:ids)`), which it plans much faster than
    hundreds of separate parameters when a meeting has 150 sites."""
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, ids, type_=postgresql.ARRAY(sa.Integer)))
    return column.in_(ids)


# ---------------------------------------------------------------- locking

def lock_resources(session: so.Session, keys: Iterable[str], shared: Iterable[str] = ()) -> None:
    """Serialise bookings that touch the same resources (PostgreSQL); SQLite already serialises writers.
    `shared` keys are taken in shared mode: bookings holding one shared do not wait for each other, only for
    the one holding it exclusively."""
    if session.get_bind().dialect.name != "postgresql":
        return
    modes: dict[int, bool] = {_lock_number(k): True for k in shared}
    modes.update({_lock_number(k): False for k in keys})  # exclusive wins where a key is asked both ways
    if modes:
        numbers = sorted(modes)
        # One statement, keys in order: two bookings never wait on each other in opposite orders.
        session.execute(sa.text(
            "SELECT CASE WHEN s THEN pg_advisory_xact_lock_shared(k) ELSE pg_advisory_xact_lock(k) END "
            "FROM unnest(CAST(:keys AS bigint[]), CAST(:shared AS boolean[])) AS t(k, s) ORDER BY k"),
            {"keys": numbers, "shared": [modes[n] for n in numbers]})


def _lock_number(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


# ---------------------------------------------------------------- the check

def _overlapping(model_start: sa.ColumnElement, model_end: sa.ColumnElement, w: Window,
                 bounded: bool = True) -> sa.ColumnElement[bool]:
    """Rows whose period overlaps the window; `bounded` for reservations, which last at most MAX_SPAN."""
    cond = sa.and_(model_start < w.ends_at, model_end > w.setup_starts_at)
    if bounded:
        cond = sa.and_(cond, model_start > w.setup_starts_at - MAX_SPAN)
    return cond


def _maintenance(session: so.Session, w: Window, site_ids: Iterable[int], endpoint_ids: Iterable[int],
                 bridge_ids: Iterable[int], link_ids: Iterable[int]) -> list[MaintenanceWindow]:
    """Maintenance windows overlapping the window on any of these; few windows exist at any time, so they
    are read by time alone and matched here (no long lists of ids for the database to plan)."""
    targets = {"site_id": set(site_ids), "endpoint_id": set(endpoint_ids), "bridge_id": set(bridge_ids),
               "link_id": set(link_ids)}
    windows = session.scalars(sa.select(MaintenanceWindow).where(
        _overlapping(MaintenanceWindow.starts_at, MaintenanceWindow.ends_at, w, bounded=False)))
    return [mw for mw in windows if any(getattr(mw, key) in ids for key, ids in targets.items())]


def _holding(exclude: Sequence[int]) -> sa.ColumnElement[bool]:
    cond = Occurrence.status.in_(HOLDING)
    if exclude:
        cond = sa.and_(cond, Occurrence.id.not_in(list(exclude)))
    return cond


def _local(value: dt.datetime) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m/%Y %H:%M")


def plan_occurrence(session: so.Session, *, host: Site, sites: Sequence[Site], w: Window, bitrate_kbps: int,
                    rooms: dict[int, int] | None = None, bridge_id: int | None = None,
                    exclude: Sequence[int] = (), paths: dict[int, list[int]] | None = None,
                    now: dt.datetime | None = None) -> Plan:
    """Check one occurrence and choose its rooms and bridge; the plan's clashes say what stands in the way."""
    # Reads only: pending changes of the caller need not be flushed for them (and flushing costs time).
    with session.no_autoflush:
        return _plan(session, host, sites, w, bitrate_kbps, rooms, bridge_id, exclude, paths, now)


@dataclass(frozen=True)
class _Room:
    id: int
    site_id: int
    room_name: str
    status: Status


def _plan(session: so.Session, host: Site, sites: Sequence[Site], w: Window, bitrate_kbps: int,
          rooms: dict[int, int] | None, bridge_id: int | None, exclude: Sequence[int],
          paths: dict[int, list[int]] | None, now: dt.datetime | None) -> Plan:
    plan = Plan()
    rooms = dict(rooms or {})
    now = now or dt.datetime.now(dt.UTC)
    if w.ends_at <= w.starts_at:
        plan.clashes.append(Clash("time", "", _("The meeting must end after it starts.")))
        return plan
    if w.starts_at < now:
        plan.clashes.append(Clash("time", "", _("The meeting would start in the past (%(start)s).",
                                                start=_local(w.starts_at))))
        return plan
    site_ids = [s.id for s in sites]
    if paths is None:
        paths, path_clashes = link_paths(session, host, [s for s in sites if s.id != host.id])
        plan.clashes.extend(path_clashes)
    paths = {**paths, host.id: []}

    for site in sites:
        if site.status is Status.RETIRED:
            plan.clashes.append(Clash("retired", site.name, _("The site %(site)s is retired.", site=site.name)))

    # Everything that could be needed, read up front in a few statements.
    candidates = [_Room(*row) for row in session.execute(
        sa.select(Endpoint.id, Endpoint.site_id, Endpoint.room_name, Endpoint.status)
        .where(among(session, Endpoint.site_id, site_ids)).order_by(Endpoint.site_id, Endpoint.room_name, Endpoint.id))]
    plan.link_kbps = required_kbps({k: v for k, v in paths.items() if k in site_ids}, bitrate_kbps)
    bridges = _bridge_candidates(session, host, bridge_id)
    maintenance = _maintenance(session, w, site_ids, [e.id for e in candidates], [b.id for b in bridges],
                               plan.link_kbps)

    # Rooms: the ones asked for, or a free active room of each site.
    by_site: dict[int, list[_Room]] = defaultdict(list)
    for endpoint in candidates:
        by_site[endpoint.site_id].append(endpoint)
    # The occurrences holding anything during the window: few at any time, even nationally. The room and
    # bridge checks start from them, so the database never walks a room's bookings of the whole year.
    overlapping = session.execute(
        sa.select(Occurrence.id, Occurrence.bridge_id, Occurrence.setup_starts_at, Occurrence.ends_at,
                  Occurrence.ports, Meeting.id, Meeting.title)
        .join(Meeting, Occurrence.meeting_id == Meeting.id)
        .where(_holding(exclude), _overlapping(Occurrence.setup_starts_at, Occurrence.ends_at, w))).all()
    held_by = {row[0]: (row[5], row[6]) for row in overlapping}
    wanted = {e.id for e in candidates}
    busy: dict[int, tuple[int, str]] = {}
    if held_by:
        for endpoint_id, occurrence_id in session.execute(
                sa.select(Participation.endpoint_id, Participation.occurrence_id)
                .where(among(session, Participation.occurrence_id, held_by))):
            if endpoint_id in wanted:
                busy[endpoint_id] = held_by[occurrence_id]
    room_maintenance = {m.endpoint_id: m for m in maintenance if m.endpoint_id}
    for site in sites:
        asked = rooms.get(site.id)
        options = [e for e in by_site[site.id] if asked is None or e.id == asked]
        if asked is not None and not options:
            plan.clashes.append(Clash("room", site.name, _("Room %(room)s is not a room of %(site)s.", room=asked,
                                                           site=site.name)))
            continue
        chosen = None
        reasons: list[Clash] = []
        for endpoint in options:
            label = f"{endpoint.room_name} ({site.name})"
            if endpoint.status is not Status.ACTIVE:
                message = (_("The room %(room)s is planned.", room=label) if endpoint.status is Status.PLANNED
                           else _("The room %(room)s is retired.", room=label))
                reasons.append(Clash("retired", label, message))
            elif endpoint.id in room_maintenance:
                reasons.append(_maintenance_clash("room", label, room_maintenance[endpoint.id]))
            elif endpoint.id in busy:
                meeting_id, title = busy[endpoint.id]
                reasons.append(Clash("room", label, _(
                    "The room %(room)s is already taken by the meeting \u201c%(title)s\u201d at that time.",
                    room=label, title=title), meeting_id, title))
            else:
                chosen = endpoint
                break
        if chosen is None:
            plan.clashes.extend(reasons or [Clash("room", site.name, _("%(site)s has no room for meetings.",
                                                                       site=site.name))])
        else:
            plan.rooms[site.id] = chosen.id

    # Maintenance on the sites and on the links of their paths.
    for mw in maintenance:
        if mw.site_id:
            plan.clashes.append(_maintenance_clash("site", mw.site.name, mw))
        elif mw.link_id:
            plan.clashes.append(_maintenance_clash("link", _("link %(code)s", code=mw.link.code), mw, mw.link.code))

    # Links: the largest load at any instant plus ours within the contracted bandwidth.
    if plan.link_kbps:
        plan.clashes.extend(_link_clashes(session, w, plan.link_kbps, exclude))

    # The bridge: the one asked for, or the nearest active one with the ports free.
    if bridge_id is not None and not bridges:
        plan.clashes.append(Clash("bridge", str(bridge_id), _("No bridge with id %(id)s.", id=bridge_id)))
    elif not bridges:
        plan.clashes.append(Clash("bridge", "", _("There is no active bridge.")))
    else:
        bridge_maintenance = {m.bridge_id: m for m in maintenance if m.bridge_id}
        plan.bridge_id, reasons = _choose_bridge(w, bridges, len(sites), bridge_maintenance, overlapping)
        if plan.bridge_id is None:
            if bridge_id is not None or len(reasons) == 1:
                plan.clashes.extend(reasons)
            else:
                shown = " ".join(c.message for c in reasons[:3])
                message = (_("No bridge has enough free ports at that time: %(reasons)s (and %(more)s more)",
                             reasons=shown, more=len(reasons) - 3) if len(reasons) > 3
                           else _("No bridge has enough free ports at that time: %(reasons)s", reasons=shown))
                plan.clashes.append(Clash("bridge", "", message))
    return plan


def _maintenance_clash(what: str, resource: str, mw: MaintenanceWindow, name: str = "") -> Clash:
    """`what` says which sentence to use (room, bridge, site, link): each is whole in every language."""
    values = {"name": name or resource, "start": _local(mw.starts_at), "end": _local(mw.ends_at), "reason": mw.reason}
    if what == "room":
        message = _("The room %(name)s is under maintenance from %(start)s to %(end)s: %(reason)s.", **values)
    elif what == "bridge":
        message = _("The bridge %(name)s is under maintenance from %(start)s to %(end)s: %(reason)s.", **values)
    elif what == "link":
        message = _("link %(name)s is under maintenance from %(start)s to %(end)s: %(reason)s.", **values)
    else:
        message = _("%(name)s is under maintenance from %(start)s to %(end)s: %(reason)s.", **values)
    return Clash("maintenance", resource, message)


def _link_clashes(session: so.Session, w: Window, need_kbps: dict[int, int], exclude: Sequence[int]) -> list[Clash]:
    links = {row.id: row for row in session.execute(
        sa.select(Link.id, Link.code, Link.bandwidth_kbps).where(among(session, Link.id, need_kbps)))}
    usage: dict[int, list[tuple[dt.datetime, dt.datetime, int]]] = defaultdict(list)
    holders: dict[int, dict[int, None]] = defaultdict(dict)  # link -> meetings holding it (ordered, unique)
    for link_id, s, e, kbps, meeting_id in session.execute(
            sa.select(LinkReservation.link_id, LinkReservation.starts_at, LinkReservation.ends_at,
                      LinkReservation.kbps, Occurrence.meeting_id)
            .join(Occurrence, LinkReservation.occurrence_id == Occurrence.id)
            .where(among(session, LinkReservation.link_id, need_kbps), _holding(exclude),
                   _overlapping(LinkReservation.starts_at, LinkReservation.ends_at, w))):
        usage[link_id].append((s, e, kbps))
        holders[link_id][meeting_id] = None
    over = [(link_id, need, peak(usage[link_id], w.setup_starts_at, w.ends_at))
            for link_id, need in sorted(need_kbps.items())]
    over = [(link_id, need, used) for link_id, need, used in over if used + need > links[link_id].bandwidth_kbps]
    if not over:
        return []
    # Titles only for the links that clash (a booked meeting needs none).
    named = {i for link_id, _need, _used in over for i in list(holders[link_id])[:3]}
    titles = dict(session.execute(sa.select(Meeting.id, Meeting.title).where(among(session, Meeting.id, named)))
                  .all()) if named else {}
    clashes = []
    for link_id, need, used in over:
        link = links[link_id]
        shown = list(holders[link_id])[:3]
        meeting_id = shown[0] if shown else None
        title = titles.get(meeting_id, "") if meeting_id is not None else ""
        others = ", ".join(f"\u201c{titles.get(i, '')}\u201d" for i in shown)
        values = {"code": link.code, "bandwidth": link.bandwidth_kbps, "total": used + need, "need": need,
                  "used": used, "others": others}
        if others:
            message = _("The link %(code)s (%(bandwidth)s kbit/s) would carry %(total)s kbit/s: %(need)s kbit/s "
                        "for this meeting on top of %(used)s kbit/s already booked by %(others)s.", **values)
        else:
            message = _("The link %(code)s (%(bandwidth)s kbit/s) would carry %(total)s kbit/s: %(need)s kbit/s "
                        "for this meeting on top of %(used)s kbit/s already booked.", **values)
        clashes.append(Clash("link", _("link %(code)s", code=link.code), message, meeting_id, title))
    return clashes


@dataclass(frozen=True)
class _Bridge:
    id: int
    name: str
    total_ports: int
    status: Status
    site_path: str


def _bridge_candidates(session: so.Session, host: Site, bridge_id: int | None) -> list[_Bridge]:
    """The bridge asked for, or every active bridge, nearest to the host site first (then the largest)."""
    stmt = sa.select(Bridge.id, Bridge.name, Bridge.total_ports, Bridge.status, Site.path).outerjoin(
        Site, Bridge.site_id == Site.id)
    stmt = stmt.where(Bridge.id == bridge_id) if bridge_id is not None else stmt.where(Bridge.status == Status.ACTIVE)
    bridges = [_Bridge(*row) for row in session.execute(stmt)]
    host_ids = host.path.strip("/").split("/")

    def shared(b: _Bridge) -> int:
        ids = (b.site_path or "/").strip("/").split("/")
        n = 0
        while n < min(len(ids), len(host_ids)) and ids[n] == host_ids[n]:
            n += 1
        return n

    return sorted(bridges, key=lambda b: (-shared(b), -b.total_ports, b.id))


def _choose_bridge(w: Window, bridges: list[_Bridge], ports: int, maintenance: dict[int, MaintenanceWindow],
                   overlapping: Sequence[sa.Row[Any]]) -> tuple[int | None, list[Clash]]:
    # Rows of the overlapping occurrences, reshaped as (bridge, setup start, end, ports, meeting id, title).
    usage_rows = [row[1:] for row in overlapping if row[1] is not None]
    by_bridge: dict[int, list[tuple]] = defaultdict(list)
    for row in usage_rows:
        by_bridge[row[0]].append(tuple(row))
    reasons: list[Clash] = []
    for bridge in bridges:
        if bridge.status is not Status.ACTIVE:
            message = (_("The bridge %(bridge)s is planned.", bridge=bridge.name) if bridge.status is Status.PLANNED
                       else _("The bridge %(bridge)s is retired.", bridge=bridge.name))
            reasons.append(Clash("retired", bridge.name, message))
            continue
        if bridge.id in maintenance:
            reasons.append(_maintenance_clash("bridge", bridge.name, maintenance[bridge.id]))
            continue
        rows = by_bridge[bridge.id]
        used = peak(((row[1], row[2], row[3]) for row in rows), w.setup_starts_at, w.ends_at)
        if used + ports > bridge.total_ports:
            titles = ", ".join(f"\u201c{r[5]}\u201d" for r in rows[:3])
            if rows:
                message = _("The bridge %(bridge)s has %(total)s ports; %(used)s are already taken at that time "
                            "(by %(titles)s) and this meeting needs %(ports)s.", bridge=bridge.name,
                            total=bridge.total_ports, used=used, titles=titles, ports=ports)
            else:  # the meeting alone is larger than the bridge
                message = _("The bridge %(bridge)s has %(total)s ports and this meeting needs %(ports)s.",
                            bridge=bridge.name, total=bridge.total_ports, ports=ports)
            reasons.append(Clash("bridge", bridge.name, message, rows[0][4] if rows else None,
                                 rows[0][5] if rows else ""))
            continue
        return bridge.id, reasons
    return None, reasons


def reserve(session: so.Session, occurrence: Occurrence, plan: Plan) -> None:
    """Write what the plan holds onto the occurrence (its rooms, bridge and link loads)."""
    occurrence.bridge_id = plan.bridge_id
    occurrence.ports = sum(1 for endpoint_id in plan.rooms.values() if endpoint_id is not None)
    if occurrence.id is None and occurrence in session:
        session.flush()  # a new occurrence gets its id: its rows then go in two statements, not ~300
    if occurrence.id is not None and not occurrence.participations:
        _insert_rows(session, Participation.__table__, [
            {"occurrence_id": occurrence.id, "site_id": site_id, "endpoint_id": endpoint_id, "confirmed_by": ""}
            for site_id, endpoint_id in plan.rooms.items()])
        _replace_link_reservations(session, occurrence, plan, new=True)
        session.expire(occurrence, ["participations", "link_reservations"])
        return
    existing = {p.site_id: p for p in occurrence.participations}
    occurrence.participations = [
        _participation(existing.get(site_id), site_id, endpoint_id) for site_id, endpoint_id in plan.rooms.items()]
    if occurrence.id is None:
        occurrence.link_reservations = [
            LinkReservation(link_id=link_id, kbps=kbps, starts_at=occurrence.setup_starts_at,
                            ends_at=occurrence.ends_at) for link_id, kbps in plan.link_kbps.items()]
    else:
        _replace_link_reservations(session, occurrence, plan)
        session.expire(occurrence, ["link_reservations"])


def _replace_link_reservations(session: so.Session, occurrence: Occurrence, plan: Plan, new: bool = False) -> None:
    if not new:
        session.execute(sa.delete(LinkReservation).where(LinkReservation.occurrence_id == occurrence.id))
    if plan.link_kbps:
        _insert_rows(session, LinkReservation.__table__, [
            {"occurrence_id": occurrence.id, "link_id": link_id, "kbps": kbps,
             "starts_at": occurrence.setup_starts_at, "ends_at": occurrence.ends_at}
            for link_id, kbps in plan.link_kbps.items()])


def _insert_rows(session: so.Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert through the core without ORM bookkeeping (a 150-site meeting writes about 300 rows): on PostgreSQL
    as one INSERT … SELECT FROM unnest(one array per column), one message instead of one per row; elsewhere as
    an executemany of a cached statement."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    arrays = [sa.bindparam(f"rows_{name}", [row[name] for row in rows], type_=postgresql.ARRAY(table.c[name].type))
              for name in columns]
    source = sa.select(sa.func.unnest(*arrays).table_valued(*columns).render_derived())
    connection.execute(sa.insert(table).from_select(columns, source))


def _participation(existing: Participation | None, site_id: int, endpoint_id: int) -> Participation:
    if existing is not None:
        existing.endpoint_id = endpoint_id  # keeps the site's attendance confirmation
        return existing
    return Participation(site_id=site_id, endpoint_id=endpoint_id)


def release(session: so.Session, occurrence: Occurrence) -> None:
    """A cancelled occurrence gives its bandwidth back (its rooms and port are freed by its status)."""
    if occurrence.id is not None:
        session.execute(sa.delete(LinkReservation).where(LinkReservation.occurrence_id == occurrence.id))
        session.expire(occurrence, ["link_reservations"])


def meetings_over_maintenance(session: so.Session, window: MaintenanceWindow) -> list[tuple[str, dt.datetime]]:
    """The booked occurrences a maintenance window overlaps from their setup start, (title, start) soonest first:
    what the technician is warned of when making the window (booking refuses the other way round)."""
    held = sa.and_(Occurrence.status.in_(HOLDING), Occurrence.setup_starts_at < window.ends_at,
                   Occurrence.ends_at > window.starts_at)
    if window.link_id is not None:
        on = Occurrence.id.in_(sa.select(LinkReservation.occurrence_id).where(
            LinkReservation.link_id == window.link_id, LinkReservation.starts_at < window.ends_at,
            LinkReservation.ends_at > window.starts_at))
    elif window.bridge_id is not None:
        on = Occurrence.bridge_id == window.bridge_id
    elif window.endpoint_id is not None:
        on = Occurrence.id.in_(sa.select(Participation.occurrence_id).where(
            Participation.endpoint_id == window.endpoint_id))
    else:
        on = Occurrence.id.in_(sa.select(Participation.occurrence_id).where(Participation.site_id == window.site_id))
    return [(title, starts_at) for title, starts_at in session.execute(
        sa.select(Meeting.title, Occurrence.starts_at).join(Meeting, Meeting.id == Occurrence.meeting_id)
        .where(held, on).order_by(Occurrence.starts_at, Occurrence.id).limit(20))]
