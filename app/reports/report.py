"""Reports room: one Report for a period and a subtree — meetings, savings, network — with its assumptions.

Everything the page, the downloads, the API and the monthly mail show comes from `build_report`, so they cannot
disagree. Periods are [start, end) in UTC; the months and days shown are local (TIMEZONE).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy.orm as so
from flask import current_app

from app.db import utcnow
from app.reports.meetings import MeetingFigures, MonthUsage, meeting_figures
from app.reports.network import NetworkReport, network_figures
from app.reports.periods import month_bounds, report_zone
from app.reports.savings import Assumptions, Savings, savings
from app.sites.models import Site

USAGE_MONTHS = 12  # the usage chart: the last twelve months up to the period's end


@dataclass
class Report:
    start: dt.datetime
    end: dt.datetime
    site: Site | None  # the subtree's root; None for the whole province
    generated_at: dt.datetime
    tz: ZoneInfo
    meetings: MeetingFigures
    savings: Savings
    network: NetworkReport
    usage: list[MonthUsage] = field(default_factory=list)

    @property
    def first_day(self) -> dt.date:
        return self.start.astimezone(self.tz).date()

    @property
    def last_day(self) -> dt.date:
        return (self.end - dt.timedelta(microseconds=1)).astimezone(self.tz).date()

    @property
    def is_one_month(self) -> bool:
        return self.first_day.day == 1 and (self.start, self.end) == month_bounds(self.first_day.year,
                                                                                     self.first_day.month)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_of_days(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first day 00:00, the day after the last 00:00) local, in UTC."""
    tz = report_zone()
    start = dt.datetime.combine(first, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return start, end


def months_in(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / (86400 * 30.44)


def build_report(session: so.Session, start: dt.datetime, end: dt.datetime, subtree_site_id: int | None = None,
                 *, now: dt.datetime | None = None, usage: bool = True) -> Report:
    now = now or utcnow()
    tz = report_zone()
    figures = meeting_figures(session, start, end, subtree_site_id, tz=tz, now=now)
    saved = savings(session, figures.occurrences, Assumptions.from_config(current_app.config), tz=tz)
    months: list[MonthUsage] = []
    if usage:
        last = (end - dt.timedelta(microseconds=1)).astimezone(tz).date().replace(day=1)
        first = add_months(last, -(USAGE_MONTHS - 1))
        usage_start = month_bounds(first.year, first.month)[0]
        usage_end = month_bounds(last.year, last.month)[1]
        months = meeting_figures(session, usage_start, usage_end, subtree_site_id, tz=tz, now=now).months
    return Report(start=start, end=end, site=session.get(Site, subtree_site_id) if subtree_site_id else None,
                  generated_at=now, tz=tz, meetings=figures, savings=saved,
                  network=network_figures(session, start, end, subtree_site_id), usage=months)
