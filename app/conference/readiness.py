"""Conference room: readiness by itself, the T-60 test session of every site of a meeting.

At the start of an occurrence's setup time (the meeting's own, 60 minutes by default) VCOps checks every site
without anyone launching anything: the room system answers and is registered, its clock is synchronised, every
link of its path to the host site is up within the alert thresholds (the probes' latest measurements, no older
than two steps), and a short test call from the bridge reaches it with clean media. Each site is ready, not
ready (the reason and the action that fixes it, in a technician's words) or unknown (nothing recent to judge
by: never counted as ready). Sites not ready are checked again 15 minutes before the start. The site's contacts
and the technicians on duty are mailed once per occurrence and change.

The work runs on the queue ("readiness.check"): the database is read and written in the worker's one session,
and only the talking to devices and the bridge runs in a bounded pool of threads, which never touch a session
(each gets what it needs, pins included, read beforehand).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from app.auth.models import Role, User
from app.calendar import mail
from app.config import local_zone
from app.db import Base, commit_scope, stored_enum, utcnow
from app.devices import hostkeys
from app.devices.bridges import service as bridges
from app.devices.bridges.base import (
    BridgeCertificateChanged,
    BridgeCertificatePending,
    BridgeClient,
    BridgeError,
    BridgeTarget,
    ConferenceSpec,
    Direction,
    ParticipantState,
    PresentedCertificate,
)
from app.devices.certificates import pinned_certificate
from app.devices.profile import DeviceError, DeviceProfile, PinnedFingerprint
from app.devices.service import open_device
from app.meetings.booking import link_paths
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus
from app.meetings.queries import in_scope as meetings_in_scope
from app.monitoring.board import Problem, Thresholds
from app.monitoring.models import Incident, IncidentStatus, LinkState
from app.queue import outbox
from app.sites.models import Endpoint, EndpointKind, Link, Site, Status
from app.sites.scope import Scope

log = logging.getLogger(__name__)

T15 = dt.timedelta(minutes=15)
FRESH_STEPS = 2  # a measurement older than two probe steps says nothing about now
TEST_CALL_SECONDS = 4.0  # media measured for this long once the leg is connected
CONNECT_SECONDS = 20.0  # the leg must connect within this
POOL_SIZE = 8  # sites checked at once


class Round(enum.StrEnum):
    SETUP = "setup"  # at the start of the setup time (T-60 by default)
    T15 = "t15"  # 15 minutes before the start, for the sites not ready


class Readiness(enum.StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    UNKNOWN = "unknown"  # nothing recent to judge by: never counted as ready


class ReadinessCheck(Base):
    """One round of checks of one site of one occurrence: its verdict, each check's result, and what was mailed."""

    __tablename__ = "readiness_checks"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    occurrence_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("occurrences.id", ondelete="CASCADE"),
                                                     index=True)
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"))
    endpoint_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="SET NULL"))
    round: so.Mapped[Round] = so.mapped_column(stored_enum(Round, "readiness_round"))
    status: so.Mapped[Readiness] = so.mapped_column(stored_enum(Readiness, "readiness_status"))
    # [{"name", "ok" (true/false/null: unknown), "reason", "action", "link_id", "incident_id", "endpoint_id"}]
    checks: so.Mapped[list[dict[str, Any]]] = so.mapped_column(sa.JSON, default=list)
    reason: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    action: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    checked_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    mailed_at: so.Mapped[dt.datetime | None]
    mailed_digest: so.Mapped[str] = so.mapped_column(sa.String(64), default="")  # what was mailed: its reasons

    site: so.Mapped[Site] = so.relationship()
    endpoint: so.Mapped[Endpoint | None] = so.relationship()

    __table_args__ = (sa.UniqueConstraint("occurrence_id", "site_id", "round", name="uq_readiness_checks_round"),)


@dataclass
class Result:
    """One check: ok True (passed), False (failed: reason and action), None (unknown: nothing to judge by)."""

    name: str
    ok: bool | None
    reason: str = ""
    action: str = ""
    link_id: int | None = None
    incident_id: int | None = None
    endpoint_id: int | None = None

    def as_row(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason, "action": self.action,
                "link_id": self.link_id, "incident_id": self.incident_id, "endpoint_id": self.endpoint_id}


