"""Conference room: keeping each booked meeting's conference on its bridge as the booking says.

`sync(conference_id)` compares one conference with its bridge and does what is missing: create (or adopt a
coSpace already there with its number: a retry after a lost answer), update (name, PIN, participant limit),
delete (cancelled, or its last occurrence ended). It is idempotent and one-at-a-time: a claim (`claimed_until`,
taken by one UPDATE ... WHERE not claimed, so on SQLite and PostgreSQL alike) makes a second, overlapping sync
leave the conference alone, and the bridge is asked for the number before anything is created, so neither
an overlap nor a retry ever makes two conferences. The bridge is talked to between two short transactions (its
certificate check commits on its own, app.devices.certificates), never inside one.

A failure (the bridge unreachable, refusing, its certificate not accepted) leaves the meeting booked: the
conference is FAILED with the technician's reason and retried after CONFERENCE_RETRY_SECONDS by the periodic
`queue_due` (every minute). `reconcile` lists each trusted bridge's conferences: those VCOps does not know are
recorded (UnknownConference) for the technicians and never deleted; the ones VCOps made that are missing are
made again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _

from app.conference.models import Conference, ConferenceAttempt, ConferenceState, Desired, UnknownConference
from app.db import commit_scope, db, utcnow
from app.devices import certificates
from app.devices.bridges import service as bridges
from app.devices.bridges.base import BridgeClient, BridgeError, ConferenceNotFound, ConferenceSpec
from app.devices.bridges.base import Conference as BridgeConference
from app.errors import DomainError
from app.meetings.models import HOLDING, Meeting, Occurrence
from app.queue import outbox
from app.sites.models import Bridge, Status

log = logging.getLogger(__name__)

TASK = "conference.sync"
# How long one sync may hold its conference: a bridge answers within its timeouts (10 s + 30 s per request, a
# few requests); a sync that died lets the next one in after this.
CLAIM = dt.timedelta(minutes=5)


# ---------------------------------------------------------------- what the booking asks for

@dataclass(frozen=True)
class Wanted:
    desired: Desired
    bridge_id: int | None = None
    spec: ConferenceSpec | None = None
    not_before: dt.datetime | None = None  # present, but not to be made before this (CONFERENCE_LEAD_MINUTES)


def _live(session: so.Session, number: str, now: dt.datetime) -> list[Occurrence]:
    """The occurrences still to end that hold their resources, of every meeting dialling this number."""
    return list(session.scalars(
        sa.select(Occurrence).join(Meeting, Occurrence.meeting_id == Meeting.id)
        .where(Meeting.conference_number == number, Occurrence.status.in_(HOLDING), Occurrence.ends_at > now)
        .order_by(Occurrence.starts_at)))


def wanted(session: so.Session, conference: Conference, now: dt.datetime) -> Wanted:
    live = _live(session, conference.number, now)
    if not live:
        return Wanted(Desired.ABSENT, conference.bridge_id)
    following = live[0]
    meeting = following.meeting
    # The room takes as many participants as the largest occurrence has rooms (a site added raises it).
    spec = ConferenceSpec(name=meeting.title[:200], number=conference.number, pin=meeting.pin,
                          max_participants=max(o.ports for o in live) or None)
    lead = int(current_app.config["CONFERENCE_LEAD_MINUTES"])
    not_before = following.setup_starts_at - dt.timedelta(minutes=lead) if lead > 0 else None
    return Wanted(Desired.PRESENT, following.bridge_id, spec, not_before)


def retry_delay(failures: int) -> dt.timedelta:
    """The wait after the n-th failure in a row (CONFERENCE_RETRY_SECONDS; the last figure repeats)."""
    steps = [int(s) for s in str(current_app.config["CONFERENCE_RETRY_SECONDS"]).replace(" ", "").split(",") if s]
    steps = steps or [60]
    return dt.timedelta(seconds=steps[min(max(failures, 1), len(steps)) - 1])


# ---------------------------------------------------------------- the hooks: a booking changed

def conference_for(session: so.Session, meeting: Meeting) -> Conference | None:
    """The meeting's conference row (made on first need); None for a meeting without a conference number."""
    if not meeting.conference_number:
        return None
    conference = session.scalar(sa.select(Conference).where(Conference.number == meeting.conference_number))
    if conference is None:
        conference = Conference(meeting_id=meeting.id, number=meeting.conference_number,
                                state=ConferenceState.PENDING, desired=Desired.PRESENT)
        session.add(conference)
        session.flush()
    return conference


