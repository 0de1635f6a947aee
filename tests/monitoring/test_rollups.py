"""A year of probe history for the reports: every probe step adds itself to its link's and endpoint's hourly and
local-daily rollups, in the same transaction as the states; the rollups agree with the raw samples they came
from; old ones are pruned by age, a bounded batch at a time."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.monitoring import rollups
from app.monitoring.agent.probe import run_step
from app.monitoring.agent.store import save_step
from app.monitoring.models import (
    EndpointRollupDaily,
    EndpointRollupHourly,
    EndpointSample,
    LinkRollupDaily,
    LinkRollupHourly,
    LinkSample,
)
from app.monitoring.topology import Shard
from app.sites import equipment
from app.sites.models import Endpoint, Link, LinkMedium, Site, Status

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
FAST = {"PROBE_ECHOES": 5, "PROBE_ECHO_INTERVAL": 0.02, "PROBE_TIMEOUT": 0.5}


def rows_of(session: Any, model: Any, key: str, target_id: int) -> list[Any]:
    session.expire_all()
    return list(session.scalars(sa.select(model).where(getattr(model, key) == target_id)
                                .order_by(model.bucket_start)))


def histogram(row: Any) -> list[int]:
    return [getattr(row, c) for c in rollups.BUCKET_COLUMNS]


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# ---------------------------------------------------------------- the real agent

@pytest.fixture
def probe_app(app: Any, session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared app with short probe settings; the demo's links and endpoints are retired (their addresses are
    not in a lab of ours: nothing may be sent to them)."""
    for key, value in FAST.items():
        monkeypatch.setitem(app.config, key, value)
    session.execute(sa.update(Link).values(status=Status.RETIRED))
    session.execute(sa.update(Endpoint).values(status=Status.RETIRED))
    session.commit()
    return app


def test_each_probe_step_adds_to_the_links_hour_and_local_day(probe_app, session, netlab):
    healthy, failing = netlab(1), netlab(1)
    site = session.scalar(sa.select(Site).where(Site.parent_id.is_not(None)).order_by(Site.code))
    links = [equipment.save_link(session, {
        "code": f"ROLL-{i}", "site_a_id": site.id, "address_a": lab.addresses[0], "site_b_id": site.parent_id,
        "address_b": "", "medium": LinkMedium.DEDICATED, "bandwidth_kbps": 8000})
        for i, lab in enumerate((healthy, failing))]
    session.commit()
    up_link, down_link = links
    failing.set_down()

    first = run_step(probe_app, Shard(), "rollups")
    second = run_step(probe_app, Shard(), "rollups")
    assert first.written.rolled_up == 4  # two links, hourly and daily

    # Summed over the rows: the two steps may fall either side of an hour (or a local midnight).
    for model, bucket_of in ((LinkRollupHourly, rollups.hour_start),
                             (LinkRollupDaily, lambda t: rollups.local_day_start(t, HCM))):
        for link, expected in ((up_link, (2, 0, 10, 0, 2)), (down_link, (0, 2, 10, 10, 0))):
            rows = rows_of(session, model, "link_id", link.id)
            assert {r.bucket_start for r in rows} == {bucket_of(first.measured_at), bucket_of(second.measured_at)}
            totals = tuple(sum(getattr(r, c) for r in rows)
                           for c in ("steps_up", "steps_down", "sent", "lost", "rtt_count"))
            assert totals == expected
            assert sum(sum(histogram(r)) for r in rows) == expected[4]
            if expected[4]:
                assert 0 < sum(r.rtt_sum for r in rows) / expected[4] < FAST["PROBE_TIMEOUT"]
    local = first.measured_at.astimezone(HCM)
    assert rollups.local_day_start(first.measured_at, HCM) == dt.datetime.combine(local.date(), dt.time(),
                                                                                  tzinfo=HCM)


# ---------------------------------------------------------------- the rollups against the raw samples

