"""Reports room: what holding meetings online saved — travel, time, cost and paper — with every assumption.

For each meeting held, each site taking part other than the host would have sent REPORT_PEOPLE_PER_SITE people
(or the meeting's own headcount) on a round trip to the host site:
  - one-way distance: the straight line between the two sites' coordinates (haversine) times REPORT_ROAD_FACTOR;
    when the host is the province's seat (the root of the tree) and the province set the site's road distance
    or travel time (SiteTravel), those are used instead;
  - one-way time: the set travel time, else the distance at REPORT_TRAVEL_SPEED_KMH;
  - cost: person-kilometres times REPORT_COST_PER_KM plus person-hours times REPORT_COST_PER_HOUR.
A site without coordinates (and nothing set) saves nothing and is counted apart, so the figure is a floor.
Paper: the pages of the documents the meeting published electronically (its agenda's documents, each file once),
times the people who would each have had a printed copy (people per site, for each site taking part but the
host). PDF pages are counted with pypdf at report time; other documents are counted apart, without pages.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.agenda.models import Document
from app.reports.meetings import HeldOccurrence, local_month
from app.reports.models import MeetingHeadcount, SiteTravel
from app.sites.models import Site

log = logging.getLogger(__name__)
EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)


@dataclass(frozen=True)
class Assumptions:
    """The settings every savings figure follows from; shown beside the figures."""

    road_factor: float
    speed_kmh: float
    people_per_site: int
    cost_per_km: float
    cost_per_hour: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Assumptions:
        return cls(road_factor=float(config["REPORT_ROAD_FACTOR"]), speed_kmh=float(config["REPORT_TRAVEL_SPEED_KMH"]),
                   people_per_site=int(config["REPORT_PEOPLE_PER_SITE"]),
                   cost_per_km=float(config["REPORT_COST_PER_KM"]), cost_per_hour=float(config["REPORT_COST_PER_HOUR"]))


@dataclass
class Trip:
    """One site's trip to one host: one way."""

    km: float | None
    hours: float | None
    source: str  # "set" (the province's figure), "coordinates", or "unknown"


@dataclass
class MeetingSavings:
    meeting_id: int
    title: str
    occurrences: int = 0
    sites: int = 0  # site trips avoided (a site per occurrence, host aside)
    people: int = 0  # people per site for this meeting
    person_km: float = 0.0
    person_hours: float = 0.0
    cost: float = 0.0
    pages: int = 0  # pages of its documents, each file once
    paper_pages: int = 0  # pages x people who would have had a copy
    documents_without_pages: int = 0
    sites_without_distance: int = 0


@dataclass
class MonthSavings:
    month: Any  # dt.date, the first day of the local month
    person_km: float = 0.0
    person_hours: float = 0.0
    cost: float = 0.0
    paper_pages: int = 0


@dataclass
class Savings:
    assumptions: Assumptions
    person_km: float = 0.0
    person_hours: float = 0.0
    cost: float = 0.0
    paper_pages: int = 0
    site_trips: int = 0
    sites_without_distance: int = 0
    documents_without_pages: int = 0
    meetings: list[MeetingSavings] = field(default_factory=list)
    months: list[MonthSavings] = field(default_factory=list)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance between two points, in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def trip(site: Site, host: Site, travel: SiteTravel | None, assumptions: Assumptions) -> Trip:
    """One site's one-way trip to the host, by the rule of the module's docstring."""
    host_is_seat = host.parent_id is None
    if host_is_seat and travel is not None and (travel.distance_km is not None or travel.travel_minutes is not None):
        km = travel.distance_km
        if km is None and None not in (site.latitude, site.longitude, host.latitude, host.longitude):
            km = haversine_km(site.latitude, site.longitude, host.latitude, host.longitude) * assumptions.road_factor  # type: ignore[arg-type]
        hours = travel.travel_minutes / 60 if travel.travel_minutes is not None else \
            (km / assumptions.speed_kmh if km is not None and assumptions.speed_kmh > 0 else None)
        return Trip(km, hours, "set")
    if None in (site.latitude, site.longitude, host.latitude, host.longitude):
        return Trip(None, None, "unknown")
    km = haversine_km(site.latitude, site.longitude, host.latitude, host.longitude) * assumptions.road_factor  # type: ignore[arg-type]
    return Trip(km, km / assumptions.speed_kmh if assumptions.speed_kmh > 0 else None, "coordinates")


