"""Monitoring room: the state exporter, what the alert rules must know from the database, as metrics for Prometheus.

The probe agents say whether a link answers; only the inventory and the calendar say what that means: which
link backs up which, which uplinks lie above a site (so Alertmanager can blame the district's uplink and stay
quiet about the communes below it), which sites are in a meeting soon, which are under planned maintenance.
`vcops exporter` (app.monitoring.commands) reads that once every few seconds (run), renders the page once, and
serves the same bytes to every scrape (app/monitoring/exposition.py); a scrape never touches the database.

Series (names and labels are the contract the rules in monitoring/rules/ rely on):
  vcops_link_info{link,site,parent_site,backup_of}          1 per probed active link (backup_of "" for a primary)
  vcops_link_ancestor_info{link,ancestor}                   1 per (link, primary uplink above the link's site)
  vcops_site_info{site,parent_site,uplink}                  1 per active site (uplink: its primary uplink or "")
  vcops_endpoint_info{endpoint,site}                        1 per active endpoint
  vcops_meeting_site_start_timestamp_seconds{meeting,site}  per (occurrence id, site) held within the horizon
  vcops_meeting_site_end_timestamp_seconds{meeting,site}
  vcops_meeting_info{meeting,title}                         1 per occurrence above, so alerts can name it
  vcops_maintenance_active{site}                            1 per site under an active maintenance window
  vcops_invitations_failed_for_good{meeting_id,title}       invitations given up, per meeting not over yet
  vcops_exporter_refresh_timestamp_seconds                  when the database was last read successfully
Domains above monitoring add their own series through add_source (app.conference.metrics:
vcops_conference_not_ready{meeting,title,number}).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.calendar.models import Delivery, DeliveryStatus
from app.db import db, read_only_intent, utcnow
from app.meetings.models import Meeting, Occurrence, Participation
from app.meetings.queries import holding
from app.monitoring.exposition import Family, MetricsPage, render
from app.monitoring.topology import topology
from app.sites.models import Endpoint, Link, MaintenanceWindow, Site, Status

log = logging.getLogger(__name__)

# The page is at most this old. Prometheus scrapes every 15 s; a few seconds of lag on a new maintenance
# window or meeting is invisible to the rules, whose shortest `for` is a minute.
REFRESH_SECONDS = 5.0
# Series of the domains above monitoring, which it cannot import: each source reads them in the same pass.
SOURCES: list[Callable[[so.Session, dt.datetime], list[Family]]] = []


def add_source(source: Callable[[so.Session, dt.datetime], list[Family]]) -> None:
    """Have the exporter's page carry `source(session, now)`'s families too (called once by the factory)."""
    if source not in SOURCES:
        SOURCES.append(source)


def _timestamp(value: dt.datetime) -> float:
    return value.timestamp()


def _meeting_families(session: so.Session, now: dt.datetime, horizon: dt.timedelta) -> list[Family]:
    """Every participating site of every occurrence that holds its resources and starts within the horizon
    (or is under way); drafts hold nothing and cancelled occurrences will not happen."""
    rows = session.execute(
        sa.select(Occurrence.id, Meeting.title, Site.code, Occurrence.starts_at, Occurrence.ends_at)
        .join(Meeting, Meeting.id == Occurrence.meeting_id)
        .join(Participation, Participation.occurrence_id == Occurrence.id)
        .join(Site, Site.id == Participation.site_id)
        # The horizon's last instant included (a meeting starting exactly then is listed): one microsecond, the
        # resolution of the stored times, past it.
        .where(holding(now, now + horizon + dt.timedelta(microseconds=1), from_setup=False))
        .order_by(Occurrence.starts_at, Occurrence.id, Site.code)).all()
    start = Family("vcops_meeting_site_start_timestamp_seconds", "gauge",
                   "Start of a meeting occurrence (Unix time) for each site taking part, for occurrences that are "
                   "scheduled or in progress and start within the exporter's horizon.")
    end = Family("vcops_meeting_site_end_timestamp_seconds", "gauge",
                 "End of a meeting occurrence (Unix time) for each site taking part.")
    info = Family("vcops_meeting_info", "info", "The title of each meeting occurrence listed by the exporter.")
    titled: set[int] = set()
    for row in rows:
        labels = {"meeting": str(row.id), "site": row.code}
        start.samples.append((labels, _timestamp(row.starts_at)))
        end.samples.append((labels, _timestamp(row.ends_at)))
        if row.id not in titled:
            titled.add(row.id)
            info.samples.append(({"meeting": str(row.id), "title": row.title}, 1.0))
    return [start, end, info]


def _maintenance_family(session: so.Session, now: dt.datetime, parent_of_site: dict[str, str]) -> Family:
    """Sites under an active window: on the site itself, on one of its endpoints, or on its uplink.

    A window on a district's uplink does not list the communes below: their alerts are already silenced by
    the district's LinkDown through Alertmanager's topology inhibition. A window on a bridge names no site:
    the bridge serves every meeting, not one place.
    """
    sites: set[str] = set()
    sites.update(session.scalars(
        sa.select(Site.code).join(MaintenanceWindow, MaintenanceWindow.site_id == Site.id)
        .where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)))
    sites.update(session.scalars(
        sa.select(Site.code).join(Endpoint, Endpoint.site_id == Site.id)
        .join(MaintenanceWindow, MaintenanceWindow.endpoint_id == Endpoint.id)
        .where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)))
    site_a, site_b = so.aliased(Site), so.aliased(Site)
    for a, b in session.execute(
            sa.select(site_a.code, site_b.code)
            .select_from(MaintenanceWindow)
            .join(Link, Link.id == MaintenanceWindow.link_id)
            .join(site_a, site_a.id == Link.site_a_id).join(site_b, site_b.id == Link.site_b_id)
            .where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)):
        # The site a link serves is its child end, as in topology.py (a cross link: its b end).
        sites.add(a if parent_of_site.get(a) == b else b)
    return Family("vcops_maintenance_active", "gauge",
                  "1 for a site under an active maintenance window (on the site, one of its endpoints or its "
                  "uplink); its alerts are not paged.", [({"site": code}, 1.0) for code in sorted(sites)])


def _invitations_family(session: so.Session, now: dt.datetime) -> Family:
    """Invitations failed for good (a 5xx, out of attempts, or maybe delivered by a queue worker that stopped:
    app/calendar/invitations.py), per meeting with an occurrence still to end: nobody sends them unless a person
    resends them from the meeting's page, and a site without its invitation may miss the meeting."""
    to_end = sa.exists().where(Occurrence.meeting_id == Meeting.id, Occurrence.ends_at > now)
    rows = session.execute(
        sa.select(Meeting.id, Meeting.title, sa.func.count(Delivery.id).label("failed"))
        .join(Delivery, Delivery.meeting_id == Meeting.id)
        .where(Delivery.status == DeliveryStatus.FAILED, Delivery.permanent, to_end)
        .group_by(Meeting.id, Meeting.title).order_by(Meeting.id)).all()
    return Family("vcops_invitations_failed_for_good", "gauge",
                  "Invitations (or cancellations) of a meeting not over yet that failed for good and wait for "
                  "a person to resend them from the meeting's page.",
                  [({"meeting_id": str(r.id), "title": r.title}, float(r.failed)) for r in rows])


