"""Conference room: what a meeting's page says about its conference on the bridge (app.meetings.signals
meeting_page): ready, or not ready with the reason and when VCOps tries again."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import render_template
from markupsafe import Markup

from app.conference.models import Conference
from app.meetings.models import Meeting


def add_to_page(session: so.Session, meeting: Meeting, extras: object) -> None:
    if not meeting.conference_number or not hasattr(extras, "sections"):
        return
    conference = session.scalar(sa.select(Conference).where(Conference.number == meeting.conference_number))
    if conference is None:
        return
    # render_template escaped every value already: the HTML is the template's own.
    extras.sections.append(Markup(render_template("conference/_status.html", conference=conference)))  # noqa: S704