def request_sync(session: so.Session, conference: Conference, now: dt.datetime | None = None) -> None:
    """Queue a sync of the conference after the commit (it is due now: a change does not wait for a backoff)."""
    conference.next_attempt_at = now or utcnow()
    outbox.enqueue(session, TASK, conference_id=conference.id)


def meeting_changed(meeting: Meeting, session: so.Session, **_details: object) -> None:
    """Receiver of app.meetings.signals.sites_to_notify: booked, moved, sites changed, cancelled."""
    conference = conference_for(session, meeting)
    if conference is not None:
        request_sync(session, conference)


def connect() -> None:
    from app.meetings import signals

    signals.sites_to_notify.connect(meeting_changed)
    signals.meeting_page.connect(_on_meeting_page)


def _on_meeting_page(meeting: Meeting, session: so.Session, extras: object, **_details: object) -> None:
    from app.conference.page import add_to_page

    add_to_page(session, meeting, extras)


# ---------------------------------------------------------------- one conference, made as booked

def _claim(session: so.Session, conference_id: int, now: dt.datetime) -> bool:
    result = session.execute(
        sa.update(Conference).where(Conference.id == conference_id,
                                    sa.or_(Conference.claimed_until.is_(None), Conference.claimed_until < now))
        .values(claimed_until=now + CLAIM))
    return bool(result.rowcount)


def _find(mcu: BridgeClient, conference_id: str, number: str) -> BridgeConference | None:
    """The conference on the bridge: by the id VCOps keeps, else by its number (a create whose answer was lost)."""
    if conference_id:
        try:
            return mcu.get_conference(conference_id)
        except ConferenceNotFound:
            pass
    for found in mcu.list_conferences():
        if found.number == number:
            return mcu.get_conference(found.id)
    return None


def _differs(found: BridgeConference, spec: ConferenceSpec) -> bool:
    return (found.name != spec.name or found.pin != spec.pin
            or (spec.max_participants is not None and found.max_participants != spec.max_participants))


def _open(bridge_id: int) -> BridgeClient:
    session = db.session()
    bridge = session.get(Bridge, bridge_id)
    if bridge is None:
        raise BridgeError(_("The bridge of this conference is no longer in the inventory."))
    target = bridges.target_of(bridge)
    if certificates.pinned_certificate(session, target.address, target.port) is None:
        # Unattended work never makes a first contact: a technician accepts the bridge's certificate first, and
        # a bridge nobody set up does not hold the queue up with its timeouts.
        raise BridgeError(_("The certificate of the MCU %(bridge)s has not been accepted yet: a technician must "
                            "fetch and accept it on the certificates page.", bridge=bridge.name))
    return bridges.open_bridge(session, bridge)


def _delete_on(bridge_id: int, conference_id: str, number: str) -> None:
    with _open(bridge_id) as mcu:
        found = _find(mcu, conference_id, number)
        if found is not None:
            try:
                mcu.delete_conference(found.id)
            except ConferenceNotFound:
                pass  # gone meanwhile: what was asked


def _apply(conference_id: str, old_bridge_id: int | None, number: str, want: Wanted) -> tuple[str, str]:
    """Talk to the bridge(s); (what was done, the bridge's id of the conference). Raises BridgeError or
    DomainError with the reason."""
    if want.desired is Desired.ABSENT:
        if old_bridge_id is not None:
            _delete_on(old_bridge_id, conference_id, number)
        return "delete", ""
    assert want.spec is not None
    if want.bridge_id is None:
        raise BridgeError(_("The meeting holds no bridge."))
    if old_bridge_id is not None and old_bridge_id != want.bridge_id:
        _delete_on(old_bridge_id, conference_id, number)  # moved to another bridge: never two rooms with one number
        conference_id = ""
    with _open(want.bridge_id) as mcu:
        found = _find(mcu, conference_id, number)
        if found is None:
            return "create", mcu.create_conference(want.spec).id
        if _differs(found, want.spec):
            return "update", mcu.update_conference(found.id, want.spec).id
        return "check", found.id


