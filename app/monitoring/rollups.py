"""Monitoring room: the probe results kept for a year, as rollups per target and hour and per target and local day,
so that the monthly reports need neither the raw samples (kept for PROBE_HISTORY_MINUTES) nor Prometheus.

Each probe step adds itself to its bucket in the same transaction as the states (app.monitoring.agent.store): one
upsert per table (INSERT ... ON CONFLICT DO UPDATE SET column = column + excluded.column, on SQLite and
PostgreSQL alike; on PostgreSQL the rows come as one array per column, unnest()ed), so several agents (shards)
writing the same hour never lose a step.

Buckets: hourly rows start on the UTC hour. Every zone the reports use is a whole number of hours from UTC
(Asia/Ho_Chi_Minh is +07:00, no daylight saving), so a local month is an exact sum of hours. Daily rows are *local*
days (bucket_start is the local midnight in UTC): the reports ask for local months and years, and a month of UTC
days would put the first seven hours of every local month into the previous one. The daily rows are the ones a
year of reports reads (11,400 targets x 365 rows instead of x 8,760); the hourly ones serve periods that do not
start and end at local midnights, within ROLLUP_HOURLY_DAYS.

Round trips: each step's median round trip (the figure the board and the samples keep) is one observation: its sum
and count give the mean, and a fixed log-scale histogram gives the quantiles. RTT_BOUNDS: bucket 0 holds what is
under 1 ms, bucket i (1..22) [2^((i-1)/2), 2^(i/2)) ms, bucket 23 from 2.048 s (past PROBE_TIMEOUT's default):
each bucket is 41% wider than the one before, so a quantile read from it is within 41% (at worst) of the truth,
and on the dedicated network's 2-50 ms it falls in one of 11 buckets.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import sqlite

from app.monitoring.models import (
    RTT_BUCKETS,
    EndpointRollupDaily,
    EndpointRollupHourly,
    LinkRollupDaily,
    LinkRollupHourly,
)

# Upper bounds (seconds) of buckets 0..22; bucket 23 has none.
RTT_BOUNDS: tuple[float, ...] = tuple(0.001 * 2 ** (i / 2) for i in range(RTT_BUCKETS - 1))
BUCKET_COLUMNS: tuple[str, ...] = tuple(f"rtt_b{i:02d}" for i in range(RTT_BUCKETS))
SUM_COLUMNS: tuple[str, ...] = ("steps_up", "steps_down", "sent", "lost", "rtt_sum", "rtt_count", "jitter_sum",
                                "jitter_count", *BUCKET_COLUMNS)
# Rollup rows older than their retention are deleted at most this many per table and step, as the samples are.
PRUNE_BATCH = 5000

Row = Mapping[str, Any]


@dataclass(frozen=True)
class RollupSettings:
    zone: ZoneInfo  # whose days the daily rows are
    hourly_days: int
    daily_months: int

    @classmethod
    def of(cls, config: Any) -> RollupSettings:
        return cls(zone=ZoneInfo(config["TIMEZONE"]), hourly_days=int(config["ROLLUP_HOURLY_DAYS"]),
                   daily_months=int(config["ROLLUP_DAILY_MONTHS"]))


def rtt_bucket(rtt: float) -> int:
    """The histogram bucket of a round trip (seconds); a bound belongs to the bucket above it."""
    return bisect.bisect_right(RTT_BOUNDS, rtt)


def bucket_bounds(index: int) -> tuple[float, float]:
    """(lower, upper) seconds of a bucket; the last one's upper is infinite."""
    lower = 0.0 if index == 0 else RTT_BOUNDS[index - 1]
    upper = RTT_BOUNDS[index] if index < len(RTT_BOUNDS) else math.inf
    return lower, upper


