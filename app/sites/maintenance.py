"""Sites room: maintenance windows on a site, a room system, a bridge or a link (created, moved, deleted).

Plain functions on a session: they validate, change and flush; the caller's commit point commits. Booking
refuses what a window covers; the lists of windows are in app.sites.queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.db import get_or_raise
from app.errors import Invalid
from app.sites.models import Bridge, Endpoint, Link, MaintenanceWindow, Site
from app.sites.service import apply_changes

MAINTENANCE_TARGETS = {"site": Site, "endpoint": Endpoint, "bridge": Bridge, "link": Link}
# One whole sentence per kind of target, so that each translates on its own (never "No " + a translated noun).
_NOT_FOUND = {
    "site": _l("No site with id %(id)s."),
    "endpoint": _l("No endpoint with id %(id)s."),
    "bridge": _l("No bridge with id %(id)s."),
    "link": _l("No link with id %(id)s."),
}


def find_target(session: so.Session, target_kind: str, target_id: int) -> Site | Endpoint | Bridge | Link:
    """What a window would be on: the site, endpoint, bridge or link with this id."""
    model = MAINTENANCE_TARGETS.get(target_kind)
    if model is None:
        raise Invalid(_("Maintenance applies to a site, endpoint, bridge or link, not '%(kind)s'.", kind=target_kind),
                      {"target_kind": [_("unknown kind")]})
    return get_or_raise(session, model, target_id, str(_NOT_FOUND[target_kind]) % {"id": target_id})


def create_maintenance(session: so.Session, target_kind: str, target_id: int, starts_at: dt.datetime,
                       ends_at: dt.datetime, reason: str, created_by_id: int | None) -> MaintenanceWindow:
    target = find_target(session, target_kind, target_id)
    if ends_at <= starts_at:
        raise Invalid(_("The maintenance window must end after it starts."),
                      {"ends_at": [_("must be after the start")]})
    if not reason.strip():
        raise Invalid(_("Give the reason for the maintenance."), {"reason": [_("required")]})
    window = MaintenanceWindow(starts_at=starts_at, ends_at=ends_at, reason=reason.strip(),
                               created_by_id=created_by_id, **{target_kind: target})
    session.add(window)
    session.flush()
    return window


# The booked meetings a window overlaps, (title, start): told by the meetings domain (above this one), set by the
# factory; none without it.
OverlapSource = Callable[[so.Session, MaintenanceWindow], list[tuple[str, dt.datetime]]]
_overlap_source: OverlapSource | None = None


def set_overlap_source(source: OverlapSource | None) -> OverlapSource | None:
    global _overlap_source
    previous, _overlap_source = _overlap_source, source
    return previous


def meetings_overlapping(session: so.Session, window: MaintenanceWindow) -> list[tuple[str, dt.datetime]]:
    """The booked meetings the window overlaps, for the technician's warning (the window is made all the same)."""
    return _overlap_source(session, window) if _overlap_source is not None else []


def delete_maintenance(session: so.Session, window: MaintenanceWindow) -> None:
    session.delete(window)
    session.flush()


def update_maintenance(session: so.Session, window: MaintenanceWindow, data: Mapping[str, Any]) -> MaintenanceWindow:
    """Move or re-explain a window; its target stays (a window on another target is a new window)."""
    apply_changes(window, data, ("starts_at", "ends_at", "reason"))
    if window.ends_at <= window.starts_at:
        raise Invalid(_("The maintenance window must end after it starts."),
                      {"ends_at": [_("must be after the start")]})
    window.reason = window.reason.strip()
    if not window.reason:
        raise Invalid(_("Give the reason for the maintenance."), {"reason": [_("required")]})
    session.flush()
    return window


def maintenance_target_kind(window: MaintenanceWindow) -> str:
    return next(kind for kind in MAINTENANCE_TARGETS if getattr(window, f"{kind}_id") is not None)
