"""Monitoring room: the incidents, made from Alertmanager's webhook, listed for the operators, acknowledged by one.

Alertmanager (webhook payload version 4) posts each notification of a group with all its alerts, again at
every repeat, and once more when an alert resolves; with several Alertmanagers in a cluster the same
notification can even come twice at once. So an incident is one row per alert and firing period, keyed
(fingerprint, startsAt), and ingesting is an upsert: a notification already seen changes nothing but the
time it was last heard of. A resolved period stays resolved: a firing notification delivered late does not
reopen it (an alert that fires again gets a new startsAt, hence a new row). Plain functions of a session, no
commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import format_datetime
from flask_babel import gettext as _

from app.auth import audit
from app.auth.models import User
from app.db import get_or_raise, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.monitoring.models import Incident, IncidentStatus
from app.sites.models import Site
from app.sites.scope import Scope

NOTE_MAX = 500
INCIDENT_FILTERS = ("open", "resolved", "all")  # the list's status filter


@dataclass
class Ingested:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def _fields(alert: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The incident's columns from one alert of the payload (as app.monitoring.schemas.Alert loads it)."""
    labels, annotations = dict(alert["labels"]), dict(alert.get("annotations") or {})
    resolved = alert["status"] == IncidentStatus.RESOLVED.value
    ends_at = alert.get("ends_at")
    if ends_at is not None and ends_at.year <= 1:
        ends_at = None  # Go's zero time: "not ended"
    return {
        "status": IncidentStatus.RESOLVED if resolved else IncidentStatus.FIRING,
        "ends_at": (ends_at or now) if resolved else None,
        "alertname": labels["alertname"][:100],
        "severity": str(labels.get("severity", ""))[:20],
        "site_code": str(labels.get("site", ""))[:32],
        "link_code": str(labels.get("link", ""))[:64],
        "summary": str(annotations.get("summary") or annotations.get("description") or labels["alertname"])[:500],
        "labels": labels,
        "annotations": annotations,
    }


def _find(session: so.Session, fingerprint: str, starts_at: dt.datetime) -> Incident | None:
    return session.scalar(sa.select(Incident).where(Incident.fingerprint == fingerprint,
                                                    Incident.starts_at == starts_at))


def ingest(session: so.Session, payload: Mapping[str, Any], now: dt.datetime | None = None) -> Ingested:
    """Record the alerts of one webhook notification; safe to call again with the same notification."""
    now = now or utcnow()
    result = Ingested()
    fingerprints = {alert["fingerprint"] for alert in payload["alerts"]}
    known = {(i.fingerprint, i.starts_at): i for i in session.scalars(
        sa.select(Incident).where(Incident.fingerprint.in_(fingerprints)))} if fingerprints else {}
    for alert in payload["alerts"]:
        fingerprint, starts_at = alert["fingerprint"], alert["starts_at"].astimezone(dt.UTC)
        values = _fields(alert, now)
        incident = known.get((fingerprint, starts_at))
        if incident is None:
            try:
                # A savepoint: when another request (a second Alertmanager of a cluster) stored the same alert
                # meanwhile, the unique key refuses this one and it is handled as already seen.
                with session.begin_nested():
                    incident = Incident(fingerprint=fingerprint, starts_at=starts_at, last_notified_at=now,
                                        **values)
                    session.add(incident)
                known[(fingerprint, starts_at)] = incident  # the same alert twice in one payload
                result.created += 1
                continue
            except sa.exc.IntegrityError:
                incident = _find(session, fingerprint, starts_at)
                if incident is None:
                    raise
        incident.last_notified_at = now
        if incident.status is IncidentStatus.RESOLVED:
            result.unchanged += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(incident, k) != v}
        for key, value in changed.items():
            setattr(incident, key, value)
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    session.flush()
    return result


def acknowledge(session: so.Session, incident: Incident, user: User, note: str = "",
                now: dt.datetime | None = None) -> Incident:
    """An operator takes the incident on: who and when are kept with it, and in the audit log."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise Invalid(_("The note is too long: at most %(max)s characters.", max=NOTE_MAX),
                      {"note": [_("at most %(max)s characters", max=NOTE_MAX)]})
    if incident.acknowledged_at is not None:
        who = incident.acknowledged_by.email if incident.acknowledged_by else "?"
        raise Conflict(_("Incident #%(id)s was already acknowledged by %(who)s at %(when)s.", id=incident.id,
                         who=who, when=format_datetime(incident.acknowledged_at, "HH:mm dd/MM/yyyy")),
                       code="already_acknowledged")
    incident.acknowledged_by = session.get(User, user.id)  # the row, not a proxy a caller may hold
    incident.acknowledged_at = now or utcnow()
    incident.ack_note = note
    session.flush()
    # Incidents are not an audited model (every repeated notification would write an entry); an
    # acknowledgement is a person's act, so it is recorded here.
    audit.record(session, "acknowledge", "Incident", str(incident.id),
                 summary=f"{incident.alertname} {incident.site_code or incident.link_code}".strip(),
                 after={"note": note, "acknowledged_at": incident.acknowledged_at.isoformat()})
    return incident


# ---------------------------------------------------------------- reading the incidents

def in_scope(scope: Scope) -> sa.ColumnElement[bool]:
    """Incidents raised for a site of the scope (by its code, as Alertmanager labels them); one naming no site is
    for users without a scope."""
    return Incident.site_code.in_(sa.select(Site.code).where(scope.clause(Site.id)))


def incident_query(status: str = "open", site: str = "", scope: Scope | None = None) -> sa.Select[tuple[Incident]]:
    """Incidents newest first; `status` is open (firing), resolved or all; `site` a site code."""
    stmt = sa.select(Incident).options(so.joinedload(Incident.acknowledged_by)).order_by(
        Incident.starts_at.desc(), Incident.id.desc())
    if scope is not None:
        stmt = stmt.where(in_scope(scope))
    if status == "open":
        stmt = stmt.where(Incident.status == IncidentStatus.FIRING)
    elif status == "resolved":
        stmt = stmt.where(Incident.status == IncidentStatus.RESOLVED)
    if site:
        stmt = stmt.where(Incident.site_code == site)
    return stmt


def get_incident(session: so.Session, incident_id: int, scope: Scope | None = None) -> Incident:
    """One incident, or NotFound naming its id (also when it lies outside the scope)."""
    message = _("No incident with id %(id)s.", id=incident_id)
    incident = get_or_raise(session, Incident, incident_id, message)
    if scope is not None and session.scalar(sa.select(Site.id).where(Site.code == incident.site_code,
                                                                     scope.clause(Site.id))) is None:
        raise NotFound(message)
    return incident


def incident_sites(session: so.Session, scope: Scope | None = None) -> list[str]:
    """The site codes incidents were raised for, for the list's filter."""
    stmt = sa.select(Incident.site_code).where(Incident.site_code != "")
    if scope is not None:
        stmt = stmt.where(in_scope(scope))
    return list(session.scalars(stmt.distinct().order_by(Incident.site_code)))


def open_incident_count(session: so.Session, scope: Scope | None = None) -> int:
    """The incidents still firing, for the board's header."""
    stmt = sa.select(sa.func.count()).select_from(Incident).where(Incident.status == IncidentStatus.FIRING)
    if scope is not None:
        stmt = stmt.where(in_scope(scope))
    return session.scalar(stmt) or 0
