"""Writing what a probe agent would write (latest states and history rows), for the board's tests: the board
reads the database, whichever agent filled it, so these tests fill it themselves."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import utcnow
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus, Participation
from app.monitoring.models import EndpointState, LinkSample, LinkState
from app.monitoring.topology import topology
from app.sites.models import Endpoint, EndpointKind, Link, Site, Status


def uplink_code(session: so.Session, site_code: str) -> str:
    return topology(session).uplink_of_site[site_code]


def set_link(session: so.Session, code: str, *, up: bool = True, rtt: float | None = 0.020, lost: int = 0,
             sent: int = 20, jitter: float | None = 0.002, age: dt.timedelta = dt.timedelta(0),
             now: dt.datetime | None = None) -> LinkState:
    """The latest step of a link, as the probe agent replaces it every step."""
    at = (now or utcnow()) - age
    link_id = session.scalar(sa.select(Link.id).where(Link.code == code))
    assert link_id is not None, code
    state = session.get(LinkState, link_id) or LinkState(link_id=link_id, changed_at=at)
    if state.up is not None and state.up != up:
        state.changed_at = at
    state.up, state.sent, state.lost, state.measured_at, state.agent = up, sent, sent if not up else lost, at, "test"
    state.rtt_median = state.rtt_min = state.rtt_max = rtt if up else None
    state.jitter = jitter if up else None
    session.add(state)
    session.flush()
    return state


def add_samples(session: so.Session, code: str, minutes: int, *, rtt: float = 0.020, down_at: tuple[int, ...] = (),
                now: dt.datetime | None = None) -> None:
    """One sample a minute for the last `minutes`, down at the given minutes ago."""
    now = now or utcnow()
    link_id = session.scalar(sa.select(Link.id).where(Link.code == code))
    for ago in range(minutes, 0, -1):
        up = ago not in down_at
        session.add(LinkSample(link_id=link_id, up=up, sent=20, lost=0 if up else 20,
                               rtt_median=rtt + ago / 10000 if up else None, rtt_min=rtt * 0.9 if up else None,
                               rtt_max=rtt * 1.2 if up else None, jitter=0.002 if up else None,
                               measured_at=now - dt.timedelta(minutes=ago)))
    session.flush()


def set_endpoint(session: so.Session, endpoint_id: int, *, up: bool = True, registered: bool | None = True,
                 in_call: bool | None = False, age: dt.timedelta = dt.timedelta(0),
                 now: dt.datetime | None = None) -> EndpointState:
    at = (now or utcnow()) - age
    state = session.get(EndpointState, endpoint_id) or EndpointState(endpoint_id=endpoint_id, changed_at=at)
    state.up, state.icmp_up, state.registered, state.in_call = up, up, registered if up else None, in_call
    state.measured_at, state.agent = at, "test"
    session.add(state)
    session.flush()
    return state


def rooms_of(session: so.Session, site_code: str) -> list[int]:
    return list(session.scalars(sa.select(Endpoint.id).join(Site).where(
        Site.code == site_code, Endpoint.status == Status.ACTIVE, Endpoint.kind == EndpointKind.ROOM_SYSTEM,
        Endpoint.mgmt_address != "").order_by(Endpoint.id)))


def all_fine(session: so.Session, now: dt.datetime | None = None) -> None:
    """Every active link up with good figures and every probed room reachable and registered, just measured."""
    now = now or utcnow()
    for code in session.scalars(sa.select(Link.code).where(Link.status == Status.ACTIVE)):
        set_link(session, code, now=now)
    for endpoint_id in session.scalars(sa.select(Endpoint.id).where(
            Endpoint.status == Status.ACTIVE, Endpoint.kind == EndpointKind.ROOM_SYSTEM, Endpoint.mgmt_address != "")):
        set_endpoint(session, endpoint_id, now=now)


def site_id(session: so.Session, code: str) -> int:
    return session.scalar(sa.select(Site.id).where(Site.code == code))


def meeting(session: so.Session, title: str, host: str, sites: list[str], *, starts_in: dt.timedelta,
            lasts: dt.timedelta = dt.timedelta(hours=1), status: OccurrenceStatus = OccurrenceStatus.SCHEDULED,
            rooms: dict[str, int] | None = None) -> Occurrence:
    """A meeting with one occurrence and a participation per site (the host's included), as booked."""
    now = utcnow()
    m = Meeting(uid=f"{uuid.uuid4()}@test", title=title, host_site_id=site_id(session, host))
    occurrence = Occurrence(setup_starts_at=now + starts_in - dt.timedelta(minutes=60), starts_at=now + starts_in,
                            ends_at=now + starts_in + lasts, status=status)
    m.occurrences.append(occurrence)
    session.add(m)
    session.flush()
    for code in [host, *sites]:
        session.add(Participation(occurrence_id=occurrence.id, site_id=site_id(session, code),
                                  endpoint_id=(rooms or {}).get(code)))
    session.flush()
    return occurrence
