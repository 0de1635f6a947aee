"""Availability: what a proposed meeting finds free or taken, and the next slots in which all of it is free.

The search loads once everything that can stand in the way over the whole horizon (the rooms' bookings,
the bridges' ports, the links' loads, maintenance windows, each with the meeting that holds it) and tests
every candidate slot in memory with the same rules as app.meetings.booking. Only the slots that pass are
then confirmed by booking.plan_occurrence, the very check a booking runs, so a suggested slot is one the
booking would accept (unless someone books it meanwhile).

Working hours (settings WORKDAY_START, WORKDAY_END, WORKDAYS): a suggested slot's meeting, from its start
to its end, lies within working hours on a working day. Its setup buffer may begin before the working day
(the technicians' test call an hour before an early meeting is common practice), but it must be free like
the meeting itself, since it holds the room, the port and the bandwidth. Candidate starts are the working
day's start and every step (30 minutes) after it, at or after the proposed start (and never in the past),
up to 14 days after it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.errors import Invalid, NotFound
from app.meetings import booking
from app.meetings.booking import Clash, Window
from app.meetings.models import HOLDING, LinkReservation, Meeting, Occurrence, Participation
from app.meetings.service import BookingRequest, check_horizon, resolve_sites
from app.sites.models import Bridge, Endpoint, Link, MaintenanceWindow, Site, Status

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 14
STEP = dt.timedelta(minutes=30)
SUGGESTIONS = 3
# Slots that pass the in-memory test but that plan_occurrence refuses (a booking made meanwhile) are skipped;
# this bounds how many are confirmed before the search gives up.
MAX_CONFIRMATIONS = 25
# Why no slot could be suggested: the codes are for programs, the messages (translated when shown) for people.
NOTES = {
    "no_path": _l("Some sites cannot reach the host site; no time can be suggested until they can."),
    "retired_site": _l("A retired site cannot take part at any time."),
    "no_bridge": _l("There is no bridge to hold the meeting."),
    "outside_hours": _l("The meeting is longer than the working day; no slot within working hours can hold it."),
    "none_free": _l("No slot is free within the search period."),
}


@dataclass(frozen=True)
class WorkingHours:
    start: dt.time
    end: dt.time
    days: frozenset[int]  # Monday is 0
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, config: Mapping[str, Any]) -> WorkingHours:
        """Read WORKDAY_START, WORKDAY_END ("07:30"), WORKDAYS ("mon,tue,…") and TIMEZONE."""
        try:
            start, end = (dt.time.fromisoformat(str(config[k]).strip()) for k in ("WORKDAY_START", "WORKDAY_END"))
        except ValueError as exc:
            raise Invalid(_("Working hours must be given as HH:MM: %(error)s.", error=exc)) from exc
        names = [d.strip().lower()[:3] for d in str(config["WORKDAYS"]).split(",") if d.strip()]
        unknown = [d for d in names if d not in WEEKDAYS]
        if unknown or not names:
            raise Invalid(_("WORKDAYS must list days among %(days)s; got %(value)s.", days=", ".join(WEEKDAYS),
                            value=repr(config["WORKDAYS"])))
        if end <= start:
            raise Invalid(_("WORKDAY_END must be after WORKDAY_START."))
        return cls(start, end, frozenset(WEEKDAYS.index(d) for d in names), ZoneInfo(config["TIMEZONE"]))


# ---------------------------------------------------------------- what the answer holds

@dataclass
class Holder:
    """Something that stands in the way: a meeting holding the resource, a maintenance window, retirement."""

    kind: str  # meeting / maintenance / retired
    resource: str  # the room, site, link or bridge in the user's words
    meeting_id: int | None = None
    title: str = ""  # the meeting's title, or the maintenance window's reason
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


@dataclass
class SiteState:
    site: Site
    room: Endpoint | None  # the room the meeting would take (the one asked for, or the first free one)
    holders: list[Holder] = field(default_factory=list)
    site_blocked: bool = False  # the site itself is retired or under maintenance

    @property
    def free(self) -> bool:
        return self.room is not None and not self.site_blocked


@dataclass
class BridgeState:
    bridge: Bridge
    used_ports: int  # at the busiest instant of the window
    needed_ports: int
    holders: list[Holder] = field(default_factory=list)
    usable: bool = True  # active and not under maintenance

    @property
    def free_ports(self) -> int:
        return max(0, self.bridge.total_ports - self.used_ports)

    @property
    def fits(self) -> bool:
        return self.usable and self.used_ports + self.needed_ports <= self.bridge.total_ports


@dataclass
class LinkState:
    link: Link
    used_kbps: int  # booked at the busiest instant of the window
    needed_kbps: int  # this meeting's load on the link
    holders: list[Holder] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return (self.used_kbps + self.needed_kbps <= self.link.bandwidth_kbps
                and not any(h.kind == "maintenance" for h in self.holders))


@dataclass
class Slot:
    setup_starts_at: dt.datetime
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass
class Availability:
    window: Window
    host: Site
    sites: list[SiteState]
    bridges: list[BridgeState]
    links: list[LinkState]
    clashes: list[Clash]  # what booking.plan_occurrence refuses at the proposed time
    suggestions: list[Slot]
    searched_from: dt.datetime
    searched_until: dt.datetime
    notes: list[str] = field(default_factory=list)  # codes of NOTES: why no slot is suggested, when none is

    @property
    def free(self) -> bool:
        return not self.clashes

    @property
    def bridge(self) -> BridgeState | None:
        """The bridge the meeting would take at the proposed time."""
        return next((b for b in self.bridges if b.fits), None)


# ---------------------------------------------------------------- the horizon, loaded once

def _overlap(start: sa.ColumnElement[Any], end: sa.ColumnElement[Any], lo: dt.datetime,
             hi: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(start < hi, end > lo)


def _holding(exclude: Sequence[int]) -> sa.ColumnElement[bool]:
    cond = Occurrence.status.in_(HOLDING)
    return sa.and_(cond, Occurrence.id.not_in(list(exclude))) if exclude else cond


def _within(intervals: Iterable[tuple[dt.datetime, dt.datetime, Any]], w: Window) -> Iterator[Any]:
    for s, e, payload in intervals:
        if s < w.ends_at and e > w.setup_starts_at:
            yield payload


class Horizon:
    """Every booking and maintenance window that touches the proposal's resources over a stretch of time."""

    def __init__(self, session: so.Session, *, host: Site, sites: Sequence[Site], paths: dict[int, list[int]],
                 bitrate_kbps: int, rooms: Mapping[int, int], bridge_id: int | None, start: dt.datetime,
                 end: dt.datetime, exclude: Sequence[int] = ()) -> None:
        self.sites = list(sites)
        self.rooms = dict(rooms)
        site_ids = [s.id for s in sites]
        self.need = booking.required_kbps({k: v for k, v in {**paths, host.id: []}.items() if k in site_ids},
                                          bitrate_kbps)
        self.ports = len(sites)

        self.endpoints: dict[int, list[Endpoint]] = defaultdict(list)
        for endpoint in session.scalars(sa.select(Endpoint).where(Endpoint.site_id.in_(site_ids))
                                        .order_by(Endpoint.site_id, Endpoint.room_name, Endpoint.id)):
            self.endpoints[endpoint.site_id].append(endpoint)
        endpoint_ids = [e.id for group in self.endpoints.values() for e in group]

        self.links = {link.id: link for link in session.scalars(sa.select(Link).where(Link.id.in_(self.need)))}
        bridge_stmt = (sa.select(Bridge).where(Bridge.id == bridge_id) if bridge_id is not None else
                       sa.select(Bridge).where(Bridge.status == Status.ACTIVE)
                       .order_by(Bridge.total_ports.desc(), Bridge.id))
        self.bridges = list(session.scalars(bridge_stmt))

        # (start, end, payload) per resource; payloads carry the holder shown to the user.
        self.room_busy: dict[int, list[tuple[dt.datetime, dt.datetime, Holder]]] = defaultdict(list)
        for endpoint_id, s, e, meeting_id, title in session.execute(
                sa.select(Participation.endpoint_id, Occurrence.setup_starts_at, Occurrence.ends_at, Meeting.id,
                          Meeting.title)
                .join(Occurrence, Participation.occurrence_id == Occurrence.id)
                .join(Meeting, Occurrence.meeting_id == Meeting.id)
                .where(Participation.endpoint_id.in_(endpoint_ids), _holding(exclude),
                       _overlap(Occurrence.setup_starts_at, Occurrence.ends_at, start, end))):
            self.room_busy[endpoint_id].append((s, e, Holder("meeting", "", meeting_id, title, s, e)))

        self.link_load: dict[int, list[tuple[dt.datetime, dt.datetime, tuple[int, Holder]]]] = defaultdict(list)
        for link_id, s, e, kbps, meeting_id, title in session.execute(
                sa.select(LinkReservation.link_id, LinkReservation.starts_at, LinkReservation.ends_at,
                          LinkReservation.kbps, Meeting.id, Meeting.title)
                .join(Occurrence, LinkReservation.occurrence_id == Occurrence.id)
                .join(Meeting, Occurrence.meeting_id == Meeting.id)
                .where(LinkReservation.link_id.in_(list(self.need)), _holding(exclude),
                       _overlap(LinkReservation.starts_at, LinkReservation.ends_at, start, end))):
            self.link_load[link_id].append((s, e, (kbps, Holder("meeting", "", meeting_id, title, s, e))))

        self.bridge_load: dict[int, list[tuple[dt.datetime, dt.datetime, tuple[int, Holder]]]] = defaultdict(list)
        if self.bridges:
            for bid, s, e, ports, meeting_id, title in session.execute(
                    sa.select(Occurrence.bridge_id, Occurrence.setup_starts_at, Occurrence.ends_at,
                              sa.func.count(Participation.id), Meeting.id, Meeting.title)
                    .join(Participation, Participation.occurrence_id == Occurrence.id)
                    .join(Meeting, Occurrence.meeting_id == Meeting.id)
                    .where(Occurrence.bridge_id.in_([b.id for b in self.bridges]), _holding(exclude),
                           _overlap(Occurrence.setup_starts_at, Occurrence.ends_at, start, end))
                    .group_by(Occurrence.id, Occurrence.bridge_id, Occurrence.setup_starts_at, Occurrence.ends_at,
                              Meeting.id, Meeting.title)):
                self.bridge_load[bid].append((s, e, (ports, Holder("meeting", "", meeting_id, title, s, e))))

        # Maintenance windows, keyed ("site" | "endpoint" | "bridge" | "link", id).
        self.maintenance: dict[tuple[str, int], list[tuple[dt.datetime, dt.datetime, Holder]]] = defaultdict(list)
        targets = ((MaintenanceWindow.site_id, "site", site_ids), (MaintenanceWindow.endpoint_id, "endpoint",
                                                                   endpoint_ids),
                   (MaintenanceWindow.bridge_id, "bridge", [b.id for b in self.bridges]),
                   (MaintenanceWindow.link_id, "link", list(self.need)))
        conds = [column.in_(ids) for column, _kind, ids in targets if ids]
        if conds:
            for mw in session.scalars(sa.select(MaintenanceWindow).where(
                    sa.or_(*conds), _overlap(MaintenanceWindow.starts_at, MaintenanceWindow.ends_at, start, end))):
                for column, kind, _ids in targets:
                    target_id = getattr(mw, column.key)
                    if target_id is not None:
                        self.maintenance[(kind, target_id)].append(
                            (mw.starts_at, mw.ends_at, Holder("maintenance", "", None, mw.reason, mw.starts_at,
                                                              mw.ends_at)))

    # -------------------------------------------------------- the rules, in memory

    def _under_maintenance(self, kind: str, target_id: int, w: Window) -> list[Holder]:
        return list(_within(self.maintenance.get((kind, target_id), ()), w))

    def room(self, site: Site, w: Window) -> SiteState:
        """The room the site would take, and what stands in the way of the others (as plan_occurrence chooses)."""
        state = SiteState(site, None)
        if site.status is Status.RETIRED:
            state.holders.append(Holder("retired", site.name))
        state.holders.extend(_named(h, site.name) for h in self._under_maintenance("site", site.id, w))
        state.site_blocked = bool(state.holders)
        asked = self.rooms.get(site.id)
        for endpoint in self.endpoints.get(site.id, ()):
            if asked is not None and endpoint.id != asked:
                continue
            label = f"{endpoint.room_name} ({site.name})"
            if endpoint.status is not Status.ACTIVE:
                state.holders.append(Holder("retired", label))
                continue
            blocking = self._under_maintenance("endpoint", endpoint.id, w) or list(
                _within(self.room_busy.get(endpoint.id, ()), w))
            if blocking:
                state.holders.extend(_named(h, label) for h in blocking)
                continue
            state.room = endpoint
            break
        return state

    def link(self, link_id: int, w: Window) -> LinkState:
        loads = [(s, e, payload) for s, e, payload in self.link_load.get(link_id, ())]
        used = booking.peak(((s, e, kbps) for s, e, (kbps, _h) in loads), w.setup_starts_at, w.ends_at)
        link = self.links[link_id]
        holders = [_named(h, link.code) for _kbps, h in _within(loads, w)]
        holders += [_named(h, link.code) for h in self._under_maintenance("link", link_id, w)]
        return LinkState(link, used, self.need[link_id], holders)

    def bridge(self, bridge: Bridge, w: Window) -> BridgeState:
        loads = self.bridge_load.get(bridge.id, [])
        used = booking.peak(((s, e, ports) for s, e, (ports, _h) in loads), w.setup_starts_at, w.ends_at)
        state = BridgeState(bridge, used, self.ports, [_named(h, bridge.name) for _p, h in _within(loads, w)])
        if bridge.status is not Status.ACTIVE:
            state.usable = False
            state.holders.insert(0, Holder("retired", bridge.name))
        maintenance = self._under_maintenance("bridge", bridge.id, w)
        if maintenance:
            state.usable = False
            state.holders[:0] = [_named(h, bridge.name) for h in maintenance]
        return state

    def fits(self, w: Window) -> bool:
        """Would every rule let this window through? Cheapest rules first; stops at the first refusal."""
        for site in self.sites:
            if not self.room(site, w).free:
                return False
        for link_id in self.need:
            if not self.link(link_id, w).fits:
                return False
        return any(self.bridge(b, w).fits for b in self.bridges)