PROVISION = "provision_endpoint"


def _provision_action() -> str:
    return _("Launch %(playbook)s for this endpoint.", playbook=PROVISION)


# ---------------------------------------------------------------- the checks, each (ok, reason, action)

def check_registration(status: dict[str, Any]) -> tuple[bool, str, str]:
    word = str(status.get("sip_registration") or "")
    if word == "Registered":
        return True, "", ""
    said = str(status.get("sip_reason") or word or "?")
    return (False, _("The endpoint is not registered to the SIP server (%(reason)s).", reason=said),
            _provision_action())


def check_clock(status: dict[str, Any]) -> tuple[bool, str, str]:
    word = str(status.get("ntp_status") or "")
    if word == "Synced":
        return True, "", ""
    return (False, _("The endpoint's clock is not synchronised (NTP: %(state)s).", state=word or "?"),
            _provision_action())


def check_link(link: Link, state: LinkState | None, now: dt.datetime, thresholds: Thresholds,
               incident: Incident | None) -> tuple[bool | None, str, str]:
    fresh_after = now - dt.timedelta(seconds=thresholds.step_seconds * FRESH_STEPS)
    if state is None or state.measured_at < fresh_after:
        return (None, _("No recent measurement of link %(link)s.", link=link.code),
                _("Check that the probe agent is running."))
    see = (_("See incident #%(id)s.", id=incident.id) if incident is not None
           else _("Call the provider %(provider)s.", provider=link.provider or "?"))
    if not state.up:
        return False, _("Link %(link)s is down.", link=link.code), see
    loss = state.lost / state.sent if state.sent else 0.0
    if loss > thresholds.loss_ratio:
        return (False, _("Packet loss %(value)s%% on %(link)s (alert above %(limit)s%%).",
                         value=round(loss * 100, 1), link=link.code, limit=round(thresholds.loss_ratio * 100, 1)),
                see)
    if state.rtt_median is not None and state.rtt_median > thresholds.rtt_seconds:
        return (False, _("Round trip %(value)s ms on %(link)s (alert above %(limit)s ms).",
                         value=round(state.rtt_median * 1000), link=link.code,
                         limit=round(thresholds.rtt_seconds * 1000)), see)
    if state.jitter is not None and state.jitter > thresholds.jitter_seconds:
        return (False, _("Jitter %(value)s ms on %(link)s (alert above %(limit)s ms).",
                         value=round(state.jitter * 1000), link=link.code,
                         limit=round(thresholds.jitter_seconds * 1000)), see)
    return True, "", ""


def check_call_media(loss_percent: float | None, jitter_ms: float | None,
                     thresholds: Thresholds) -> tuple[bool, str, str]:
    if loss_percent is not None and loss_percent > thresholds.loss_ratio * 100:
        return (False, _("The test call lost %(value)s%% of its media.", value=round(loss_percent, 1)),
                _("Check the site's network and its path to the host site."))
    if jitter_ms is not None and jitter_ms > thresholds.jitter_seconds * 1000:
        return (False, _("The test call's jitter was %(value)s ms.", value=round(jitter_ms)),
                _("Check the site's network and its path to the host site."))
    return True, "", ""


# ---------------------------------------------------------------- talking to the devices (in the pool)

class _PinnedCertificate:
    """The bridge's certificate policy inside the pool: the pin read beforehand, no session."""

    def __init__(self, fingerprint: str | None) -> None:
        self.fingerprint = fingerprint

    def check(self, target: BridgeTarget, presented: PresentedCertificate) -> str:
        if self.fingerprint is None:
            raise BridgeCertificatePending(target.name, presented.fingerprint)
        if presented.fingerprint != self.fingerprint:
            raise BridgeCertificateChanged(target.name, self.fingerprint, presented.fingerprint)
        return presented.fingerprint


