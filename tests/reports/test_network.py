"""The network figures of the monthly report, computed from probe steps with known answers: written through the
function the probe agent's store uses (app.monitoring.rollups.add_step), read back by app.reports.network."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.monitoring import rollups
from app.monitoring.models import Incident, IncidentStatus
from app.reports.network import network_figures
from app.reports.periods import month_bounds
from app.sites.models import Endpoint, Link, LinkMedium, Site

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
STEP = 720.0  # seconds: a 30-day month is 3,600 steps, and 3.6 hours 18 of them


Outages = dict[str, list[tuple[dt.datetime, dt.datetime]]]


def probe(app: Any, session: Any, start: dt.datetime, end: dt.datetime, *, links: Outages,
          endpoints: Outages | None = None, measured_from: dict[str, dt.datetime] | None = None) -> None:
    """A step every STEP seconds in [start, end), as the agent writes it: each link (by code) and endpoint (by site
    code) up but in its outages [from, to), measured from `measured_from` on where given."""
    endpoints, measured_from = endpoints or {}, measured_from or {}
    link_ids = {code: session.scalar(sa.select(Link.id).where(Link.code == code)) for code in links}
    endpoint_ids = {code: session.scalar(sa.select(Endpoint.id).join(Site).where(Site.code == code))
                    for code in endpoints}
    settings = rollups.RollupSettings.of(app.config)

    def up(outages: list[tuple[dt.datetime, dt.datetime]], at: dt.datetime) -> bool:
        return not any(start <= at < end for start, end in outages)

    # In UTC: arithmetic on datetimes of one zone is wall-clock arithmetic, wrong across a clock change.
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    at = start
    while at < end:
        link_rows = [{"link_id": link_ids[code], "up": up(outages, at), "sent": 20,
                      "lost": 0 if up(outages, at) else 20, "rtt_median": 0.020 if up(outages, at) else None,
                      "jitter": 0.002 if up(outages, at) else None}
                     for code, outages in links.items() if at >= measured_from.get(code, start)]
        endpoint_rows = [{"endpoint_id": endpoint_ids[code], "up": up(outages, at),
                          "rtt": 0.030 if up(outages, at) else None, "sent": 20, "lost": 0 if up(outages, at) else 20,
                          "jitter": 0.003 if up(outages, at) else None}
                         for code, outages in endpoints.items()]
        rollups.add_step(session, at, link_rows, endpoint_rows, settings)
        at += dt.timedelta(seconds=STEP)
    session.flush()


def local(*args: int, zone: ZoneInfo = HCM) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def site_id(session: Any, code: str) -> int:
    return session.scalar(sa.select(Site.id).where(Site.code == code))


@pytest.fixture
def report_app(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(app.config, "PROBE_STEP_SECONDS", STEP)
    return app


def test_a_month_is_the_local_month_in_utc():
    assert month_bounds(2026, 12, HCM) == (dt.datetime(2026, 11, 30, 17, tzinfo=dt.UTC),
                                           dt.datetime(2026, 12, 31, 17, tzinfo=dt.UTC))
    assert month_bounds(2026, 10, ZoneInfo("Europe/Paris")) == (dt.datetime(2026, 9, 30, 22, tzinfo=dt.UTC),
                                                                dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC))


def test_a_link_down_three_point_six_hours_in_a_thirty_day_month_is_99_5_percent_available(report_app, session):
    start, end = month_bounds(2026, 11, HCM)  # 30 days
    mx_out = [(local(2026, 11, 15, 8), local(2026, 11, 15, 11, 36))]  # 3.6 hours
    at_out = [(local(2026, 11, 20, 9), local(2026, 11, 20, 16, 12))]  # 7.2 hours
    probe(report_app, session, start, end,
          links={"TQ-TP-TQ": [], "TQ-TP-MX-TQ-TP": mx_out, "TQ-TP-AT-TQ-TP": at_out,
                 "TQ-LB-TQ": [(local(2026, 11, 3, 0), local(2026, 11, 4, 0))]},
          endpoints={"TQ-TP-MX": [(local(2026, 11, 2, 10), local(2026, 11, 2, 11))]},
          # A link brought into service on the 16th: half the month's steps.
          measured_from={"TQ-TP-AT-TQ-TP": local(2026, 11, 16)})
    session.execute(sa.update(Link).where(Link.code == "TQ-LB-TQ").values(medium=LinkMedium.MOBILE_BACKUP))

    report = network_figures(session, start, end, None)
    assert report.granularity == "daily"
    links = {f.code: f for f in report.links}
    mx = links["TQ-TP-MX-TQ-TP"]
    assert (mx.steps_up + mx.steps_down, mx.steps_down) == (3600, 18)
    assert mx.availability == pytest.approx(99.5)
    assert mx.minutes_down == pytest.approx(216)
    assert mx.loss == pytest.approx(0.5) and mx.rtt_mean == pytest.approx(0.020)
    lower, upper = rollups.bucket_bounds(rollups.rtt_bucket(0.020))
    assert lower <= mx.rtt_p95 <= upper and mx.jitter == pytest.approx(0.002)
    assert links["TQ-TP-AT-TQ-TP"].availability == pytest.approx(98.0)  # 36 of its 1,800 steps down
    assert links["TQ-TP-TQ"].availability == 100.0
    assert links["TQ-LB-TQ"].minutes_down == pytest.approx(24 * 60)
    [endpoint] = report.endpoints
    assert (endpoint.site_code, endpoint.minutes_down) == ("TQ-TP-MX", pytest.approx(60))

    # Each medium against its target: exactly on it is not below it.
    media = {m.medium: m for m in report.media}
    assert media[LinkMedium.DEDICATED].target == 99.5
    assert [f.code for f in media[LinkMedium.DEDICATED].below] == ["TQ-TP-AT-TQ-TP"]
    assert media[LinkMedium.MOBILE_BACKUP].target == 98.0
    assert [f.code for f in media[LinkMedium.MOBILE_BACKUP].below] == ["TQ-LB-TQ"]  # a day down: 96.7%
    assert links["TQ-LB-TQ"].availability == pytest.approx(100 * (3600 - 120) / 3600)


def test_the_target_of_a_medium_is_a_setting(report_app, session, monkeypatch):
    monkeypatch.setitem(report_app.config, "AVAILABILITY_TARGET_MOBILE_BACKUP", 95.0)
    start, end = month_bounds(2026, 11, HCM)
    session.execute(sa.update(Link).where(Link.code == "TQ-LB-TQ").values(medium=LinkMedium.MOBILE_BACKUP))
    probe(report_app, session, local(2026, 11, 3, 0), local(2026, 11, 5, 0),
          links={"TQ-LB-TQ": [(local(2026, 11, 3, 0), local(2026, 11, 3, 2))]})
    report = network_figures(session, start, end, None)
    [medium] = report.media
    assert medium.target == 95.0 and medium.below == []  # 10 of its 240 steps down: 95.8%
    assert medium.availability == pytest.approx(100 * 230 / 240)


def test_a_district_is_the_step_weighted_availability_of_what_lies_under_it(report_app, session):
    start, end = month_bounds(2026, 11, HCM)
    probe(report_app, session, start, end,
          links={"TQ-TP-TQ": [], "TQ-TP-MX-TQ-TP": [(local(2026, 11, 15, 8), local(2026, 11, 15, 11, 36))],
                 "TQ-TP-AT-TQ-TP": [(local(2026, 11, 20, 9), local(2026, 11, 20, 16, 12))],
                 "TQ-LB-TQ": [(local(2026, 11, 3, 0), local(2026, 11, 4, 0))]},
          endpoints={"TQ-TP-MX": [(local(2026, 11, 2, 10), local(2026, 11, 2, 11))]},
          measured_from={"TQ-TP-AT-TQ-TP": local(2026, 11, 16)})
    district = site_id(session, "TQ-TP")

    report = network_figures(session, start, end, district)
    assert sorted(f.code for f in report.links) == ["TQ-TP-AT-TQ-TP", "TQ-TP-MX-TQ-TP", "TQ-TP-TQ"]
    areas = {a.code: a for a in report.areas}
    assert set(areas) == {"TQ-TP", "TQ-TP-MX", "TQ-TP-AT"}  # nothing outside the district
    tp = areas["TQ-TP"]
    # 3,600 + 3,582 + 1,764 link steps up and the endpoint's 3,595, of 3,600 + 3,600 + 1,800 + 3,600:
    # weighted by steps, not the mean of 100, 99.5, 98 and 99.86.
    assert (tp.links, tp.endpoints) == (3, 1)
    assert tp.availability == pytest.approx(100 * (3600 + 3582 + 1764 + 3595) / (3600 + 3600 + 1800 + 3600))
    assert tp.minutes_down == pytest.approx((18 + 36 + 5) * STEP / 60)
    assert areas["TQ-TP-MX"].availability == pytest.approx(100 * (3582 + 3595) / 7200)
    assert (areas["TQ-TP"].level_code, areas["TQ-TP-MX"].level_code) == ("district", "commune")

    province = {a.code: a for a in network_figures(session, start, end, None).areas}
    assert province["TQ"].links == 4 and province["TQ"].level_code == "province"
    assert province["TQ-TP"] == tp


def test_an_outage_across_the_end_of_a_local_month_counts_once_split_between_the_months(report_app, session):
    outage = [(local(2026, 11, 30, 22), local(2026, 12, 1, 2))]  # 4 hours across local midnight (17:00 UTC)
    probe(report_app, session, local(2026, 11, 30, 12), local(2026, 12, 1, 12), links={"TQ-TP-MX-TQ-TP": outage})

    november = network_figures(session, *month_bounds(2026, 11, HCM), None).links[0]
    december = network_figures(session, *month_bounds(2026, 12, HCM), None).links[0]
    assert (november.minutes_down, december.minutes_down) == (pytest.approx(120), pytest.approx(120))
    assert november.steps_up + november.steps_down == 60  # 12:00 to midnight local, nothing of December
    assert november.availability == pytest.approx(100 * 50 / 60)

    # The same day read from the hourly rollups (a period that is not whole local days) gives the whole outage.
    day = network_figures(session, local(2026, 11, 30, 12), local(2026, 12, 1, 12), None)
    assert day.granularity == "hourly"
    assert day.links[0].minutes_down == pytest.approx(240) and day.links[0].steps_down == 20


def test_an_outage_across_a_daylight_saving_change_counts_its_real_length(report_app, session, monkeypatch):
    paris = ZoneInfo("Europe/Paris")
    monkeypatch.setitem(report_app.config, "TIMEZONE", "Europe/Paris")
    # 01:30 summer time to 04:30 winter time on 25 October 2026: the clocks go back at 03:00, so 4 real hours.
    outage = [(local(2026, 10, 25, 1, 30, zone=paris), local(2026, 10, 25, 4, 30, zone=paris))]
    probe(report_app, session, local(2026, 10, 24, 12, zone=paris), local(2026, 10, 26, 12, zone=paris),
          links={"TQ-TP-MX-TQ-TP": outage})

    october = network_figures(session, *month_bounds(2026, 10, paris), None).links[0]
    assert october.minutes_down == pytest.approx(240)
    the_day = network_figures(session, local(2026, 10, 25, zone=paris), local(2026, 10, 26, zone=paris), None)
    assert the_day.granularity == "daily"
    assert the_day.links[0].steps_up + the_day.links[0].steps_down == 25 * 3600 / STEP  # a 25-hour day


def incident(session: Any, name: str, starts_at: dt.datetime, *, site: str = "TQ-TP-MX",
             acknowledged_after: float | None = None, resolved_after: float | None = None) -> None:
    session.add(Incident(
        fingerprint=name, alertname="LinkDown", site_code=site, starts_at=starts_at,
        status=IncidentStatus.RESOLVED if resolved_after is not None else IncidentStatus.FIRING,
        ends_at=starts_at + dt.timedelta(minutes=resolved_after) if resolved_after is not None else None,
        acknowledged_at=starts_at + dt.timedelta(minutes=acknowledged_after) if acknowledged_after else None))


def test_incidents_of_the_month_with_their_time_to_acknowledge_and_to_resolve(report_app, session):
    incident(session, "a", local(2026, 11, 2, 9), acknowledged_after=5, resolved_after=30)
    incident(session, "b", local(2026, 11, 10, 9), acknowledged_after=10, resolved_after=60)
    incident(session, "c", local(2026, 11, 20, 9), acknowledged_after=15)  # still firing
    # Started on the month's last evening, resolved in December: November's, and only November's.
    incident(session, "d", local(2026, 11, 30, 23), resolved_after=120)
    incident(session, "e", local(2026, 10, 31, 23), acknowledged_after=1, resolved_after=1)  # October's
    incident(session, "f", local(2026, 11, 5, 9), site="TQ-LB", acknowledged_after=60, resolved_after=600)
    session.flush()

    figures = network_figures(session, *month_bounds(2026, 11, HCM), site_id(session, "TQ-TP")).incidents
    assert figures.count == 4
    assert (figures.acknowledged.count, figures.acknowledged.mean, figures.acknowledged.p95) == (3, 600, 900)
    assert (figures.resolved.count, figures.resolved.mean, figures.resolved.p95) == (3, 70 * 60, 120 * 60)

    province = network_figures(session, *month_bounds(2026, 11, HCM), None).incidents
    assert province.count == 5 and province.resolved.p95 == 600 * 60
    assert network_figures(session, *month_bounds(2026, 12, HCM), None).incidents.count == 0