def _named(holder: Holder, resource: str) -> Holder:
    return Holder(holder.kind, resource, holder.meeting_id, holder.title, holder.starts_at, holder.ends_at)


# ---------------------------------------------------------------- the search

def candidate_starts(hours: WorkingHours, duration: dt.timedelta, after: dt.datetime,
                     until: dt.datetime) -> Iterator[dt.datetime]:
    """Starts on the working-hours grid, at or after `after` and before `until`, whose meeting ends in hours."""
    day = after.astimezone(hours.zone).date()
    last_day = until.astimezone(hours.zone).date()
    while day <= last_day:
        if day.weekday() in hours.days:
            t = dt.datetime.combine(day, hours.start, tzinfo=hours.zone)
            closing = dt.datetime.combine(day, hours.end, tzinfo=hours.zone)
            while t + duration <= closing and t < until:
                if t >= after:
                    yield t.astimezone(dt.UTC)
                t += STEP
        day += dt.timedelta(days=1)


def check_availability(session: so.Session, req: BookingRequest, hours: WorkingHours, *,
                       exclude: Sequence[int] = (), count: int = SUGGESTIONS, days: int = SEARCH_DAYS,
                       now: dt.datetime | None = None) -> Availability:
    """What the proposed meeting finds free or taken, and the first `count` slots in which all of it is free."""
    now = now or dt.datetime.now(dt.UTC)
    for name in ("starts_at", "ends_at"):
        if getattr(req, name).tzinfo is None:
            raise Invalid(_("Times must carry a time zone."), {name: [_("no time zone")]})
    if req.ends_at <= req.starts_at:
        raise Invalid(_("The meeting must end after it starts."), {"ends_at": [_("must be after the start")]})
    if not 0 <= req.setup_minutes <= 480:
        raise Invalid(_("The setup buffer is between 0 and 480 minutes."), {"setup_minutes": [_("between 0 and 480")]})
    if req.bitrate_kbps <= 0:
        raise Invalid(_("The bitrate must be positive."), {"bitrate_kbps": [_("must be positive")]})
    check_horizon([req.starts_at], now)  # what could not be booked is not worth a search (nor its overflow)
    host = session.get(Site, req.host_site_id)
    if host is None:
        raise NotFound(_("No site with id %(id)s.", id=req.host_site_id), {"host_site_id": [_("no such site")]})
    sites = resolve_sites(session, host, req.site_ids, req.subtree_ids, req.level_codes)
    setup = dt.timedelta(minutes=req.setup_minutes)
    duration = req.ends_at - req.starts_at
    proposed = Window(req.starts_at - setup, req.starts_at, req.ends_at)
    paths, path_clashes = booking.link_paths(session, host, sites[1:])

    searched_from = max(req.starts_at, now)
    searched_until = searched_from + dt.timedelta(days=days)
    horizon = Horizon(session, host=host, sites=sites, paths=paths, bitrate_kbps=req.bitrate_kbps, rooms=req.rooms,
                      bridge_id=req.bridge_id, start=min(proposed.setup_starts_at, searched_from - setup),
                      end=max(proposed.ends_at, searched_until + duration), exclude=exclude)

    plan = booking.plan_occurrence(session, host=host, sites=sites, w=proposed, bitrate_kbps=req.bitrate_kbps,
                                   rooms=req.rooms, bridge_id=req.bridge_id, exclude=exclude, paths=paths, now=now)
    result = Availability(
        window=proposed, host=host, sites=[horizon.room(s, proposed) for s in sites],
        bridges=[horizon.bridge(b, proposed) for b in horizon.bridges],
        links=[horizon.link(link_id, proposed) for link_id in sorted(horizon.need, key=_path_order(paths))],
        clashes=path_clashes + plan.clashes, suggestions=[], searched_from=searched_from,
        searched_until=searched_until)

    workday = dt.datetime.combine(dt.date.min, hours.end) - dt.datetime.combine(dt.date.min, hours.start)
    if path_clashes:
        result.notes.append("no_path")
    elif any(s.status is Status.RETIRED for s in sites):
        result.notes.append("retired_site")
    elif not horizon.bridges:
        result.notes.append("no_bridge")
    elif duration > workday:
        result.notes.append("outside_hours")
    else:
        result.suggestions = _search(session, horizon, host, sites, paths, req, hours, duration, setup, exclude,
                                     searched_from, searched_until, count, now)
        if not result.suggestions:
            result.notes.append("none_free")
    return result