@dataclass
class _SitePlan:
    """What a pool thread needs for one site, read from the database beforehand."""

    site_id: int
    endpoint_id: int | None
    done: list[Result] = field(default_factory=list)  # the checks answered from the database
    device: DeviceProfile | None = None
    sip_address: str = ""
    bridge: BridgeClient | None = None


def _endpoint_checks(plan: _SitePlan) -> list[Result]:
    if plan.device is None:
        return []
    try:
        with plan.device as device:
            status = device.status()
    except DeviceError as exc:
        return [Result("endpoint", False, _("The endpoint does not answer: %(error)s", error=exc.message),
                       _("Check that the endpoint is powered on and connected, then its management address."),
                       endpoint_id=plan.endpoint_id)]
    results = [Result("endpoint", True, endpoint_id=plan.endpoint_id)]
    for name, check in (("registration", check_registration), ("clock", check_clock)):
        ok, reason, action = check(status)
        results.append(Result(name, ok, reason, action, endpoint_id=plan.endpoint_id))
    return results


def _test_call(plan: _SitePlan, thresholds: Thresholds) -> Result:
    """A temporary conference on the bridge, the endpoint dialled, a few seconds of media measured, then ended
    and deleted whatever happened."""
    assert plan.bridge is not None
    number = f"9{uuid.uuid4().int % 10**8:08d}"
    try:
        with plan.bridge as bridge:
            conference = bridge.create_conference(ConferenceSpec(name=f"VCOps test {number}", number=number))
            try:
                leg = bridge.dial_out(conference.id, plan.sip_address, name="VCOps test")
                deadline = time.monotonic() + CONNECT_SECONDS
                state = leg
                while time.monotonic() < deadline:
                    state = next((p for p in bridge.participants(conference.id, with_media=False) if p.id == leg.id),
                                 state)
                    if state.state in (ParticipantState.CONNECTED, ParticipantState.FAILED,
                                       ParticipantState.LEFT):
                        break
                    time.sleep(0.5)
                if state.state is not ParticipantState.CONNECTED:
                    return Result("test_call", False, _("The test call did not connect: %(reason)s",
                                                        reason=state.reason or state.state.value),
                                  _("Check the endpoint's SIP settings and that it accepts calls."),
                                  endpoint_id=plan.endpoint_id)
                time.sleep(TEST_CALL_SECONDS)
                leg_now = next((p for p in bridge.participants(conference.id) if p.id == leg.id), state)
                incoming = [m for m in leg_now.media if m.direction is Direction.IN] or list(leg_now.media)
                losses = [m.loss_percent for m in incoming if m.loss_percent is not None]
                jitters = [m.jitter_ms for m in incoming if m.jitter_ms is not None]
                ok, reason, action = check_call_media(max(losses, default=None), max(jitters, default=None),
                                                      thresholds)
                return Result("test_call", ok, reason, action, endpoint_id=plan.endpoint_id)
            finally:
                try:
                    bridge.end_conference(conference.id)
                except BridgeError:
                    pass  # nobody left in it: deleting it below is what matters
                bridge.delete_conference(conference.id)
    except BridgeError as exc:
        return Result("test_call", False, _("The test call could not be made: %(error)s", error=exc.message),
                      _("Check the bridge on the bridges page."), endpoint_id=plan.endpoint_id)


def _talk(plan: _SitePlan, thresholds: Thresholds) -> list[Result]:
    results = _endpoint_checks(plan)
    if plan.bridge is not None and all(r.ok for r in results if r.name == "endpoint"):
        results.append(_test_call(plan, thresholds))
    return results


# ---------------------------------------------------------------- one round

def room_of(session: so.Session, site_id: int, endpoint_id: int | None) -> Endpoint | None:
    """The room the site joins from: the one booked, else its first active room system."""
    if endpoint_id is not None:
        return session.get(Endpoint, endpoint_id)
    return session.scalar(sa.select(Endpoint).where(
        Endpoint.site_id == site_id, Endpoint.status == Status.ACTIVE,
        Endpoint.kind == EndpointKind.ROOM_SYSTEM).order_by(Endpoint.id).limit(1))