def histogram_quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of the observations a histogram counted, None when it is empty.

    The bucket is the one holding the observation of rank ceil(q x n) (the nearest-rank quantile of the raw
    values falls in the same bucket); within it the value is interpolated on the log scale (linearly in
    bucket 0, which starts at 0). The last bucket has no upper bound: its lower bound is returned.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower, upper = bucket_bounds(index)
            if math.isinf(upper):
                return lower
            fraction = (rank - seen) / count
            if lower == 0.0:
                return upper * fraction
            return lower * (upper / lower) ** fraction
        seen += count
    return None  # unreachable: the ranks add up to total


def hour_start(at: dt.datetime) -> dt.datetime:
    """The UTC hour a step falls in."""
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def local_day_start(at: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The local midnight starting the day a step falls in, in UTC."""
    local = at.astimezone(zone)
    midnight = dt.datetime.combine(local.date(), dt.time(), tzinfo=zone)
    return midnight.astimezone(dt.UTC)


def _figures(row: Row, rtt_key: str) -> dict[str, Any]:
    """One step of one target as the sums it adds to its buckets."""
    rtt, jitter = row.get(rtt_key), row.get("jitter")
    values: dict[str, Any] = dict.fromkeys(BUCKET_COLUMNS, 0)
    up = bool(row["up"])
    values.update(steps_up=int(up), steps_down=int(not up), sent=int(row.get("sent") or 0),
                  lost=int(row.get("lost") or 0), rtt_sum=rtt or 0.0, rtt_count=int(rtt is not None),
                  jitter_sum=jitter or 0.0, jitter_count=int(jitter is not None))
    if rtt is not None:
        values[BUCKET_COLUMNS[rtt_bucket(rtt)]] = 1
    return values


# The upserts, built once per dialect and table: building one (32 SET expressions) costs more CPU than running it.
_UPSERTS: dict[tuple[str, str], Any] = {}
_FLOAT_COLUMNS = {"rtt_sum", "jitter_sum"}


def _sqlite_upsert(table: sa.Table, key: str) -> Any:
    insert = sqlite.insert(table)
    return insert.on_conflict_do_update(index_elements=[table.c[key], table.c.bucket_start],
                                        set_={c: table.c[c] + insert.excluded[c] for c in SUM_COLUMNS})


def _postgresql_upsert(table: sa.Table, key: str) -> Any:
    """One statement whatever the rows: every column is one array, unnest()ed into rows. An executemany of a
    thousand rows of 34 parameters cost the agent ~0.1 s of CPU per step here (2.7 s in all), and psycopg's
    dumping of Python lists as arrays as much; so each array goes as the text of an array literal, joined in C."""
    arrays = ", ".join(f"CAST(:{c} AS {'double precision' if c in _FLOAT_COLUMNS else 'integer'}[])"
                       for c in (key, *SUM_COLUMNS))
    name, sums = table.name, ", ".join(SUM_COLUMNS)
    updates = ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in SUM_COLUMNS)
    # Names from the models and SUM_COLUMNS only; every value is a bound parameter.
    insert = f"INSERT INTO {name} (bucket_start, {key}, {sums})"
    select = f"SELECT CAST(:bucket_start AS timestamp), rows.* FROM unnest({arrays}) AS rows"  # noqa: S608
    return sa.text(f"{insert} {select} ON CONFLICT ({key}, bucket_start) DO UPDATE SET {updates}")


def _array_text(values: Iterable[int | float]) -> str:
    """An array literal ('{1,2,3}') of numbers: repr() of an int or a float is valid PostgreSQL input."""
    return "{" + ",".join(map(repr, values)) + "}"


def _add(session: so.Session, table: sa.Table, key: str, bucket: dt.datetime,
         figures: list[tuple[int, dict[str, Any]]]) -> None:
    if not figures:
        return
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get((dialect, table.name))
    if stmt is None:
        if dialect == "postgresql":
            stmt = _postgresql_upsert(table, key)
        elif dialect == "sqlite":
            stmt = _sqlite_upsert(table, key)
        else:
            raise NotImplementedError(f"rollups are written to SQLite or PostgreSQL, not {dialect}")
        _UPSERTS[(dialect, table.name)] = stmt
    if dialect == "postgresql":
        # Stored naive in UTC, as app.db.UTCDateTime stores every time.
        params: dict[str, Any] = {"bucket_start": bucket.astimezone(dt.UTC).replace(tzinfo=None),
                                  key: _array_text(target for target, _ in figures)}
        params.update({c: _array_text(f[c] for _, f in figures) for c in SUM_COLUMNS})
        session.execute(stmt, params)
    else:
        session.execute(stmt, [{key: target, "bucket_start": bucket, **f} for target, f in figures])


def add_step(session: so.Session, measured_at: dt.datetime, links: Sequence[Row], endpoints: Sequence[Row],
             settings: RollupSettings) -> int:
    """Add one step to the hourly and daily rollups: `links` are rows with link_id, up, sent, lost, rtt_median and
    jitter (the columns of LinkSample), `endpoints` rows with endpoint_id, up and rtt, and the echoes' sent, lost
    and jitter where there were echoes. Returns the rows written (a row per target and table)."""
    hour, day = hour_start(measured_at), local_day_start(measured_at, settings.zone)
    link_figures = [(row["link_id"], _figures(row, "rtt_median")) for row in links]
    endpoint_figures = [(row["endpoint_id"], _figures(row, "rtt")) for row in endpoints]
    for table, key, bucket, figures in ((LinkRollupHourly.__table__, "link_id", hour, link_figures),
                                        (EndpointRollupHourly.__table__, "endpoint_id", hour, endpoint_figures),
                                        (LinkRollupDaily.__table__, "link_id", day, link_figures),
                                        (EndpointRollupDaily.__table__, "endpoint_id", day, endpoint_figures)):
        _add(session, table, key, bucket, figures)
    return 2 * (len(link_figures) + len(endpoint_figures))


def echo_figures(echo: Any) -> dict[str, Any]:
    """The echoes' figures an endpoint's rollups add (its samples keep the median only): an EchoResult, or None
    when no echoes were sent to it."""
    if echo is None:
        return {}
    return {"sent": echo.sent, "lost": echo.lost, "jitter": echo.jitter}


def hourly_cutoff(now: dt.datetime, settings: RollupSettings) -> dt.datetime:
    """Hourly rows starting before this are pruned: ROLLUP_HOURLY_DAYS are kept, in whole hours."""
    return hour_start(now) - dt.timedelta(days=settings.hourly_days)


def daily_cutoff(now: dt.datetime, settings: RollupSettings) -> dt.datetime:
    """Daily rows starting before this are pruned: the current local month and the ROLLUP_DAILY_MONTHS before it
    are kept whole, so that the same month a year ago can always be reported."""
    local = now.astimezone(settings.zone)
    months = local.year * 12 + (local.month - 1) - settings.daily_months
    first = dt.datetime(months // 12, months % 12 + 1, 1, tzinfo=settings.zone)
    return first.astimezone(dt.UTC)


def _prune(session: so.Session, table: sa.Table, key: str, before: dt.datetime, limit: int) -> int:
    oldest = sa.select(table.c[key], table.c.bucket_start).where(table.c.bucket_start < before).limit(limit)
    result = session.execute(sa.delete(table).where(sa.tuple_(table.c[key], table.c.bucket_start).in_(oldest)))
    return int(result.rowcount or 0)


def prune(session: so.Session, now: dt.datetime, settings: RollupSettings, limit: int = PRUNE_BATCH) -> int:
    """Delete rollups older than their retention, at most `limit` rows per table (a backlog goes over a few
    steps, as the samples' does). Returns the rows deleted."""
    hourly, daily = hourly_cutoff(now, settings), daily_cutoff(now, settings)
    return (_prune(session, LinkRollupHourly.__table__, "link_id", hourly, limit)
            + _prune(session, EndpointRollupHourly.__table__, "endpoint_id", hourly, limit)
            + _prune(session, LinkRollupDaily.__table__, "link_id", daily, limit)
            + _prune(session, EndpointRollupDaily.__table__, "endpoint_id", daily, limit))
