"""Meetings with known answers for the reports: booked through the meetings service on the demo province (the
shared, rolled-back app), in days far ahead and read as if that time had passed (`now` after them)."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.meetings import service
from app.meetings.models import Meeting
from app.meetings.service import BookingRequest
from app.reports.models import SiteTravel
from app.sites.models import Site

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
_days = itertools.count(0)


def local(day: dt.date, hhmm: str, tz: ZoneInfo = LOCAL) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=tz)


def site(session: Any, code: str) -> Site:
    return session.scalar(sa.select(Site).where(Site.code == code))


def book(session: Any, title: str, codes: list[str], starts_at: dt.datetime, ends_at: dt.datetime,
         host: str = "TQ", now: dt.datetime | None = None, **kw: Any) -> Meeting:
    """Book through the meetings service; `now` before the start books a meeting that is over by now."""
    ids = [site(session, c).id for c in codes]
    return service.book_meeting(session, BookingRequest(title=title, host_site_id=site(session, host).id,
                                                        site_ids=ids, starts_at=starts_at, ends_at=ends_at, **kw),
                                now=now)


def set_travel(session: Any, code: str, km: float | None = None, minutes: int | None = None) -> None:
    session.add(SiteTravel(site_id=site(session, code).id, distance_km=km, travel_minutes=minutes))
    session.flush()


def pdf_of_pages(pages: int, text: str = "Tài liệu họp") -> bytes:
    from fpdf import FPDF

    from app.reports.exports import FONTS

    pdf = FPDF()
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.set_font("DejaVu", size=12)
    for n in range(pages):
        pdf.add_page()
        pdf.cell(0, 10, f"{text} {n + 1}")
    return bytes(pdf.output())


def upload(data: bytes, name: str) -> Any:
    from app.agenda.service import Upload

    return Upload(io.BytesIO(data), name)


@pytest.fixture
def quiet_month() -> dt.date:
    """The first day of a local month a year ahead that no other test of the module books (within the horizon)."""
    n = next(_days)
    today = dt.date.today()
    index = today.year * 12 + today.month + 1 + n  # next month onwards, one per test
    return dt.date(index // 12, index % 12 + 1, 1)


def link_rollup(session: Any, site_code: str, day: dt.date, up: int, down: int) -> None:
    """A day of probe steps on the uplink of a site (the link whose far end it is), as the probes' rollups hold."""
    from app.monitoring.models import LinkRollupDaily
    from app.sites.models import Link

    child = site(session, site_code)
    link = session.scalar(sa.select(Link).where(sa.or_(Link.site_a_id == child.id, Link.site_b_id == child.id),
                                                sa.or_(Link.site_a_id == child.parent_id,
                                                       Link.site_b_id == child.parent_id)))
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=LOCAL).astimezone(dt.UTC)
    session.add(LinkRollupDaily(link_id=link.id, bucket_start=midnight, steps_up=up, steps_down=down,
                                sent=20 * (up + down), lost=20 * down, rtt_sum=0.012 * up, rtt_count=up,
                                jitter_sum=0.001 * up, jitter_count=up))
    session.flush()