def _plan_site(session: so.Session, site: Site, endpoint: Endpoint | None, path: list[int] | None,
               now: dt.datetime, thresholds: Thresholds, bridge_row: Any) -> _SitePlan:
    plan = _SitePlan(site_id=site.id, endpoint_id=endpoint.id if endpoint is not None else None)
    if path is None:
        plan.done.append(Result("path", False, _("%(site)s has no path to the host site.", site=site.name),
                                _("Check the site's links in the inventory.")))
    else:
        for link_id in path:
            link = session.get(Link, link_id)
            assert link is not None
            incident = session.scalar(sa.select(Incident).where(
                Incident.link_code == link.code, Incident.status == IncidentStatus.FIRING)
                .order_by(Incident.starts_at.desc()).limit(1))
            ok, reason, action = check_link(link, session.get(LinkState, link_id), now, thresholds, incident)
            plan.done.append(Result("link", ok, reason, action, link_id=link_id,
                                    incident_id=incident.id if incident is not None and ok is not True else None))
    if endpoint is None:
        plan.done.append(Result("endpoint", False, _("%(site)s has no room system in the inventory.", site=site.name),
                                _("Add the site's endpoint in the inventory.")))
        return plan
    key = hostkeys.pinned_key(session, endpoint.mgmt_address, endpoint.mgmt_port)
    if key is None:
        plan.done.append(Result("endpoint", False, _("The endpoint's host key has not been accepted."),
                                _("Accept its host key on the host keys page."), endpoint_id=endpoint.id))
        return plan
    try:
        plan.device = open_device(session, endpoint, host_keys=PinnedFingerprint(key.key_type, key.fingerprint))
    except DeviceError as exc:
        plan.done.append(Result("endpoint", False, exc.message, _provision_action(), endpoint_id=endpoint.id))
        return plan
    except Exception as exc:  # Invalid: not manageable (retired, no address), with its reason
        plan.done.append(Result("endpoint", False, str(getattr(exc, "message", exc)),
                                _("Complete the endpoint in the inventory."), endpoint_id=endpoint.id))
        return plan
    if bridge_row is not None and endpoint.sip_uri:
        pin = pinned_certificate(session, *_address_port(bridge_row))
        plan.sip_address = endpoint.sip_uri
        plan.bridge = bridges.open_bridge(session, bridge_row,
                                          policy=_PinnedCertificate(pin.fingerprint if pin is not None else None))
    return plan


def _address_port(bridge_row: Any) -> tuple[str, int]:
    target = bridges.target_of(bridge_row)
    return target.address, target.port


def verdict(results: list[Result]) -> tuple[Readiness, str, str]:
    """Not ready if any check failed, unknown if any could not be judged, else ready; the first failure's words."""
    failed = [r for r in results if r.ok is False]
    if failed:
        return Readiness.NOT_READY, " ".join(r.reason for r in failed), " ".join(dict.fromkeys(
            r.action for r in failed if r.action))
    unknown = [r for r in results if r.ok is None]
    if unknown or not results:
        return Readiness.UNKNOWN, " ".join(r.reason for r in unknown), " ".join(dict.fromkeys(
            r.action for r in unknown if r.action))
    return Readiness.READY, "", ""


