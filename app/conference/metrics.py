"""Conference room: the exporter's series of conferences not ready for their meeting, for the alert
ConferenceNotReady (monitoring/rules/conference.yml)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy.orm as so

from app.conference.models import ConferenceState
from app.conference.service import not_ready
from app.monitoring.exposition import Family


def conference_families(session: so.Session, now: dt.datetime) -> list[Family]:
    rows = [c for c in not_ready(session, now) if c.state is ConferenceState.FAILED]
    return [Family("vcops_conference_not_ready", "gauge",
                   "1 per meeting still to end whose conference the bridge did not take (VCOps retries it); the "
                   "value is the attempts made so far.",
                   [({"meeting": str(c.meeting_id), "title": c.meeting.title, "number": c.number},
                     float(c.attempts)) for c in rows])]


def connect() -> None:
    from app.monitoring import exporter

    exporter.add_source(conference_families)