def pdf_pages(path: Any) -> int | None:
    """The pages of a PDF file, or None when it cannot be read (damaged, encrypted, missing)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        return len(PdfReader(str(path)).pages)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
        log.info("could not count the pages of %s: %s", path, exc)
        return None


def _documents(session: so.Session, meeting_ids: set[int]) -> dict[int, list[Document]]:
    """Each meeting's published documents (those sent to the sites), each stored file once."""
    found: dict[int, dict[str, Document]] = {}
    if not meeting_ids:
        return {}
    rows = session.scalars(sa.select(Document).where(Document.meeting_id.in_(meeting_ids),
                                                     Document.version_id.is_not(None)).order_by(Document.id))
    for document in rows:
        found.setdefault(document.meeting_id, {}).setdefault(document.sha256, document)
    return {meeting_id: list(docs.values()) for meeting_id, docs in found.items()}


def savings(session: so.Session, held: list[HeldOccurrence], assumptions: Assumptions, *, tz: Any) -> Savings:
    """The savings of the occurrences held (from app.reports.meetings)."""
    out = Savings(assumptions=assumptions)
    if not held:
        return out
    site_ids = {i for o in held for i in o.site_ids} | {o.host_site_id for o in held}
    sites = {s.id: s for s in session.scalars(sa.select(Site).where(Site.id.in_(site_ids)))}
    travel = {t.site_id: t for t in session.scalars(sa.select(SiteTravel).where(SiteTravel.site_id.in_(site_ids)))}
    meeting_ids = {o.meeting_id for o in held}
    headcounts = {row.meeting_id: row.people_per_site for row in session.execute(
        sa.select(MeetingHeadcount.meeting_id, MeetingHeadcount.people_per_site)
        .where(MeetingHeadcount.meeting_id.in_(meeting_ids)))}
    documents = _documents(session, meeting_ids)
    pages_of: dict[str, int | None] = {}
    per_meeting: dict[int, MeetingSavings] = {}
    months: dict[Any, MonthSavings] = {}
    trips: dict[tuple[int, int], Trip] = {}

    for occurrence in held:
        people = headcounts.get(occurrence.meeting_id, assumptions.people_per_site)
        row = per_meeting.get(occurrence.meeting_id)
        first = row is None
        if row is None:
            row = per_meeting[occurrence.meeting_id] = MeetingSavings(occurrence.meeting_id, occurrence.title,
                                                                      people=people)
        month_key = local_month(occurrence.starts_at, tz)
        month = months.setdefault(month_key, MonthSavings(month=month_key))
        row.occurrences += 1
        host = sites[occurrence.host_site_id]
        travellers = [i for i in occurrence.site_ids if i != occurrence.host_site_id]
        km = hours = cost = 0.0
        for site_id in travellers:
            key = (site_id, host.id)
            if key not in trips:
                trips[key] = trip(sites[site_id], host, travel.get(site_id), assumptions)
            t = trips[key]
            row.sites += 1
            if t.km is None and t.hours is None:
                row.sites_without_distance += 1
                continue
            site_km = 2 * (t.km or 0.0) * people
            site_hours = 2 * (t.hours or 0.0) * people
            km += site_km
            hours += site_hours
            cost += site_km * assumptions.cost_per_km + site_hours * assumptions.cost_per_hour
        row.person_km += km
        row.person_hours += hours
        row.cost += cost
        month.person_km += km
        month.person_hours += hours
        month.cost += cost
        if first:  # a meeting's documents are sent once, whatever number of its occurrences
            for document in documents.get(occurrence.meeting_id, []):
                if document.kind != "pdf":
                    row.documents_without_pages += 1
                    continue
                if document.sha256 not in pages_of:
                    pages_of[document.sha256] = pdf_pages(document.path)
                pages = pages_of[document.sha256]
                if pages is None:
                    row.documents_without_pages += 1
                    continue
                row.pages += pages
            paper = row.pages * people * len(travellers)
            row.paper_pages += paper
            month.paper_pages += paper

    out.meetings = sorted(per_meeting.values(), key=lambda m: (-m.cost, m.meeting_id))
    out.months = [months[k] for k in sorted(months)]
    for m in out.meetings:
        out.person_km += m.person_km
        out.person_hours += m.person_hours
        out.cost += m.cost
        out.paper_pages += m.paper_pages
        out.site_trips += m.sites
        out.sites_without_distance += m.sites_without_distance
        out.documents_without_pages += m.documents_without_pages
    return out