def check_occurrence(occurrence_id: int, round: str = Round.SETUP.value) -> None:
    """Outbox handler "readiness.check": one round of checks of an occurrence's sites (at T-15 only those not
    ready at the setup round), recorded, then the mail of the sites not ready."""
    which = Round(round)
    config = current_app.config
    thresholds = Thresholds.from_config(config)
    now = utcnow()
    with commit_scope() as session:
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None or occurrence.status not in (OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS):
            return
        done = {c.site_id for c in session.scalars(sa.select(ReadinessCheck).where(
            ReadinessCheck.occurrence_id == occurrence_id, ReadinessCheck.round == which))}
        participations = sorted(occurrence.participations, key=lambda p: p.id)
        if which is Round.T15:
            ready = {c.site_id for c in latest_checks(session, [occurrence_id]).values()
                     if c.status is Readiness.READY}
            participations = [p for p in participations if p.site_id not in ready]
        participations = [p for p in participations if p.site_id not in done]
        if not participations:
            return
        host = occurrence.meeting.host_site
        paths, _clashes = link_paths(session, host, [p.site for p in participations])
        bridge_row = occurrence.bridge
        with force_locale(config["DEFAULT_LANGUAGE"]):
            plans = [_plan_site(session, p.site, room_of(session, p.site_id, p.endpoint_id),
                                paths.get(p.site_id), now, thresholds, bridge_row) for p in participations]
    # No transaction is open while the devices and the bridge answer.
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def talk(plan: _SitePlan) -> list[Result]:
        with app.app_context(), force_locale(config["DEFAULT_LANGUAGE"]):
            return _talk(plan, thresholds)

    with ThreadPoolExecutor(max_workers=min(POOL_SIZE, len(plans))) as pool:
        talked = list(pool.map(talk, plans))
    with commit_scope() as session:
        for plan, results in zip(plans, talked, strict=True):
            every = plan.done + results
            status, reason, action = verdict(every)
            session.add(ReadinessCheck(occurrence_id=occurrence_id, site_id=plan.site_id,
                                       endpoint_id=plan.endpoint_id, round=which, status=status,
                                       checks=[r.as_row() for r in every], reason=reason, action=action,
                                       checked_at=utcnow()))
        session.flush()
        outbox.enqueue(session, "readiness.mail", occurrence_id=occurrence_id)


# ---------------------------------------------------------------- when: the periodic start of the rounds

def start_due_checks(session: so.Session, now: dt.datetime | None = None) -> int:
    """Periodic: queue the setup round of every occurrence whose setup has started (and not its start yet), and
    the T-15 round of those within 15 minutes of their start; each round once. Returns how many were queued."""
    now = now or utcnow()
    live = (OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS)
    rounds = {tuple(r) for r in session.execute(sa.select(ReadinessCheck.occurrence_id, ReadinessCheck.round).distinct()
                                 .join(Occurrence, Occurrence.id == ReadinessCheck.occurrence_id)
                                 .where(Occurrence.ends_at > now))}
    queued = 0
    for occurrence_id, starts_at in session.execute(sa.select(Occurrence.id, Occurrence.starts_at).where(
            Occurrence.status.in_(live), Occurrence.setup_starts_at <= now, Occurrence.starts_at > now)):
        which = Round.T15 if starts_at - now <= T15 else Round.SETUP
        if which is Round.T15 and (occurrence_id, Round.SETUP) not in rounds:
            which = Round.SETUP  # booked late: the first round is the setup round, the T-15 one comes next minute
        if (occurrence_id, which) in rounds or _queued(session, occurrence_id, which, now):
            continue
        outbox.enqueue(session, "readiness.check", occurrence_id=occurrence_id, round=which.value)
        queued += 1
    return queued


def _queued(session: so.Session, occurrence_id: int, which: Round, now: dt.datetime) -> bool:
    """Asked for already, done or not (a T-15 round with every site ready records nothing, and must not be asked
    for again every minute): the messages of the last day are few."""
    from app.queue.models import OutboxMessage

    asked = session.scalars(sa.select(OutboxMessage.payload).where(
        OutboxMessage.task == "readiness.check", OutboxMessage.created_at > now - dt.timedelta(days=1)))
    return any(p.get("occurrence_id") == occurrence_id and p.get("round") == which.value for p in asked)


# ---------------------------------------------------------------- what is shown

def latest_checks(session: so.Session, occurrence_ids: list[int]) -> dict[tuple[int, int], ReadinessCheck]:
    """(occurrence id, site id) -> its latest check."""
    if not occurrence_ids:
        return {}
    found: dict[tuple[int, int], ReadinessCheck] = {}
    for row in session.scalars(sa.select(ReadinessCheck).where(ReadinessCheck.occurrence_id.in_(occurrence_ids))
                               .order_by(ReadinessCheck.checked_at, ReadinessCheck.id)):
        found[(row.occurrence_id, row.site_id)] = row
    return found


