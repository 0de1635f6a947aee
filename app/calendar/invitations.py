"""Invitations to the participating sites, sent by the task queue after the change is committed."""

from __future__ import annotations

import sqlalchemy.orm as so

from app.meetings.models import Meeting
from app.queue import outbox


@outbox.handler("calendar.send_invitations")
def send_invitations(meeting_id: int, method: str, occurrence_ids: list[int] | None = None) -> None:
    """Placeholder until the calendar package sends mail: see the calendar issue."""


def queue(session: so.Session, meeting: Meeting, method: str, occurrence_ids: list[int] | None = None) -> None:
    session.flush()
    outbox.enqueue(session, "calendar.send_invitations", meeting_id=meeting.id, method=method,
                   occurrence_ids=occurrence_ids)