def _search(session: so.Session, horizon: Horizon, host: Site, sites: list[Site], paths: dict[int, list[int]],
            req: BookingRequest, hours: WorkingHours, duration: dt.timedelta, setup: dt.timedelta,
            exclude: Sequence[int], after: dt.datetime, until: dt.datetime, count: int,
            now: dt.datetime) -> list[Slot]:
    found: list[Slot] = []
    confirmations = 0
    for start in candidate_starts(hours, duration, after, until):
        w = Window(start - setup, start, start + duration)
        if not horizon.fits(w):
            continue
        confirmations += 1
        plan = booking.plan_occurrence(session, host=host, sites=sites, w=w, bitrate_kbps=req.bitrate_kbps,
                                       rooms=req.rooms, bridge_id=req.bridge_id, exclude=exclude, paths=paths,
                                       now=now)
        if not plan.clashes:
            found.append(Slot(w.setup_starts_at, w.starts_at, w.ends_at))
            if len(found) >= count:
                break
        if confirmations >= MAX_CONFIRMATIONS:
            break
    return found


def _path_order(paths: dict[int, list[int]]) -> Any:
    """Links in the order of the tree: nearest the host first, as the paths list them from the site up."""
    rank: dict[int, int] = {}
    for path in paths.values():
        for depth, link_id in enumerate(reversed(path)):
            rank[link_id] = min(rank.get(link_id, depth), depth)
    return lambda link_id: (rank.get(link_id, 0), link_id)
