"""bench/reports: the network figures of the reports against a national year of probe rollups, and what writing
the rollups costs the probe agent.

The dataset: the country of bench/booking.py (the Government, 63 provinces, 705 districts, 10,599 communes:
11,368 sites, a link from each site to its parent: 11,367 links) and the first room of each province hall
(63 endpoints): 11,430 targets. Rollups: a daily row per target and local day of 2026 (365 days: 4,171,950 rows),
and hourly rows for one province's targets for the 90 days to 31 December 2026 (ROLLUP_HOURLY_DAYS), written with
COPY (PostgreSQL) or one executemany (SQLite); the figures in them come from a pool of generated days (mostly up,
a few hours down, lossy spells, round trips over four to six histogram buckets). Timed: `network_figures` for
the province's November 2026 (daily rows, and a period that is not whole days: hourly rows) and for the country's
year 2026 (daily rows); then the size of the rollup tables and their indexes on disk.

The probe: an agent's steps to N addresses of a probe lab (tests/support/netlab.py, needs root), production
echoes (20, 1 s apart), with the rollups written and without (`save_step` given no rollup settings),
alternately; CPU of the process per step (resource.getrusage, user + system), like bench/probe.py.

    .venv/bin/python bench/reports.py                          # both databases, probe with 1,000 addresses
    .venv/bin/python bench/reports.py --backend postgresql --no-probe
    .venv/bin/python bench/reports.py --probe-only --targets 500 --steps 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from booking import build_tree, database  # bench/booking.py: the national tree

from app import create_app
from app.db import commit_scope, db
from app.migrate import upgrade
from app.monitoring import rollups
from app.monitoring.agent import probe as probe_module
from app.monitoring.models import RTT_BUCKETS
from app.reports.network import network_figures
from app.reports.periods import month_bounds, year_bounds
from app.sites import models as sm

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR = 2026
COLUMNS = ("bucket_start", "steps_up", "steps_down", "sent", "lost", "rtt_sum", "rtt_count", "jitter_sum",
           "jitter_count", *rollups.BUCKET_COLUMNS)
TABLES = ("link_rollups_daily", "endpoint_rollups_daily", "link_rollups_hourly", "endpoint_rollups_hourly")


def make_app(url: str, tmp: str, **config: Any) -> Any:
    return create_app({"INSTANCE_PATH": tmp, "DATABASE_URL": url, "SECRET_KEY": "bench", "REDIS_URL": "",
                       "EMBEDDED_WORKER": False, **config})


def templates(rng: random.Random, steps: int, n: int = 2000) -> list[tuple]:
    """Figures of one bucket of `steps` steps (a day: 1,440; an hour: 60), n of them to pick from."""
    pool = []
    for _ in range(n):
        down = 0 if rng.random() < 0.9 else rng.randint(1, steps // 4)
        up = steps - down
        lost = down * 20 + (0 if rng.random() < 0.7 else rng.randint(1, up // 10 + 1))
        centre = rng.randint(6, 14)  # 8 ms .. 128 ms
        counts = [0] * RTT_BUCKETS
        left = up
        for offset, share in ((-1, 0.2), (0, 0.6), (1, 0.15)):
            counts[centre + offset] = int(up * share)
            left -= counts[centre + offset]
        counts[centre + 2] = left
        rtt_sum = sum(c * 0.001 * 2 ** ((i - 0.5) / 2) for i, c in enumerate(counts))
        pool.append((up, down, steps * 20, lost, rtt_sum, up, up * 0.002, up, *counts))
    return pool


def targets(session: Any) -> tuple[list[int], list[int], int, list[int], list[int]]:
    """Every link, the province halls' first rooms, and one province's links and endpoints (its id too)."""
    links = list(session.scalars(sa.select(sm.Link.id).order_by(sm.Link.id)))
    halls = list(session.scalars(sa.select(sa.func.min(sm.Endpoint.id)).join(sm.Site)
                                 .where(sm.Site.level_id == 2).group_by(sm.Endpoint.site_id)))
    province = session.scalar(sa.select(sm.Site).where(sm.Site.code == "P17"))
    under = set(session.scalars(sa.select(sm.Site.id).where(sm.Site.path.startswith(province.path))))
    province_links = list(session.scalars(sa.select(sm.Link.id).where(sm.Link.site_a_id.in_(under))))
    province_endpoints = [e for e in halls if session.get(sm.Endpoint, e).site_id in under]
    return links, halls, province.id, province_links, province_endpoints


def stored(dialect: str, buckets: list[dt.datetime]) -> list[Any]:
    """Bucket starts as the driver takes them: naive UTC datetimes for psycopg; on SQLite the text SQLAlchemy's
    DateTime writes, so that the reports' bound parameters compare with it."""
    return buckets if dialect == "postgresql" else [b.strftime("%Y-%m-%d %H:%M:%S.%f") for b in buckets]


