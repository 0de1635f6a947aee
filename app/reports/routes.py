"""Reports room: the reports page (period, subtree, charts and the tables behind them), its downloads, the reports
kept for download, and asking for a long period's report on the queue.

Thin views: app.reports.schemas reads what was asked, app.reports.report builds it, app.reports.exports writes it
down; a user with a scope sees their scope's subtree (app.sites.scope).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_login import current_user

from app import storage
from app.db import db, get_or_raise
from app.errors import Conflict, Invalid, NotFound
from app.reports import exports, monthly
from app.reports.models import StoredReport
from app.reports.report import build_report
from app.reports.schemas import Asked, resolve
from app.sites import scope as scopes
from app.sites.queries import site_options
from app.web.access import require

bp = Blueprint("reports", __name__, url_prefix="/reports")
PERMISSION = "monitoring.view"  # every staff member: the figures are not secret; site staff not


def _asked(args: Any) -> Asked:
    """What the query string (or the form) asks for."""

    def day(name: str) -> dt.date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise Invalid(_("Give the day as YYYY-MM-DD."), {name: [_("not a day")]}) from None

    return resolve(db.session, scopes.request_scope(), month=args.get("month", "").strip(), first=day("from"),
                   last=day("to"), site_code=args.get("site", "").strip())


def _query(asked: Asked) -> dict[str, str]:
    """The page's own arguments, for its links (downloads, the queued request)."""
    query = {"month": asked.month} if asked.month else {"from": asked.first.isoformat(), "to": asked.last.isoformat()}
    if asked.site is not None:
        query["site"] = asked.site.code
    return query


@bp.app_template_filter("report_number")
def report_number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return format_decimal(round(value, digits), format="#,##0" + ("." + "0" * digits if digits else ""))


@bp.get("/")
@require(PERMISSION)
def report_page() -> ResponseReturnValue:
    asked = _asked(request.args)
    scope = scopes.request_scope()
    kept = monthly.stored_reports(db.session, site_ids=scope.site_ids if scope is not None else None)
    context = {"asked": asked, "query": _query(asked), "sites": site_options(db.session, scope=scope),
               "kept": kept, "formats": exports.FORMATS, "queue_months": current_app.config["REPORT_QUEUE_MONTHS"],
               "whole_province": scope is None}
    if monthly.needs_queue(asked.start, asked.end):
        return render_template("reports/page.html", report=None, long=True, **context)
    report = build_report(db.session, asked.start, asked.end, asked.site.id if asked.site else None)
    return render_template(
        "reports/page.html", report=report, long=False, tables={t.key: t for t in exports.tables(report)},
        title=exports.title(report), assumptions=exports.assumptions(report), usage=exports.usage_chart(report),
        areas=exports.areas_chart(report), links=exports.links_chart(report), **context)


def send_report(data: bytes, name: str, content_type: str) -> Response:
    response = Response(data, mimetype=content_type.split(";")[0])
    if content_type.startswith("text/"):
        response.headers["Content-Type"] = content_type
    response.headers["Content-Disposition"] = storage.content_disposition(name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response


def download_report(asked: Asked, fmt: str) -> Response:
    """A report's file for the period asked; a long period is refused here and asked for on the queue."""
    if fmt not in exports.FORMATS:
        raise NotFound(_("No report format %(format)s.", format=fmt))
    if monthly.needs_queue(asked.start, asked.end):
        raise Conflict(_("A report over more than %(months)s months is built on the queue: ask for it on the "
                         "reports page, then download it from the kept reports.",
                         months=current_app.config["REPORT_QUEUE_MONTHS"]), code="too_long")
    report = build_report(db.session, asked.start, asked.end, asked.site.id if asked.site else None)
    return send_report(exports.render(report, fmt), exports.filename(report, fmt), exports.CONTENT_TYPES[fmt])


@bp.get("/download.<fmt>")
@require(PERMISSION)
def download(fmt: str) -> ResponseReturnValue:
    return download_report(_asked(request.args), fmt)


def kept_file(report_id: int, name: str) -> Response:
    row = get_or_raise(db.session, StoredReport, report_id, _("No kept report with id %(id)s.", id=report_id))
    scope = scopes.request_scope()
    if scope is not None and (row.site_id is None or row.site_id not in scope.site_ids):
        raise NotFound(_("No kept report with id %(id)s.", id=report_id))
    try:
        path = monthly.file_path(row, name)
        data = path.read_bytes()
    except (FileNotFoundError, OSError):
        raise NotFound(_("This report has no file %(name)s.", name=name)) from None
    return send_report(data, name, exports.CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream"))


@bp.get("/kept/<int:report_id>/<name>")
@require(PERMISSION)
def kept_download(report_id: int, name: str) -> ResponseReturnValue:
    return kept_file(report_id, name)


@bp.post("/kept")
@require(PERMISSION)
def kept_request() -> ResponseReturnValue:
    asked = _asked(request.form)
    monthly.request_report(db.session, asked.start, asked.end, asked.site.id if asked.site else None,
                           current_user.id)
    flash(_("The report is being built; it will be listed under the kept reports."), "success")
    return redirect(url_for("reports.report_page", **_query(asked)))
