"""bench/availability: a province-wide availability search over fourteen days, as the secretariat runs it.

The demo province (Tuyên Quang: the province hall, its districts and communes), a district busy with four
meetings on the searched day; the proposed meeting takes the whole province from 08:00 to 10:00. Two cases:
slots are found (the search stops at the third free slot), and no slot at all (a commune under maintenance for
a month: every candidate of the fourteen days is tested). Target: well under a second (500 ms). This replaced a
timed assertion in tests/meetings/test_availability.py, which kept the behaviour and dropped the timing.

    python bench/availability.py [--backend sqlite|postgresql|both] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.db import commit_scope, db
from app.meetings import service
from app.meetings.availability import WorkingHours, check_availability
from app.migrate import upgrade
from app.sites.demo import seed
from app.sites.maintenance import create_maintenance
from app.sites.models import Site
from bench.booking import database

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


def _at(day: dt.date, hhmm: str) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=LOCAL)


def measure(app: object, busy: bool, runs: int) -> dict[str, float]:
    today = dt.date.today() + dt.timedelta(days=7)
    day = today + dt.timedelta(days=(7 - today.weekday()) % 7)  # a Monday a week ahead
    hours = WorkingHours.from_settings(app.config)  # type: ignore[attr-defined]
    with app.app_context():  # type: ignore[attr-defined]
        with commit_scope() as session:
            code = {s.code: s for s in session.scalars(sa.select(Site))}
            for start in ("08:00", "10:00", "13:00", "15:00"):
                end = f"{int(start[:2]) + 1}:00"
                service.book_meeting(session, service.BookingRequest(
                    title=f"Họp {start}", host_site_id=code["TQ"].id, site_ids=[code["TQ-YS-TM"].id],
                    starts_at=_at(day, start), ends_at=_at(day, end)))
            if busy:
                create_maintenance(session, "site", code["TQ-SD-TT"].id, _at(day, "00:00"),
                                   _at(day + dt.timedelta(days=30), "00:00"), "Sửa chữa trụ sở", None)
        session = db.session()
        req = service.BookingRequest(title="Giao ban toàn tỉnh", host_site_id=code["TQ"].id,
                                     subtree_ids=[code["TQ"].id], starts_at=_at(day, "08:00"),
                                     ends_at=_at(day, "10:00"))
        check_availability(session, req, hours)  # warm up the statement caches
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            result = check_availability(session, req, hours)
            times.append(time.perf_counter() - began)
        assert (result.suggestions == []) is busy, "the search found what it should not"
        db.session.remove()
    times.sort()
    return {"sites": len(result.sites), "p50_ms": statistics.median(times) * 1000,
            "p95_ms": times[max(0, int(len(times) * 0.95) - 1)] * 1000, "max_ms": times[-1] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"# bench/availability on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
          f"{dt.date.today().isoformat()}")
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        for busy in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                url, drop = database(backend, Path(tmp))
                try:
                    upgrade(url)
                    app = create_app({"INSTANCE_PATH": tmp, "DATABASE_URL": url, "SECRET_KEY": "bench",
                                      "EMBEDDED_WORKER": False, "LOG_LEVEL": "WARNING"})
                    with app.app_context(), commit_scope() as session:
                        seed(session)
                    result = measure(app, busy, args.runs)
                    app.extensions["vcops_engine"].dispose()
                finally:
                    drop()
            case = "no slot in fourteen days" if busy else "slots found"
            print(f"{backend}: province-wide search ({result['sites']} sites), {case}, {args.runs} runs: "
                  f"p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
                  f"(target 500 ms)")


if __name__ == "__main__":
    main()