def sync(conference_id: int, now: dt.datetime | None = None) -> str:
    """Make the bridge hold what the booking says for this conference, once; returns what was done ("create",
    "update", "check", "delete", "wait" for its lead time, "busy" when another sync holds it, "failed",
    "none" when nothing is to do)."""
    now = now or utcnow()
    with commit_scope() as session:
        conference = session.get(Conference, conference_id)
        if conference is None or not _claim(session, conference_id, now):
            return "busy" if conference is not None else "none"
        session.refresh(conference)
        want = wanted(session, conference, now)
        conference.desired = want.desired
        done = None
        if want.desired is Desired.PRESENT and want.not_before is not None and want.not_before > now \
                and conference.state is not ConferenceState.READY:
            conference.next_attempt_at, done = want.not_before, "wait"
        elif want.desired is Desired.ABSENT and (conference.state is ConferenceState.DELETED
                                                 or conference.bridge_id is None):
            conference.state, conference.next_attempt_at, done = ConferenceState.DELETED, None, "none"
        if done is not None:
            conference.claimed_until = None
            return done
        remote_id, old_bridge_id, number = conference.bridge_conference_id, conference.bridge_id, conference.number
        if want.desired is Desired.PRESENT and conference.bridge_id is None:
            conference.bridge_id = want.bridge_id  # recorded first: a lost answer is then looked for there
            old_bridge_id = None
    error, action = "", "delete" if want.desired is Desired.ABSENT else "create"
    new_id = remote_id
    try:
        action, new_id = _apply(remote_id, old_bridge_id, number, want)
    except (BridgeError, DomainError) as exc:
        db.session.rollback()
        error = exc.message
    with commit_scope() as session:
        conference = session.get(Conference, conference_id)
        if conference is None:
            return "none"
        finished = utcnow()
        conference.attempts += 1
        conference.claimed_until = None
        session.add(ConferenceAttempt(conference_id=conference.id, at=finished, action=action, ok=not error,
                                      error=error, bridge_id=want.bridge_id or old_bridge_id))
        if error:
            conference.failures += 1
            conference.state = ConferenceState.FAILED
            conference.last_error = error
            conference.next_attempt_at = finished + retry_delay(conference.failures)
            log.warning("conference %s (%s) not ready: %s", conference.id, action, error)
            return "failed"
        conference.failures, conference.last_error, conference.next_attempt_at = 0, "", None
        if want.desired is Desired.ABSENT:
            conference.state, conference.bridge_conference_id = ConferenceState.DELETED, ""
        else:
            conference.state, conference.bridge_conference_id = ConferenceState.READY, new_id
            conference.bridge_id = want.bridge_id
            conference.ready_at = conference.ready_at or finished
        return action


def run_sync(conference_id: int) -> None:
    """The outbox handler "conference.sync": a failure is recorded on the conference and retried by its backoff,
    not by the queue (the message is done either way)."""
    sync(conference_id)


# ---------------------------------------------------------------- periodic: retries, ends, reconciliation

def queue_due(session: so.Session, now: dt.datetime | None = None) -> int:
    """Queue a sync for every conference whose retry (or lead time) is due, and for every conference still on
    its bridge whose meetings are all over or cancelled; each is not queued again for CLAIM."""
    now = now or utcnow()
    live = (sa.select(Occurrence.id).join(Meeting, Occurrence.meeting_id == Meeting.id)
            .where(Meeting.conference_number == Conference.number, Occurrence.status.in_(HOLDING),
                   Occurrence.ends_at > now).exists())
    due = list(session.scalars(sa.select(Conference).where(
        Conference.state != ConferenceState.DELETED,
        sa.or_(Conference.next_attempt_at <= now,
               sa.and_(Conference.state == ConferenceState.READY, ~live,
                       sa.or_(Conference.next_attempt_at.is_(None), Conference.next_attempt_at <= now))))
        .order_by(Conference.id).limit(500)))
    for conference in due:
        outbox.enqueue(session, TASK, conference_id=conference.id)
        conference.next_attempt_at = now + CLAIM
    session.flush()
    return len(due)