def generated_steps(link_ids: list[int], endpoint_ids: list[int], start: dt.datetime, steps: int,
                    step: dt.timedelta, seed: int = 7) -> list[tuple[dt.datetime, list[dict], list[dict]]]:
    """Steps as the agent measures them: links and endpoints mostly up, with lossy and down spells, and round
    trips spread over several of the histogram's buckets."""
    rng = random.Random(seed)
    result = []
    for i in range(steps):
        at = start + i * step
        links, endpoints = [], []
        for link_id in link_ids:
            up = rng.random() > 0.08
            lost = rng.choice([0, 0, 0, 1, 3]) if up else 20
            rtt = rng.lognormvariate(math.log(0.012), 0.6) if up else None
            links.append({"link_id": link_id, "up": up, "sent": 20, "lost": lost, "rtt_median": rtt,
                          "rtt_min": rtt and rtt * 0.8, "rtt_max": rtt and rtt * 1.5,
                          "jitter": rng.uniform(0.0005, 0.004) if up else None})
        for endpoint_id in endpoint_ids:
            up = rng.random() > 0.05
            rtt = rng.lognormvariate(math.log(0.030), 0.4) if up else None
            endpoints.append({"endpoint_id": endpoint_id, "up": up, "icmp_up": up, "rtt": rtt,
                              "sip_port_open": up, "mgmt_port_open": up, "registered": up, "in_call": False,
                              "call_loss_ratio": None, "call_jitter": None, "error": "",
                              "sent": 20, "lost": 0 if up else 20, "jitter": 0.001 if up else None})
        result.append((at, links, endpoints))
    return result


def test_hourly_and_daily_rollups_agree_with_the_raw_samples_they_came_from(app, session):
    link_ids = list(session.scalars(sa.select(Link.id).order_by(Link.id).limit(3)))
    endpoint_ids = list(session.scalars(sa.select(Endpoint.id).order_by(Endpoint.id).limit(2)))
    settings = rollups.RollupSettings.of(app.config)
    # Ten hours across the local midnight that starts December (17:00 UTC), a step every five minutes.
    start = dt.datetime(2026, 11, 30, 20, 0, tzinfo=HCM)
    for at, links, endpoints in generated_steps(link_ids, endpoint_ids, start, 120, dt.timedelta(minutes=5)):
        save_step(session, agent="gen", shard=Shard(), measured_at=at, links=links, endpoints=endpoints,
                  history_minutes=10 ** 7, rollup_settings=settings)
    session.flush()

    for bucket_of, link_model, endpoint_model, buckets in (
            (rollups.hour_start, LinkRollupHourly, EndpointRollupHourly, 10),
            (lambda t: rollups.local_day_start(t, HCM), LinkRollupDaily, EndpointRollupDaily, 2)):
        for link_id in link_ids:
            raw: dict[dt.datetime, list[LinkSample]] = defaultdict(list)
            for sample in session.scalars(sa.select(LinkSample).where(LinkSample.link_id == link_id)):
                raw[bucket_of(sample.measured_at)].append(sample)
            rows = rows_of(session, link_model, "link_id", link_id)
            assert [r.bucket_start for r in rows] == sorted(raw) and len(rows) == buckets
            for row in rows:
                samples = raw[row.bucket_start]
                rtts = [s.rtt_median for s in samples if s.rtt_median is not None]
                assert (row.steps_up, row.steps_down) == (sum(s.up for s in samples), sum(not s.up for s in samples))
                assert (row.sent, row.lost) == (sum(s.sent for s in samples), sum(s.lost for s in samples))
                assert row.rtt_count == len(rtts) and row.rtt_sum == pytest.approx(sum(rtts))
                jitters = [s.jitter for s in samples if s.jitter is not None]
                assert row.jitter_sum == pytest.approx(sum(jitters)) and row.jitter_count == len(jitters)
                # The p95 read from the histogram lies in the bucket of the raw samples' p95.
                lower, upper = rollups.bucket_bounds(rollups.rtt_bucket(nearest_rank(rtts, 0.95)))
                assert lower <= rollups.histogram_quantile(histogram(row), 0.95) <= upper
        for endpoint_id in endpoint_ids:
            raw_e: dict[dt.datetime, list[EndpointSample]] = defaultdict(list)
            for sample in session.scalars(sa.select(EndpointSample).where(EndpointSample.endpoint_id == endpoint_id)):
                raw_e[bucket_of(sample.measured_at)].append(sample)
            rows = rows_of(session, endpoint_model, "endpoint_id", endpoint_id)
            assert [r.bucket_start for r in rows] == sorted(raw_e)
            for row in rows:
                samples = raw_e[row.bucket_start]
                rtts = [s.rtt for s in samples if s.rtt is not None]
                assert (row.steps_up, row.steps_down) == (sum(s.up for s in samples), sum(not s.up for s in samples))
                assert row.rtt_count == len(rtts) and row.rtt_sum == pytest.approx(sum(rtts))
                assert row.lost == 20 * row.steps_down and row.sent == 20 * len(samples)


