"""bench/booking: check-and-book of a 150-site meeting against a national-size dataset.

The dataset: four levels (the Government, 63 provinces, 705 districts, 10,599 communes: 11,368 sites), a
room per site (two at each province hall), a link from each site to its parent, 200 bridges, and
100,000 meetings over a year (each hosted by a province hall with a handful of its districts and
communes), with their rooms and link reservations. Generated directly with bulk inserts.

Each timed run books a meeting of a province hall with 149 sites of its own subtree on a random working
day (full check: rooms, bridge ports, link bandwidth, maintenance; then the inserts), inside a savepoint
that is rolled back, so every run sees the same data. Prints p50/p95 for each backend.

    python bench/booking.py [--backend sqlite|postgresql|both] [--meetings 100000] [--runs 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.db import commit_scope, db
from app.meetings import models as mm
from app.meetings.service import BookingRefused, BookingRequest, book_meeting
from app.migrate import upgrade
from app.sites import models as sm

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
PG_ADMIN = os.environ.get("VCOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
UTC = dt.UTC


def build_tree(rng: random.Random) -> tuple[list[dict], list[dict], list[dict]]:
    """Sites, rooms and links of the country; ids assigned here so paths can be written in one pass."""
    sites, endpoints, links = [], [], []
    next_id = iter(range(1, 10**7))

    def add(code: str, name: str, level: int, parent: dict | None, rooms: int, kbps: int) -> dict:
        sid = next(next_id)
        site = {"id": sid, "code": code, "name": name, "level_id": level, "parent_id": parent["id"] if parent else None,
                "path": f"{parent['path'] if parent else '/'}{sid}/", "address": "", "is_sample": False,
                "status": "active", "notes": "", "created_at": dt.datetime.now(UTC)}
        sites.append(site)
        for r in range(rooms):
            endpoints.append({"site_id": sid, "room_name": f"P{r + 1}", "vendor": "Cisco", "model": "Room Kit",
                              "kind": "room_system", "mgmt_address": "", "mgmt_port": 22, "sip_uri": "",
                              "h323_alias": "", "serial": "", "firmware_version": "", "status": "active",
                              "created_at": dt.datetime.now(UTC)})
        if parent:
            links.append({"code": f"L{sid}", "site_a_id": sid, "address_a": "", "site_b_id": parent["id"],
                          "address_b": "", "provider": "VNPT", "medium": "dedicated", "bandwidth_kbps": kbps,
                          "status": "active", "created_at": dt.datetime.now(UTC)})
        return site

    root = add("VN", "Chính phủ", 1, None, 2, 0)
    districts_left, communes_left = 705, 10_599
    for p in range(63):
        province = add(f"P{p:02d}", f"Tỉnh {p}", 2, root, 2, 200_000)
        n_districts = districts_left // (63 - p)
        districts_left -= n_districts
        n_communes = communes_left // (63 - p)
        communes_left -= n_communes
        for d in range(n_districts):
            district = add(f"P{p:02d}-D{d:02d}", f"Huyện {p}.{d}", 3, province, 1, 40_000)
            for c in range(n_communes // n_districts + (1 if d < n_communes % n_districts else 0)):
                add(f"P{p:02d}-D{d:02d}-C{c:02d}", f"Xã {p}.{d}.{c}", 4, district, 1, 8_000)
    return sites, endpoints, links


def generate(app, n_meetings: int, seed: int = 7) -> dict:
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
        provinces = [s for s in sites if s["level_id"] == 2]
        bridges = [{"name": f"MCU-{i:03d}", "vendor": "Cisco", "model": "CMS", "site_id": provinces[i % 63]["id"],
                    "mgmt_address": "", "sip_address": "", "total_ports": 200 if i < 63 else 100,
                    "status": "active", "created_at": dt.datetime.now(UTC)} for i in range(200)]
        session.execute(sa.insert(sm.Bridge), bridges)
        if session.get_bind().dialect.name == "postgresql":
            for table in ("levels", "sites", "endpoints", "links", "bridges"):
                session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    with app.app_context():
        rooms = dict(db.session.execute(sa.select(sm.Endpoint.site_id, sa.func.min(sm.Endpoint.id))
                                        .group_by(sm.Endpoint.site_id)).all())
        uplinks = dict(db.session.execute(sa.select(sm.Link.site_a_id, sm.Link.id)).all())
        bridge_ids = list(db.session.scalars(sa.select(sm.Bridge.id)))
        db.session.remove()
    by_id = {s["id"]: s for s in sites}
    under: dict[int, list[int]] = {p["id"]: [] for p in provinces}
    for s in sites:
        if s["level_id"] > 2:
            under[int(s["path"].strip("/").split("/")[1])].append(s["id"])
    year_start = dt.date.today() + dt.timedelta(days=1)
    workdays = [year_start + dt.timedelta(days=i) for i in range(365)
                if (year_start + dt.timedelta(days=i)).weekday() < 5]

    meeting_rows, occ_rows, part_rows, link_rows = [], [], [], []
    for m in range(1, n_meetings + 1):
        province = provinces[rng.randrange(63)]
        day = rng.choice(workdays)
        start = dt.datetime.combine(day, dt.time(rng.choice([7, 8, 9, 10, 13, 14, 15]), rng.choice([0, 30])),
                                    tzinfo=LOCAL).astimezone(UTC)
        end = start + dt.timedelta(minutes=rng.choice([60, 90, 120]))
        members = [province["id"], *rng.sample(under[province["id"]], rng.randint(2, 12))]
        meeting_rows.append({"id": m, "uid": f"{uuid.UUID(int=m)}@bench", "title": f"Họp {m}", "chair": "",
                             "host_site_id": province["id"], "classification": "normal", "notes": "",
                             "setup_minutes": 60, "bitrate_kbps": 2000, "rrule": "", "sequence": 0,
                             "conference_number": f"{m:06d}", "pin": "000000", "created_at": start})
        occ_rows.append({"id": m, "meeting_id": m, "recurrence_id": None, "starts_at": start, "ends_at": end,
                         "setup_starts_at": start - dt.timedelta(hours=1), "status": "scheduled",
                         "bridge_id": bridge_ids[rng.randrange(len(bridge_ids))], "ports": len(members),
                         "sequence": 0})
        load: dict[int, int] = {}
        for sid in members:
            part_rows.append({"occurrence_id": m, "site_id": sid, "endpoint_id": rooms[sid], "confirmed_by": ""})
            node = by_id[sid]
            while node["id"] != province["id"]:
                load[uplinks[node["id"]]] = load.get(uplinks[node["id"]], 0) + 2400
                node = by_id[node["parent_id"]]
        link_rows.extend({"occurrence_id": m, "link_id": lid, "kbps": kbps,
                          "starts_at": start - dt.timedelta(hours=1), "ends_at": end} for lid, kbps in load.items())
    with app.app_context(), commit_scope() as session:
        for model, rows in ((mm.Meeting, meeting_rows), (mm.Occurrence, occ_rows), (mm.Participation, part_rows),
                            (mm.LinkReservation, link_rows)):
            for i in range(0, len(rows), 20_000):
                session.execute(sa.insert(model), rows[i:i + 20_000])
        if session.get_bind().dialect.name == "postgresql":
            for table in ("meetings", "occurrences", "participations", "link_reservations"):
                session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            session.execute(sa.text("ANALYZE"))
        else:
            session.execute(sa.text("ANALYZE"))
    return {"sites": len(sites), "rooms": len(endpoints), "links": len(links), "bridges": len(bridges),
            "meetings": n_meetings, "participations": len(part_rows), "link_reservations": len(link_rows),
            "seconds": time.perf_counter() - started, "provinces": provinces, "under": under, "workdays": workdays}


def describe(app) -> dict:
    """What time_bookings needs, read back from a database generated earlier."""
    with app.app_context():
        session = db.session()
        provinces = [{"id": i} for i in session.scalars(sa.select(sm.Site.id).where(sm.Site.level_id == 2))]
        under: dict[int, list[int]] = {p["id"]: [] for p in provinces}
        for sid, path in session.execute(sa.select(sm.Site.id, sm.Site.path).where(sm.Site.level_id > 2)):
            under[int(path.strip("/").split("/")[1])].append(sid)
        db.session.remove()
    start = dt.date.today() + dt.timedelta(days=1)
    workdays = [start + dt.timedelta(days=i) for i in range(365) if (start + dt.timedelta(days=i)).weekday() < 5]
    return {"provinces": provinces, "under": under, "workdays": workdays}


def time_bookings(app, data: dict, runs: int, seed: int = 11) -> dict:
    rng = random.Random(seed)
    timings, booked, refused = [], 0, 0
    with app.app_context():
        session = db.session()
        for _ in range(runs):
            province = rng.choice(data["provinces"])
            members = rng.sample(data["under"][province["id"]], 149)
            day = rng.choice(data["workdays"][5:])
            start = dt.datetime.combine(day, dt.time(16, 0), tzinfo=LOCAL)  # busy afternoons before it
            req = BookingRequest(title="Hội nghị toàn tỉnh", host_site_id=province["id"], site_ids=members,
                                 starts_at=start, ends_at=start + dt.timedelta(hours=2))
            outer = session.begin_nested()
            began = time.perf_counter()
            try:
                book_meeting(session, req)
                booked += 1
            except BookingRefused:
                refused += 1
            timings.append(time.perf_counter() - began)
            outer.rollback()
        session.rollback()
        db.session.remove()
    timings.sort()
    return {"runs": runs, "booked": booked, "refused": refused,
            "p50_ms": 1000 * statistics.median(timings),
            "p95_ms": 1000 * timings[max(0, int(round(0.95 * len(timings))) - 1)],
            "max_ms": 1000 * timings[-1]}


def database(backend: str, tmp: Path) -> tuple[str, callable]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    name = f"vcops_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        db.session.remove()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--meetings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--keep", metavar="URL_FILE", help="keep the PostgreSQL database; write its URL here")
    parser.add_argument("--reuse", metavar="URL", help="time against a database generated earlier with --keep")
    args = parser.parse_args()
    if args.reuse:
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app({"INSTANCE_PATH": tmp, "DATABASE_URL": args.reuse, "SECRET_KEY": "bench",
                              "EMBEDDED_WORKER": False, "LOG_LEVEL": "WARNING"})
            result = time_bookings(app, describe(app), args.runs)
        print(f"reused: {result}")
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"# bench/booking on {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), "
          f"{dt.date.today().isoformat()}")
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = database(backend, Path(tmp))
            if args.keep and backend == "postgresql":
                Path(args.keep).write_text(url)
                drop = lambda: None  # noqa: E731
            try:
                upgrade(url)
                app = create_app({"INSTANCE_PATH": tmp, "DATABASE_URL": url, "SECRET_KEY": "bench",
                                  "EMBEDDED_WORKER": False, "LOG_LEVEL": "WARNING"})
                data = generate(app, args.meetings)
                result = time_bookings(app, data, args.runs)
                app.extensions["vcops_engine"].dispose()
            finally:
                drop()
        print(f"{backend}: {data['sites']} sites, {data['rooms']} rooms, {data['links']} links, "
              f"{data['bridges']} bridges, {data['meetings']} meetings ({data['participations']} participations, "
              f"{data['link_reservations']} link reservations) generated in {data['seconds']:.0f} s")
        print(f"{backend}: check-and-book of a 150-site meeting, {result['runs']} runs "
              f"({result['booked']} booked, {result['refused']} refused): p50 {result['p50_ms']:.1f} ms, "
              f"p95 {result['p95_ms']:.1f} ms, max {result['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