def _trusted_bridges(session: so.Session) -> list[Bridge]:
    """Active bridges whose certificate a technician accepted: the ones VCOps may talk to unattended."""
    found = []
    for bridge in session.scalars(sa.select(Bridge).where(Bridge.status == Status.ACTIVE,
                                                          Bridge.mgmt_address != "").order_by(Bridge.id)):
        try:
            target = bridges.target_of(bridge)
        except DomainError:
            continue
        if certificates.pinned_certificate(session, target.address, target.port) is not None:
            found.append(bridge)
    return found


def reconcile(now: dt.datetime | None = None) -> dict[str, int]:
    """Compare every trusted bridge with the bookings: record the conferences nobody booked (never deleted) and
    remake the missing ones. Returns counts {"unknown", "missing", "unreachable"}."""
    now = now or utcnow()
    counts = {"unknown": 0, "missing": 0, "unreachable": 0}
    with commit_scope() as session:
        bridge_ids = [b.id for b in _trusted_bridges(session)]
    for bridge_id in bridge_ids:
        try:
            with _open(bridge_id) as mcu:
                on_bridge = mcu.list_conferences()
        except (BridgeError, DomainError) as exc:
            db.session.rollback()
            counts["unreachable"] += 1
            log.warning("reconciliation: bridge %s not read: %s", bridge_id, exc.message)
            continue
        with commit_scope() as session:
            ours = list(session.scalars(sa.select(Conference).where(Conference.bridge_id == bridge_id)))
            known_ids = {c.bridge_conference_id for c in ours if c.bridge_conference_id}
            numbers = {c.number for c in session.scalars(sa.select(Conference).where(
                Conference.state != ConferenceState.DELETED))}
            present_ids = {c.id for c in on_bridge}
            present_numbers = {c.number for c in on_bridge}
            unknown = [c for c in on_bridge if c.id not in known_ids and c.number not in numbers]
            recorded = {u.bridge_conference_id: u for u in session.scalars(
                sa.select(UnknownConference).where(UnknownConference.bridge_id == bridge_id))}
            for found in unknown:
                row = recorded.pop(found.id, None)
                if row is None:
                    session.add(UnknownConference(bridge_id=bridge_id, bridge_conference_id=found.id,
                                                  name=found.name[:300], number=found.number[:100],
                                                  first_seen_at=now, last_seen_at=now))
                else:
                    row.last_seen_at, row.name, row.number = now, found.name[:300], found.number[:100]
            for gone in recorded.values():  # deleted on the bridge, or booked since
                session.delete(gone)
            counts["unknown"] += len(unknown)
            for conference in ours:
                if (conference.state is ConferenceState.READY and conference.desired is Desired.PRESENT
                        and conference.bridge_conference_id not in present_ids
                        and conference.number not in present_numbers):
                    conference.state = ConferenceState.PENDING
                    conference.last_error = _("The conference had disappeared from the bridge; VCOps makes it again.")
                    request_sync(session, conference, now)
                    counts["missing"] += 1
    return counts


def reconcile_periodically() -> None:
    reconcile()


# ---------------------------------------------------------------- what the operators read

def not_ready(session: so.Session, now: dt.datetime | None = None) -> list[Conference]:
    """Conferences a meeting still to end needs and that are not on their bridge as booked, soonest first."""
    now = now or utcnow()
    rows = list(session.scalars(sa.select(Conference).where(
        Conference.desired == Desired.PRESENT,
        Conference.state.in_([ConferenceState.PENDING, ConferenceState.FAILED])).order_by(Conference.id)))
    return [c for c in rows if _live(session, c.number, now)]


def unknown_conferences(session: so.Session) -> list[UnknownConference]:
    return list(session.scalars(sa.select(UnknownConference).order_by(UnknownConference.bridge_id,
                                                                      UnknownConference.number)))
