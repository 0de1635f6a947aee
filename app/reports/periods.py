"""Reports room: the periods reports are asked for — local months and years (TIMEZONE) — as [start, end) in UTC."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

from app.config import default


def report_zone() -> ZoneInfo:
    """The app's TIMEZONE, or the default one outside an app (benchmarks, scripts)."""
    return ZoneInfo(current_app.config["TIMEZONE"] if has_app_context() else default("TIMEZONE"))


def month_bounds(year: int, month: int, zone: ZoneInfo | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The local month as [its first midnight, the next month's first midnight) in UTC: in Asia/Ho_Chi_Minh,
    December 2026 is [2026-11-30 17:00 UTC, 2026-12-31 17:00 UTC)."""
    zone = zone or report_zone()
    following = year * 12 + month  # the month after, counted from year 0
    start = dt.datetime(year, month, 1, tzinfo=zone)
    end = dt.datetime(following // 12, following % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def year_bounds(year: int, zone: ZoneInfo | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The local year as [1 January 00:00, the next 1 January 00:00) in UTC."""
    return month_bounds(year, 1, zone)[0], month_bounds(year, 12, zone)[1]