def write_rows(session: Any, table: str, key: str, rows: list[tuple]) -> None:
    """Bulk rows (target id, bucket_start, sums...) in the columns' order: COPY on PostgreSQL, executemany on
    SQLite."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({key}, {', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        raw.executemany(f"INSERT INTO {table} ({key}, {', '.join(COLUMNS)}) VALUES ({marks})", rows)


def generate(app: Any, seed: int = 5) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.perf_counter()
    with app.app_context(), commit_scope() as session:
        session.execute(sa.insert(sm.Level), [
            {"id": 1, "code": "national", "name": "Trung ương", "rank": 1},
            {"id": 2, "code": "province", "name": "Tỉnh", "rank": 2},
            {"id": 3, "code": "district", "name": "Huyện", "rank": 3},
            {"id": 4, "code": "commune", "name": "Xã", "rank": 4}])
        sites, endpoints, links = build_tree(rng)
        session.execute(sa.insert(sm.Site), sites)
        session.execute(sa.insert(sm.Endpoint), endpoints)
        session.execute(sa.insert(sm.Link), links)
    with app.app_context():
        link_ids, hall_ids, province_id, province_links, province_endpoints = targets(db.session)
        db.session.remove()
    size_before = size_on_disk(app)
    daily, hourly = templates(rng, 1440), templates(rng, 60)
    first_day = dt.datetime(YEAR, 1, 1, tzinfo=LOCAL).astimezone(dt.UTC).replace(tzinfo=None)
    days = [first_day + dt.timedelta(days=d) for d in range(365)]
    hourly_end = dt.datetime(YEAR + 1, 1, 1, tzinfo=LOCAL).astimezone(dt.UTC).replace(tzinfo=None)
    hours = [hourly_end - dt.timedelta(hours=h) for h in range(90 * 24, 0, -1)]
    counts = {}
    with app.app_context(), commit_scope() as session:
        dialect = session.get_bind().dialect.name
        days, hours = stored(dialect, days), stored(dialect, hours)
        # A bulk load: the index on bucket_start is built once afterwards, not row by row in random order.
        for table in TABLES:
            session.execute(sa.text(f"DROP INDEX ix_{table}_bucket"))
        for table, key, ids, buckets, pool in (
                ("link_rollups_daily", "link_id", link_ids, days, daily),
                ("endpoint_rollups_daily", "endpoint_id", hall_ids, days, daily),
                ("link_rollups_hourly", "link_id", province_links, hours, hourly),
                ("endpoint_rollups_hourly", "endpoint_id", province_endpoints, hours, hourly)):
            written = 0
            for chunk in range(0, len(ids), 500):  # a few hundred thousand rows in memory at a time
                rows = [(target, bucket, *rng.choice(pool)) for target in ids[chunk:chunk + 500] for bucket in buckets]
                write_rows(session, table, key, rows)
                written += len(rows)
            counts[table] = written
        for table in TABLES:
            session.execute(sa.text(f"CREATE INDEX ix_{table}_bucket ON {table} (bucket_start)"))
    with app.app_context(), commit_scope() as session:
        session.execute(sa.text("ANALYZE"))
    return {"links": len(link_ids), "endpoints": len(hall_ids), "province_id": province_id,
            "province_links": len(province_links), "province_endpoints": len(province_endpoints),
            "rows": counts, "seconds": time.perf_counter() - started, "size_before": size_before}


def size_on_disk(app: Any) -> dict[str, int]:
    """Bytes of each rollup table with its indexes."""
    with app.app_context():
        session = db.session
        if session.get_bind().dialect.name == "postgresql":
            found = {t: session.scalar(sa.text(f"SELECT pg_total_relation_size('{t}')")) for t in TABLES}
        else:
            found = {t: int(session.scalar(sa.text(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :t OR name LIKE :auto OR name = :ix"),
                {"t": t, "auto": f"sqlite_autoindex_{t}_%", "ix": f"ix_{t}_bucket"})) for t in TABLES}
        db.session.remove()
        return found


def timed(app: Any, label: str, start: dt.datetime, end: dt.datetime, subtree: int | None, runs: int = 3
          ) -> dict[str, Any]:
    timings, report = [], None
    for _ in range(runs):
        with app.app_context():
            began = time.perf_counter()
            report = network_figures(db.session, start, end, subtree)
            timings.append(time.perf_counter() - began)
            db.session.remove()
    return {"label": label, "best": min(timings), "worst": max(timings), "granularity": report.granularity,
            "links": len(report.links), "endpoints": len(report.endpoints), "areas": len(report.areas),
            "availability": report.availability}


def bench_reports(backend: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vcops-bench-reports-") as tmp:
        url, drop = database(backend, Path(tmp))
        try:
            upgrade(url)
            app = make_app(url, tmp)
            data = generate(app)
            rows = data["rows"]
            print(f"\n[{backend}] {data['links']:,} links + {data['endpoints']} endpoints; rows: "
                  + ", ".join(f"{t} {n:,}" for t, n in rows.items()) + f"; generated in {data['seconds']:.0f} s")
            november = month_bounds(YEAR, 11, LOCAL)
            odd = (november[0] + dt.timedelta(hours=7), november[1] + dt.timedelta(hours=7))  # 07:00 local
            for result in (timed(app, "province, November (daily)", *november, data["province_id"]),
                           timed(app, "province, November from 07:00 (hourly)", *odd, data["province_id"]),
                           timed(app, "country, year 2026 (daily)", *year_bounds(YEAR, LOCAL), None, runs=2)):
                print(f"  {result['label']:42} best {result['best']:6.2f} s, worst {result['worst']:6.2f} s "
                      f"({result['granularity']}: {result['links']:,} links, {result['endpoints']} endpoints, "
                      f"{result['areas']:,} areas, availability {result['availability']:.3f}%)")
            size = size_on_disk(app)
            for table in TABLES:
                per_row = size[table] / rows[table] if rows[table] else 0
                print(f"  {table:26} {size[table] / 2**20:9.1f} MiB on disk, {per_row:5.0f} bytes a row")
            app.extensions["vcops_engine"].dispose()
        finally:
            drop()


# ---------------------------------------------------------------- the probe's CPU with and without rollups

class _NoRollups:
    """Stands in for RollupSettings in the agent: `save_step` is then given none and writes no rollups."""

    @staticmethod
    def of(_config: Any) -> None:
        return None


def bench_probe(backend: str, n_targets: int, steps: int) -> None:
    from app.sites import equipment
    from app.sites.demo import seed
    from app.sites.models import Endpoint, Link, LinkMedium, Site, Status
    from tests.support.netlab import lab

    with tempfile.TemporaryDirectory(prefix="vcops-bench-probe-") as tmp, lab(n_targets) as probe_lab:
        url, drop = database(backend, Path(tmp))
        try:
            upgrade(url)
            app = make_app(url, tmp)
            with app.app_context(), commit_scope() as session:
                seed(session)
                session.execute(sa.update(Link).values(status=Status.RETIRED))
                session.execute(sa.update(Endpoint).values(status=Status.RETIRED))
                sites = list(session.scalars(sa.select(Site).where(Site.parent_id.is_not(None)).order_by(Site.code)))
                for i, address in enumerate(probe_lab.addresses):
                    site = sites[i % len(sites)]
                    equipment.save_link(session, {
                        "code": f"LAB-{i}", "site_a_id": site.id, "address_a": address, "site_b_id": site.parent_id,
                        "address_b": "", "medium": LinkMedium.DEDICATED, "bandwidth_kbps": 8000})
            agent = probe_module.Agent(app, name="bench")
            agent.step()  # warm: the statements compiled, the rows of this hour and day made
            cpu: dict[str, list[float]] = {"with rollups": [], "without": []}
            saved = probe_module.RollupSettings
            try:
                for _ in range(steps):
                    for mode in cpu:
                        probe_module.RollupSettings = saved if mode == "with rollups" else _NoRollups
                        before = resource.getrusage(resource.RUSAGE_SELF)
                        agent.step()
                        after = resource.getrusage(resource.RUSAGE_SELF)
                        cpu[mode].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            finally:
                probe_module.RollupSettings = saved
                agent.close()
            with_, without = (sum(v) / len(v) for v in cpu.values())
            print(f"\n[{backend}] probe step, {n_targets} links x 20 echoes 1 s apart, {steps} steps each, "
                  f"alternately: CPU {with_:.3f} s with rollups, {without:.3f} s without: "
                  f"{100 * (with_ / without - 1):+.1f}% (target < +10%)")
            pairs = zip(*cpu.values(), strict=True)
            print("  per step with / without: " + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in pairs))
            app.extensions["vcops_engine"].dispose()
        finally:
            drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--no-probe", action="store_true", help="the reports only")
    parser.add_argument("--probe-only", action="store_true", help="the probe's CPU only")
    parser.add_argument("--targets", type=int, default=1000, help="lab addresses the probe steps measure")
    parser.add_argument("--steps", type=int, default=3, help="probe steps with and without rollups, each")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    for backend in backends:
        if not args.probe_only:
            bench_reports(backend)
        if not args.no_probe:
            if os.geteuid() != 0:
                print("the probe part needs root (a network namespace and raw ICMP sockets): skipped")
            else:
                bench_probe(backend, args.targets, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
