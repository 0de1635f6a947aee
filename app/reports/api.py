"""Reports room: the JSON API under /api/v1/reports — a report's tables, its downloads (CSV, XLSX, PDF), and the
reports kept for download (listing, asking for one, their files). The same services as the page's."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user

from app.db import db, get_or_raise
from app.errors import NotFound
from app.meetings.models import Meeting
from app.reports import exports, monthly, travel
from app.reports import schemas as s
from app.reports.report import build_report
from app.reports.routes import PERMISSION, download_report, kept_file
from app.sites import scope as scopes
from app.sites.models import Site
from app.web.access import require
from app.web.api import ApiBlueprint

Args = dict[str, Any]
FILE = {"description": "The report's file, as an attachment.",
        "content": {t.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                    for t in exports.CONTENT_TYPES.values()}}

reports = ApiBlueprint("reports", "A report of a period and subtree: meetings, savings with their assumptions, "
                                  "the network.", url_prefix="/api/v1/reports")
downloads = ApiBlueprint("report_downloads", "A report as CSV (UTF-8 with BOM), XLSX or PDF.",
                         url_prefix="/api/v1/reports/download")
kept = ApiBlueprint("stored_reports", "Reports kept for download: the monthly ones and those asked for.",
                    url_prefix="/api/v1/reports/kept")


def _asked(args: Args) -> s.Asked:
    return s.resolve(db.session, scopes.request_scope(), month=args["month"], first=args["from_"], last=args["to"],
                     site_code=args["site"])


@reports.route("", endpoint="collection")
class ReportView(MethodView):
    @require(PERMISSION)
    @reports.arguments(s.ReportQuery, location="query")
    @reports.response(200, s.ReportOut)
    @reports.fails(404, 409, 422)
    def get(self, args: Args) -> Args:
        """The report's tables (`month`, or `from` and `to`; `site` for a subtree), as the page shows them."""
        asked = _asked(args)
        if monthly.needs_queue(asked.start, asked.end):
            download_report(asked, "csv")  # the same refusal (409) as the downloads
        report = build_report(db.session, asked.start, asked.end, asked.site.id if asked.site else None)
        return {"title": exports.title(report), "start": report.start, "end": report.end,
                "site": report.site.code if report.site else None, "tables": exports.tables(report)}


@downloads.route("/<fmt>", endpoint="collection")
class DownloadView(MethodView):
    @require(PERMISSION)
    @downloads.arguments(s.ReportQuery, location="query")
    @downloads.doc(responses={"200": FILE})
    @downloads.fails(404, 409, 422)
    def get(self, args: Args, fmt: str) -> Response:
        """The report as `csv`, `xlsx` or `pdf`; over more than REPORT_QUEUE_MONTHS months, 409: ask for it
        to be kept (POST /api/v1/reports/kept)."""
        return download_report(_asked(args), fmt)


@kept.route("", endpoint="collection")
class KeptView(MethodView):
    @require(PERMISSION)
    @kept.response(200, s.StoredReportOut(many=True))
    def get(self) -> list[Any]:
        """The newest kept reports, with their files' addresses."""
        scope = scopes.request_scope()
        return monthly.stored_reports(db.session, site_ids=scope.site_ids if scope is not None else None)

    @require(PERMISSION)
    @kept.arguments(s.ReportRequest)
    @kept.response(202, s.StoredReportOut)
    @kept.fails(404, 422)
    def post(self, args: Args) -> Any:
        """Ask for a report of any period to be built by the queue and kept; it is listed here when ready."""
        asked = _asked(args)
        row = monthly.request_report(db.session, asked.start, asked.end, asked.site.id if asked.site else None,
                                     current_user.id)
        return row, 202, {"Location": url_for("api_stored_reports.collection")}


@kept.route("/<int:report_id>/<name>", endpoint="file")
@require(PERMISSION)
@kept.doc(responses={"200": FILE})
@kept.fails(404)
def kept_download(report_id: int, name: str) -> Response:
    """One file of a kept report."""
    return kept_file(report_id, name)


travel_api = ApiBlueprint("report_travel", "What the province sets for the savings: a site's road distance and "
                                          "travel time to the province's seat.", url_prefix="/api/v1/reports/travel")
headcounts = ApiBlueprint("report_headcounts", "A meeting's own number of people per site for the savings.",
                          url_prefix="/api/v1/reports/headcounts")


@travel_api.route("", endpoint="collection")
class TravelList(MethodView):
    @require(PERMISSION)
    @travel_api.response(200, s.SiteTravelOut(many=True))
    def get(self) -> list[Any]:
        """The sites whose distance or travel time the province set."""
        return travel.site_travels(db.session)


@travel_api.route("/<code>", endpoint="item")
class TravelItem(MethodView):
    @require("inventory.edit")
    @travel_api.arguments(s.SiteTravelIn)
    @travel_api.response(200, s.SiteTravelOut)
    @travel_api.alt_response(204, description="Both figures cleared: the coordinates are used again.")
    @travel_api.fails(404, 422)
    def put(self, args: Args, code: str) -> Any:
        """Set a site's one-way road distance (km) and travel time (minutes) to the province's seat."""
        site = db.session.scalar(sa.select(Site).where(Site.code == code))
        if site is None:
            raise NotFound(_("No site with code %(code)s.", code=code))
        scopes.require(scopes.request_scope(), site.id)
        row = travel.set_site_travel(db.session, site, args["distance_km"], args["travel_minutes"])
        return row if row is not None else Response(status=204)


@headcounts.route("/<int:meeting_id>", endpoint="item")
class HeadcountItem(MethodView):
    @require("meetings.book")
    @headcounts.arguments(s.HeadcountIn)
    @headcounts.response(200, s.HeadcountOut)
    @headcounts.fails(404, 422)
    def put(self, args: Args, meeting_id: int) -> Args:
        """Set how many people per site would have travelled to this meeting (null: the setting)."""
        meeting = get_or_raise(db.session, Meeting, meeting_id, _("No meeting with id %(id)s.", id=meeting_id))
        scopes.require(scopes.request_scope(), meeting.host_site_id)
        row = travel.set_headcount(db.session, meeting, args["people_per_site"])
        return {"meeting_id": meeting.id, "people_per_site": row.people_per_site if row else None}


blueprints = [reports, downloads, kept, travel_api, headcounts]
