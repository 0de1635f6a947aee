"""What the meetings domain tells the domains above it, without importing them (blinker signals).

`sites_to_notify` is sent inside the change's transaction whenever the sites of a meeting must hear about it:
booked or scheduled ("request"), moved, a new agenda version (with a `note`), cancelled ("cancel"). The
calendar domain receives it and queues the invitations (app/__init__.py connects it). Receivers only write
rows and outbox messages in the given session; nothing is sent before the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy.orm as so
from blinker import Namespace

if TYPE_CHECKING:
    from app.meetings.models import Meeting

_signals = Namespace()
sites_to_notify = _signals.signal("meetings.sites-to-notify")


def notify_sites(session: so.Session, meeting: Meeting, method: str, occurrence_ids: list[int] | None = None,
                 note: str = "") -> None:
    """Ask for invitations ("request") or cancellations ("cancel") to every participating site, after the
    commit; `occurrence_ids` limits them to those occurrences of a series, `note` says what changed."""
    sites_to_notify.send(meeting, session=session, method=method, occurrence_ids=occurrence_ids, note=note)
