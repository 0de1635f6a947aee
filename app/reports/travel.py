"""Reports room: what the province sets for the savings figures — a site's road distance and travel time to the
province's seat, and a meeting's own number of people per site (app.reports.savings reads them)."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.errors import Invalid
from app.meetings.models import Meeting
from app.reports.models import MeetingHeadcount, SiteTravel
from app.sites.models import Site


def site_travels(session: so.Session) -> list[SiteTravel]:
    return list(session.scalars(sa.select(SiteTravel).join(SiteTravel.site).order_by(Site.path)))


def set_site_travel(session: so.Session, site: Site, distance_km: float | None,
                    travel_minutes: int | None) -> SiteTravel | None:
    """Set (or, with neither figure, clear) a site's road distance and travel time to the province's seat."""
    if distance_km is not None and distance_km < 0:
        raise Invalid(_("A distance cannot be negative."), {"distance_km": [_("negative")]})
    if travel_minutes is not None and travel_minutes < 0:
        raise Invalid(_("A travel time cannot be negative."), {"travel_minutes": [_("negative")]})
    row = session.get(SiteTravel, site.id)
    if distance_km is None and travel_minutes is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return None
    if row is None:
        row = SiteTravel(site_id=site.id)
        session.add(row)
    row.distance_km, row.travel_minutes = distance_km, travel_minutes
    session.flush()
    return row


def set_headcount(session: so.Session, meeting: Meeting, people_per_site: int | None) -> MeetingHeadcount | None:
    """Set (or, with None, clear) how many people per site would have travelled to this meeting."""
    if people_per_site is not None and not 0 <= people_per_site <= 1000:
        raise Invalid(_("People per site must be between 0 and 1000."), {"people_per_site": [_("out of range")]})
    row = session.get(MeetingHeadcount, meeting.id)
    if people_per_site is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return None
    if row is None:
        row = MeetingHeadcount(meeting_id=meeting.id, people_per_site=people_per_site)
        session.add(row)
    row.people_per_site = people_per_site
    session.flush()
    return row
