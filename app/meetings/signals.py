"""Meetings room: what the meetings domain tells the domains above it, and asks of them, without importing
them (blinker signals).

`sites_to_notify` is sent inside the change's transaction whenever the sites of a meeting must hear about it:
booked or scheduled ("request"), moved, a new agenda version (with a `note`), cancelled ("cancel"). The
calendar domain receives it and queues the invitations (app.calendar.invitations.connect, called by the
factory). Receivers only write rows and outbox messages in the given session; nothing is sent before the commit.

`meeting_page` is sent while a meeting's page is drawn, so that the domains above put on it what is theirs:
the calendar, the invitations sent (deliveries) and who may confirm a site's attendance (the button posts to
the calendar's own view). Receivers only read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy.orm as so
from blinker import Namespace

if TYPE_CHECKING:
    from app.auth.models import User
    from app.meetings.models import Meeting, Participation

_signals = Namespace()
sites_to_notify = _signals.signal("meetings.sites-to-notify")
meeting_page = _signals.signal("meetings.meeting-page")


def notify_sites(session: so.Session, meeting: Meeting, method: str, occurrence_ids: list[int] | None = None,
                 note: str = "") -> None:
    """Ask for invitations ("request") or cancellations ("cancel") to every participating site, after the
    commit; `occurrence_ids` limits them to those occurrences of a series, `note` says what changed."""
    sites_to_notify.send(meeting, session=session, method=method, occurrence_ids=occurrence_ids, note=note)


def _nobody(_participation: Participation) -> bool:
    return False


@dataclass
class PageExtras:
    """What the domains above add to a meeting's page. Left as it is when none is connected: no deliveries
    shown, no attendance button."""

    deliveries: list[Any] | None = None  # the invitations sent, per recipient; None: not shown
    may_confirm: Callable[[Participation], bool] = field(default=_nobody)  # may the viewer confirm this site?
    sections: list[Any] = field(default_factory=list)  # HTML (Markup) of a domain above, e.g. the conference


def page_extras(session: so.Session, meeting: Meeting, viewer: User, *, deliveries: bool) -> PageExtras:
    """Ask the domains above for their part of a meeting's page; `deliveries` False leaves the invitations out
    (who was mailed what is the secretariat's business, not another site's)."""
    extras = PageExtras()
    meeting_page.send(meeting, session=session, viewer=viewer, extras=extras, deliveries=deliveries)
    return extras