def collect_state(session: so.Session, now: dt.datetime, horizon_hours: float = 12) -> list[Family]:
    """The exporter's page as metric families, read in one pass over the inventory and the calendar."""
    topo = topology(session)
    links = Family("vcops_link_info", "info",
                   "1 per probed active link: the site at its far end, that site's parent, and the primary link "
                   "it backs up (empty for a primary).")
    ancestors = Family("vcops_link_ancestor_info", "info",
                       "1 per link and per primary uplink above its site (a commune's link: its district's "
                       "uplink); alerts below a downed ancestor are inhibited.")
    for target in topo.links:
        links.samples.append(({"link": target.code, "site": target.site_code, "parent_site": target.parent_code,
                               "backup_of": target.backup_of}, 1.0))
        for ancestor in topo.ancestor_links(target.site_code):
            ancestors.samples.append(({"link": target.code, "ancestor": ancestor}, 1.0))
    parent = so.aliased(Site)
    site_rows = session.execute(
        sa.select(Site.code, parent.code.label("parent_code")).outerjoin(parent, parent.id == Site.parent_id)
        .where(Site.status == Status.ACTIVE).order_by(Site.path, Site.code)).all()
    sites = Family("vcops_site_info", "info", "1 per active site: its parent and its primary uplink (empty for "
                   "the top site).", [({"site": r.code, "parent_site": r.parent_code or "",
                                        "uplink": topo.uplink_of_site.get(r.code, "")}, 1.0) for r in site_rows])
    endpoint_rows = session.execute(
        sa.select(Endpoint.id, Site.code).join(Site, Site.id == Endpoint.site_id)
        .where(Endpoint.status == Status.ACTIVE).order_by(Endpoint.id)).all()
    endpoints = Family("vcops_endpoint_info", "info", "1 per active endpoint (video system) and its site.",
                       [({"endpoint": str(r.id), "site": r.code}, 1.0) for r in endpoint_rows])
    return [links, ancestors, sites, endpoints,
            *_meeting_families(session, now, dt.timedelta(hours=horizon_hours)),
            _maintenance_family(session, now, topo.parent_of_site), _invitations_family(session, now),
            *(family for source in SOURCES for family in source(session, now))]


def refresh(page: MetricsPage, session: so.Session, now: dt.datetime, horizon_hours: float) -> None:
    """Read the database once and replace the page the scrapes see."""
    families = collect_state(session, now, horizon_hours)
    families.append(Family("vcops_exporter_refresh_timestamp_seconds", "gauge",
                           "When the exporter last read the database successfully (Unix time).",
                           [({}, now.timestamp())]))
    page.update(render(families))


def read_once(page: MetricsPage, horizon_hours: float) -> None:
    """Refresh the page from the database in a read transaction of its own; on a database error keep serving the
    last good page (Prometheus sees the refresh timestamp age and can alert)."""
    try:
        with read_only_intent():
            refresh(page, db.session(), utcnow(), horizon_hours)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("exporter: reading the database failed: %s", exc)
    finally:
        db.session.remove()  # end the read transaction, so the next read sees new rows


def run(page: MetricsPage, horizon_hours: float, refresh_seconds: float, stop: threading.Event) -> None:
    """Read the database again every `refresh_seconds` until `stop` is set (the first read is the caller's)."""
    next_read = time.monotonic() + refresh_seconds
    while not stop.wait(max(0.0, next_read - time.monotonic())):
        read_once(page, horizon_hours)
        next_read += refresh_seconds
        next_read = max(next_read, time.monotonic())  # after a slow read, do not try to catch up