def test_the_p95_read_from_the_histogram_falls_in_the_bucket_of_the_true_p95():
    rng = random.Random(3)
    for scale in (0.0008, 0.004, 0.025, 0.150, 1.2):
        values = [rng.lognormvariate(math.log(scale), 0.7) for _ in range(997)]
        counts = [0] * len(rollups.BUCKET_COLUMNS)
        for value in values:
            counts[rollups.rtt_bucket(value)] += 1
        for q in (0.5, 0.95, 0.99):
            lower, upper = rollups.bucket_bounds(rollups.rtt_bucket(nearest_rank(values, q)))
            estimate = rollups.histogram_quantile(counts, q)
            assert lower <= estimate <= upper, (scale, q)
    assert rollups.histogram_quantile([0] * len(rollups.BUCKET_COLUMNS), 0.95) is None


# ---------------------------------------------------------------- pruning

def test_pruning_removes_only_the_rollups_older_than_the_settings_a_batch_at_a_time(app, session):
    [link_id] = session.scalars(sa.select(Link.id).order_by(Link.id).limit(1))
    settings = rollups.RollupSettings(zone=HCM, hourly_days=90, daily_months=13)
    now = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)

    def step(at: dt.datetime) -> None:
        rollups.add_step(session, at, [{"link_id": link_id, "up": True, "sent": 20, "lost": 0,
                                        "rtt_median": 0.01, "jitter": 0.001}], [], settings)

    hourly_kept_from = rollups.hour_start(now) - dt.timedelta(days=90)
    daily_kept_from = dt.datetime(2025, 11, 1, tzinfo=HCM)  # the current local month and the 13 before it
    assert rollups.hourly_cutoff(now, settings) == hourly_kept_from
    assert rollups.daily_cutoff(now, settings) == daily_kept_from
    for at in (hourly_kept_from - dt.timedelta(minutes=1), hourly_kept_from - dt.timedelta(hours=5),
               hourly_kept_from, hourly_kept_from + dt.timedelta(days=1),
               daily_kept_from - dt.timedelta(minutes=1), daily_kept_from - dt.timedelta(days=40),
               daily_kept_from):
        step(at)
    session.flush()

    def buckets(model: Any) -> list[dt.datetime]:
        return [r.bucket_start for r in rows_of(session, model, "link_id", link_id)]

    hourly_before, daily_before = buckets(LinkRollupHourly), buckets(LinkRollupDaily)
    assert len(hourly_before) == 7 and len(daily_before) == 5  # three of the steps share a local day

    # A bounded batch: one row per table and call here.
    assert rollups.prune(session, now, settings, limit=1) == 2
    while rollups.prune(session, now, settings, limit=1):
        pass
    assert buckets(LinkRollupHourly) == [b for b in hourly_before if b >= hourly_kept_from] \
        == [hourly_kept_from, hourly_kept_from + dt.timedelta(days=1)]
    assert buckets(LinkRollupDaily) == [b for b in daily_before if b >= daily_kept_from]
    assert len(buckets(LinkRollupDaily)) == 3

    # The agent's store prunes as it writes its step.
    step(daily_kept_from - dt.timedelta(days=2))
    written = save_step(session, agent="gen", shard=Shard(), measured_at=now, links=[], endpoints=[],
                        history_minutes=90, rollup_settings=settings)
    assert written.rollups_pruned == 2 and len(buckets(LinkRollupDaily)) == 3