def not_ready_sites(session: so.Session, occurrence_ids: list[int]) -> dict[tuple[int, int], str]:
    """(occurrence id, site id) -> the reason, for the sites whose latest check is not ready (for at-risk)."""
    return {key: row.reason for key, row in latest_checks(session, occurrence_ids).items()
            if row.status is Readiness.NOT_READY}


def risks_for(session: so.Session, occurrence_ids: list[int]) -> dict[tuple[int, int | None], list[Problem]]:
    """For meetings at risk (app.monitoring.at_risk, through the factory): the sites whose latest check is not
    ready, and (site None) the meetings whose conference is not ready on its bridge."""
    from app.conference.models import Conference, ConferenceState, Desired

    found: dict[tuple[int, int | None], list[Problem]] = {}
    for key, reason in not_ready_sites(session, occurrence_ids).items():
        found[key] = [Problem("not_ready", _("Not ready at its test session: %(reason)s", reason=reason))]
    if occurrence_ids:
        rows = session.execute(sa.select(Occurrence.id, Conference.state, Conference.last_error)
                               .join(Conference, Conference.meeting_id == Occurrence.meeting_id)
                               .where(Occurrence.id.in_(occurrence_ids), Conference.desired == Desired.PRESENT,
                                      Conference.state != ConferenceState.READY))
        for occurrence_id, state, error in rows:
            found.setdefault((occurrence_id, None), []).append(Problem("conference_not_ready", _(
                "The conference on the bridge is not ready (%(state)s). %(error)s", state=state.value,
                error=error).strip()))
    return found


@dataclass
class SiteRow:
    """A site's go / no-go as the pages show it."""

    site_id: int
    code: str
    name: str
    status: str  # ready / not_ready / unknown / pending (not checked yet)
    reason: str = ""
    action: str = ""
    checked_at: dt.datetime | None = None
    endpoint_id: int | None = None  # to launch provision_endpoint for it
    incident_ids: list[int] = field(default_factory=list)
    link_ids: list[int] = field(default_factory=list)


@dataclass
class OccurrenceRow:
    occurrence_id: int
    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    sites: list[SiteRow]


def site_rows(session: so.Session, occurrences: list[Occurrence], site_id: int | None = None) -> list[OccurrenceRow]:
    """Each occurrence with its sites' latest verdict (only `site_id`'s row when given: site staff)."""
    checks = latest_checks(session, [o.id for o in occurrences])
    found = []
    for o in occurrences:
        rows = []
        for p in sorted(o.participations, key=lambda p: p.id):
            if site_id is not None and p.site_id != site_id:
                continue
            check = checks.get((o.id, p.site_id))
            row = SiteRow(site_id=p.site_id, code=p.site.code, name=p.site.name,
                          status=check.status.value if check is not None else "pending")
            if check is not None:
                row.reason, row.action, row.checked_at = check.reason, check.action, check.checked_at
                failed = [c for c in check.checks if c.get("ok") is not True]
                row.incident_ids = sorted({c["incident_id"] for c in failed if c.get("incident_id")})
                row.link_ids = sorted({c["link_id"] for c in failed if c.get("link_id")})
                if any(PROVISION in (c.get("action") or "") for c in failed):
                    row.endpoint_id = check.endpoint_id
            rows.append(row)
        if rows:
            found.append(OccurrenceRow(o.id, o.meeting_id, o.meeting.title, o.starts_at, o.ends_at, rows))
    return found


def today(session: so.Session, site_id: int | None = None, now: dt.datetime | None = None,
          scope: Scope | None = None) -> list[OccurrenceRow]:
    """Every occurrence of today in local time (not drafts nor cancelled), soonest first, with its sites (of the
    meetings the scope sees)."""
    now = now or utcnow()
    zone = local_zone()
    day = now.astimezone(zone).date()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
    occurrences = list(session.scalars(sa.select(Occurrence).join(Meeting, Meeting.id == Occurrence.meeting_id).where(
        meetings_in_scope(scope) if scope is not None else sa.true(),
        Occurrence.starts_at >= start, Occurrence.starts_at < start + dt.timedelta(days=1),
        Occurrence.status.in_((OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS,
                               OccurrenceStatus.COMPLETED)))
        .options(so.selectinload(Occurrence.participations)).order_by(Occurrence.starts_at, Occurrence.id)))
    return site_rows(session, occurrences, site_id)


