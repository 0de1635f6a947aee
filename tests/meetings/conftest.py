"""Helpers for booking tests: sites by code and times on a coming working day, in local time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.meetings.service import BookingRequest
from app.sites.models import Bridge, Link, Site

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


def local(day: dt.date, hhmm: str) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=LOCAL)


@pytest.fixture
def day() -> dt.date:
    """A Monday at least a week ahead: never in the past, always a working day."""
    today = dt.date.today() + dt.timedelta(days=7)
    return today + dt.timedelta(days=(7 - today.weekday()) % 7)


@pytest.fixture
def sites(session):
    class Sites:
        def __getitem__(self, code: str) -> Site:
            site = session.scalar(sa.select(Site).where(Site.code == code))
            assert site is not None, code
            return site

    return Sites()


@pytest.fixture
def uplink(session, sites):
    def find(code: str) -> Link:
        site = sites[code]
        return session.scalar(sa.select(Link).where(Link.site_a_id == site.id, Link.site_b_id == site.parent_id))

    return find


@pytest.fixture
def bridge(session) -> Bridge:
    return session.scalar(sa.select(Bridge).where(Bridge.name == "MCU-TQ-01"))


@pytest.fixture
def request_for(sites, day):
    def make(title: str, codes: list[str], start: str = "08:00", end: str = "09:00", **kw) -> BookingRequest:
        return BookingRequest(title=title, host_site_id=sites["TQ"].id, site_ids=[sites[c].id for c in codes],
                              starts_at=local(kw.pop("on", day), start), ends_at=local(kw.pop("end_on", day), end),
                              **kw)

    return make
