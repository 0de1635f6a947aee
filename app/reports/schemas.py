"""Reports room: what a report is asked for with (the period and the subtree), for the page and the API alike, and
the API's answers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from marshmallow import RAISE, Schema, fields, validate

from app.errors import Invalid, NotFound
from app.reports.periods import month_bounds, report_zone
from app.reports.report import add_months, period_of_days
from app.sites import scope as scopes
from app.sites.models import Site

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
LONGEST_DAYS = 3 * 366  # a typing mistake (year 2062) would read the whole history for nothing


@dataclass
class Asked:
    start: dt.datetime
    end: dt.datetime
    month: str  # "2026-11" when the period is one month, else ""
    first: dt.date
    last: dt.date
    site: Site | None


def last_month() -> str:
    today = dt.datetime.now(report_zone()).date()
    previous = add_months(today.replace(day=1), -1)
    return f"{previous:%Y-%m}"


def resolve(session: so.Session, scope: scopes.Scope | None, month: str = "", first: dt.date | None = None,
            last: dt.date | None = None, site_code: str = "") -> Asked:
    """The period and subtree asked for; a user with a scope gets their scope's subtree unless they pick a site
    inside it (one outside is refused)."""
    site: Site | None = None
    if site_code:
        site = session.scalar(sa.select(Site).where(Site.code == site_code))
        if site is None:
            raise NotFound(_("No site with code %(code)s.", code=site_code), {"site": [_("no such site")]})
        scopes.require(scope, site.id)
    elif scope is not None:
        site = scope.site
    if first is not None or last is not None:
        if first is None or last is None:
            raise Invalid(_("Give both the first and the last day of the period."),
                          {"from" if first is None else "to": [_("required with the other day")]})
        if last < first:
            raise Invalid(_("The last day is before the first."), {"to": [_("before the first day")]})
        if (last - first).days > LONGEST_DAYS:
            raise Invalid(_("A report covers at most three years."), {"to": [_("too far from the first day")]})
        start, end = period_of_days(first, last)
        whole_month = first.day == 1 and add_months(first, 1) - dt.timedelta(days=1) == last
        return Asked(start, end, f"{first:%Y-%m}" if whole_month else "", first, last, site)
    month = month or last_month()
    found = MONTH.match(month)
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise Invalid(_("Give the month as YYYY-MM."), {"month": [_("not a month")]})
    year, number = int(found.group(1)), int(found.group(2))
    start, end = month_bounds(year, number)
    first_day = dt.date(year, number, 1)
    return Asked(start, end, month, first_day, add_months(first_day, 1) - dt.timedelta(days=1), site)


class ReportQuery(Schema):
    class Meta:
        unknown = RAISE

    month = fields.String(load_default="", metadata={"description": "A local month, YYYY-MM (default: last month)."})
    from_ = fields.Date(data_key="from", load_default=None, metadata={"description": "First day (with `to`)."})
    to = fields.Date(load_default=None, metadata={"description": "Last day, included (with `from`)."})
    site = fields.String(load_default="", metadata={"description": "Code of the site whose subtree is reported."})


class ReportRequest(ReportQuery):
    pass


class TableOut(Schema):
    key = fields.String()
    title = fields.String()
    columns = fields.Method("_columns")
    rows = fields.Method("_rows")
    note = fields.String()

    def _columns(self, table: Any) -> list[dict[str, str]]:
        return [{"label": c.label, "kind": c.kind} for c in table.columns]

    def _rows(self, table: Any) -> list[list[Any]]:
        return [[v.isoformat() if isinstance(v, dt.date) else v for v in row] for row in table.rows]


class ReportOut(Schema):
    title = fields.String()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    site = fields.String(allow_none=True)
    tables = fields.List(fields.Nested(TableOut))


class StoredReportOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    title = fields.String()
    period_start = fields.AwareDateTime()
    period_end = fields.AwareDateTime()
    site = fields.Function(lambda r: r.site.code if r.site else None)
    files = fields.Method("_files")
    error = fields.String()
    mailed_to = fields.List(fields.String())
    created_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)

    def _files(self, row: Any) -> list[dict[str, str]]:
        from flask import url_for

        return [{"name": name, "url": url_for("api_stored_reports.file", report_id=row.id, name=name)}
                for name in row.files]


class SiteTravelIn(Schema):
    class Meta:
        unknown = RAISE

    distance_km = fields.Float(required=True, allow_none=True, validate=validate.Range(min=0, max=2000),
                               metadata={"description": "Road distance to the province's seat, one way (null: "
                                                        "from the coordinates)."})
    travel_minutes = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=0, max=2880),
                                    metadata={"description": "Travel time one way (null: from the distance)."})


class SiteTravelOut(Schema):
    site = fields.Function(lambda t: t.site.code)
    name = fields.Function(lambda t: t.site.name)
    distance_km = fields.Float(allow_none=True)
    travel_minutes = fields.Integer(allow_none=True)


class HeadcountIn(Schema):
    class Meta:
        unknown = RAISE

    people_per_site = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=0, max=1000),
                                     metadata={"description": "People per site for this meeting (null: the "
                                                              "setting REPORT_PEOPLE_PER_SITE)."})


class HeadcountOut(Schema):
    meeting_id = fields.Integer()
    people_per_site = fields.Integer(allow_none=True)