def connect() -> None:
    """Put each coming occurrence's go / no-go table on the meeting's page (app.meetings.signals.meeting_page)."""
    from app.meetings import signals

    signals.meeting_page.connect(_on_meeting_page)


def _on_meeting_page(meeting: Any, *, session: so.Session, viewer: User, extras: Any, **_: Any) -> None:
    from flask import render_template
    from markupsafe import Markup

    if not hasattr(extras, "sections"):
        return
    now = utcnow()
    occurrences = [o for o in meeting.occurrences if o.ends_at > now - dt.timedelta(hours=12)
                   and o.status in (OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS)][:5]
    if not occurrences:
        return
    site_id = viewer.site_id if viewer.role is Role.SITE_STAFF else None
    rows = site_rows(session, occurrences, site_id)
    if rows:
        # render_template escaped every value already: the HTML is the template's own.
        extras.sections.append(Markup(render_template("conference/readiness.html", occurrences=rows)))  # noqa: S704


# ---------------------------------------------------------------- the mail, once per occurrence and change

def _digest(row: ReadinessCheck) -> str:
    return hashlib.sha256(json.dumps([row.status.value, row.reason], ensure_ascii=False).encode()).hexdigest()


def duty_addresses(session: so.Session) -> list[str]:
    """The technicians on duty: every active user with the technician role (the duty roster lives nowhere else)."""
    return list(session.scalars(sa.select(User.email).where(User.role == Role.TECHNICIAN, User.active.is_(True))
                                .order_by(User.email)))


def mail_not_ready(occurrence_id: int) -> None:
    """Outbox handler "readiness.mail": mail each site not ready whose reason was not mailed for this occurrence
    yet, to the site's contacts and the technicians on duty; what was mailed is stored so a change mails again."""
    config = current_app.config
    with commit_scope() as session, force_locale(config["DEFAULT_LANGUAGE"]):
        occurrence = session.get(Occurrence, occurrence_id)
        if occurrence is None:
            return
        mailed = {r.site_id: r.mailed_digest for r in session.scalars(sa.select(ReadinessCheck).where(
            ReadinessCheck.occurrence_id == occurrence_id, ReadinessCheck.mailed_at.is_not(None))
            .order_by(ReadinessCheck.mailed_at))}
        todo = [row for row in latest_checks(session, [occurrence_id]).values()
                if row.status is Readiness.NOT_READY and row.mailed_at is None
                and mailed.get(row.site_id) != _digest(row)]
        duty = duty_addresses(session)
        messages = []
        for row in todo:
            to = [c.email for c in row.site.contacts if c.email] + duty
            if to:
                messages.append((row.id, _compose(config, occurrence, row, to)))
    if not messages:
        return
    with mail.Mailer(config) as mailer:
        for row_id, message in messages:
            mailer.send(message)  # SendFailed: the outbox retries; rows mailed before stay mailed
            with commit_scope() as session:
                row = session.get(ReadinessCheck, row_id)
                if row is not None:
                    row.mailed_at, row.mailed_digest = utcnow(), _digest(row)


def _compose(config: Any, occurrence: Occurrence, row: ReadinessCheck, to: list[str]) -> EmailMessage:
    starts = occurrence.starts_at.astimezone(local_zone()).strftime("%H:%M %d/%m/%Y")
    subject = _("Site %(site)s is not ready for %(meeting)s at %(time)s", site=row.site.name,
                meeting=occurrence.meeting.title, time=starts)
    text = "\n\n".join([subject, _("Reason: %(reason)s", reason=row.reason),
                        _("What to do: %(action)s", action=row.action)])
    message = EmailMessage()
    message["From"] = formataddr((config["MAIL_FROM_NAME"], config["MAIL_FROM"]))
    message["To"] = ", ".join(dict.fromkeys(to))
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=str(config["MAIL_FROM"]).rpartition("@")[2] or None)
    message.set_content(text, charset="utf-8")
    return message
