"""The state exporter as the alert rules rely on it: the link tree with backups and the uplinks above each link,
the sites of the meetings about to start, the sites under maintenance; read from the database once per refresh
and served as the same page to every scrape; `vcops exporter` runs as a process."""

from __future__ import annotations

import datetime as dt
import http.client
import re
import subprocess
import sys
import time
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.calendar.models import Delivery, DeliveryKind, DeliveryStatus
from app.db import commit_scope, db
from app.meetings import service as meetings
from app.meetings.models import Occurrence, OccurrenceStatus
from app.meetings.service import BookingRequest
from app.monitoring.exporter import collect_state, refresh
from app.monitoring.exposition import MetricsPage, serve
from app.sites import equipment, maintenance
from app.sites.models import Bridge, Endpoint, Link, LinkMedium, Site, Status
from tests.monitoring.promlab import REPO, vcops_environment, vcops_exporter

Samples = dict[str, list[tuple[dict[str, str], float]]]


def by_name(families: list[Any]) -> Samples:
    return {f.name: f.samples for f in families}


def site(session: Any, code: str) -> Site:
    found = session.scalar(sa.select(Site).where(Site.code == code))
    assert found is not None, code
    return found


def uplink(session: Any, code: str) -> Link:
    child = site(session, code)
    return session.scalar(sa.select(Link).where(Link.site_a_id == child.id, Link.site_b_id == child.parent_id))


def labels_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return [labels for labels, _value in samples[name]]


NOW = dt.datetime(2031, 3, 3, 1, 0, tzinfo=dt.UTC)  # a Monday, 08:00 in Vietnam


# ---------------------------------------------------------------- the link tree

def test_the_link_tree_names_backups_and_the_uplinks_above_each_link(session):
    district, commune = uplink(session, "TQ-LB"), uplink(session, "TQ-LB-LC")
    backup = equipment.save_link(session, {"code": "TQ-LB-4G", "site_a_id": site(session, "TQ-LB").id,
                                       "address_a": "198.18.200.1", "site_b_id": site(session, "TQ").id,
                                       "medium": LinkMedium.MOBILE_BACKUP, "bandwidth_kbps": 4000})
    retired = uplink(session, "TQ-NH-TT")
    equipment.retire(session, retired)

    state = by_name(collect_state(session, NOW))

    links = {labels["link"]: labels for labels in labels_of(state, "vcops_link_info")}
    assert links[district.code] == {"link": district.code, "site": "TQ-LB", "parent_site": "TQ", "backup_of": ""}
    assert links[backup.code] == {"link": "TQ-LB-4G", "site": "TQ-LB", "parent_site": "TQ",
                                  "backup_of": district.code}
    assert links[commune.code] == {"link": commune.code, "site": "TQ-LB-LC", "parent_site": "TQ-LB",
                                   "backup_of": ""}
    assert retired.code not in links
    ancestors = labels_of(state, "vcops_link_ancestor_info")
    # A commune's link lies below its district's primary uplink (not below the backup); a district's link has
    # nothing above it but the province, which has no uplink.
    assert {"link": commune.code, "ancestor": district.code} in ancestors
    assert not [a for a in ancestors if a["link"] in (district.code, backup.code)]
    assert not [a for a in ancestors if a["ancestor"] == backup.code]
    site_info = {labels["site"]: labels for labels in labels_of(state, "vcops_site_info")}
    assert site_info["TQ"] == {"site": "TQ", "parent_site": "", "uplink": ""}
    assert site_info["TQ-LB"] == {"site": "TQ-LB", "parent_site": "TQ", "uplink": district.code}
    assert site_info["TQ-NH-TT"]["uplink"] == ""  # its only link is retired
    assert all(value == 1.0 for name in ("vcops_link_info", "vcops_link_ancestor_info", "vcops_site_info")
               for _labels, value in state[name])


def test_every_active_endpoint_is_listed_with_its_site(session):
    retired = session.scalar(sa.select(Endpoint).join(Site).where(Site.code == "TQ-SD-TT"))
    equipment.retire(session, retired)
    active = session.execute(sa.select(Endpoint.id, Site.code).join(Site)
                             .where(Endpoint.status == Status.ACTIVE)).all()

    state = by_name(collect_state(session, NOW))

    assert sorted((lbl["endpoint"], lbl["site"]) for lbl in labels_of(state, "vcops_endpoint_info")) == \
        sorted((str(i), code) for i, code in active)
    assert str(retired.id) not in {lbl["endpoint"] for lbl in labels_of(state, "vcops_endpoint_info")}


# ---------------------------------------------------------------- meetings

def book(session: Any, title: str, codes: list[str], starts_at: dt.datetime, **kw: Any) -> Occurrence:
    meeting = meetings.book_meeting(session, BookingRequest(
        title=title, host_site_id=site(session, "TQ").id, site_ids=[site(session, c).id for c in codes],
        starts_at=starts_at, ends_at=starts_at + dt.timedelta(hours=2), **kw), now=NOW)
    return meeting.occurrences[0]


def meeting_sites(state: Samples, occurrence: Occurrence) -> dict[str, tuple[float, float]]:
    starts = {lbl["site"]: v for lbl, v in state["vcops_meeting_site_start_timestamp_seconds"]
              if lbl["meeting"] == str(occurrence.id)}
    ends = {lbl["site"]: v for lbl, v in state["vcops_meeting_site_end_timestamp_seconds"]
            if lbl["meeting"] == str(occurrence.id)}
    assert starts.keys() == ends.keys()
    return {code: (starts[code], ends[code]) for code in starts}


def test_each_site_of_a_meeting_within_the_horizon_is_listed_with_its_start_and_end(session):
    start = NOW + dt.timedelta(hours=2)
    occurrence = book(session, "Giao ban quý I", ["TQ-LB", "TQ-LB-LC"], start)
    expected = (start.timestamp(), (start + dt.timedelta(hours=2)).timestamp())

    state = by_name(collect_state(session, NOW))

    # The host site takes part too.
    assert meeting_sites(state, occurrence) == {"TQ": expected, "TQ-LB": expected, "TQ-LB-LC": expected}
    assert ({"meeting": str(occurrence.id), "title": "Giao ban quý I"}, 1.0) in state["vcops_meeting_info"]


def test_a_meeting_is_listed_from_the_horizon_until_it_ends(session):
    start = NOW + dt.timedelta(hours=2)
    occurrence = book(session, "Họp trực tuyến", ["TQ-HY"], start)

    def listed(now: dt.datetime, horizon_hours: float = 12) -> bool:
        return bool(meeting_sites(by_name(collect_state(session, now, horizon_hours)), occurrence))

    assert not listed(start - dt.timedelta(hours=12, minutes=1))
    assert listed(start - dt.timedelta(hours=12))
    assert not listed(start - dt.timedelta(hours=3), horizon_hours=2)
    assert listed(start + dt.timedelta(hours=1))  # under way
    assert not listed(start + dt.timedelta(hours=2))  # over


def test_cancelled_and_draft_occurrences_are_not_listed(session):
    start = NOW + dt.timedelta(hours=1)
    cancelled = book(session, "Hủy", ["TQ-CH"], start)
    meetings.cancel_occurrence(session, cancelled, now=NOW)
    draft = book(session, "Nháp", ["TQ-YS"], start + dt.timedelta(hours=3), draft=True)
    kept = book(session, "Giữ", ["TQ-SD"], start + dt.timedelta(hours=6))
    assert cancelled.status is OccurrenceStatus.CANCELLED and draft.status is OccurrenceStatus.DRAFT

    state = by_name(collect_state(session, NOW))

    listed = {lbl["meeting"] for lbl in labels_of(state, "vcops_meeting_site_start_timestamp_seconds")}
    assert str(kept.id) in listed
    assert str(cancelled.id) not in listed and str(draft.id) not in listed
    assert {lbl["meeting"] for lbl in labels_of(state, "vcops_meeting_info")} == listed


# ---------------------------------------------------------------- maintenance

def test_maintenance_on_a_site_its_endpoint_or_its_uplink_marks_that_site(session):
    def window(kind: str, target_id: int, starts: dt.datetime, hours: float = 2) -> None:
        maintenance.create_maintenance(session, kind, target_id, starts, starts + dt.timedelta(hours=hours),
                                 "Bảo trì định kỳ", None)

    endpoint = session.scalar(sa.select(Endpoint).join(Site).where(Site.code == "TQ-HY-TS"))
    bridge = session.scalar(sa.select(Bridge))
    window("site", site(session, "TQ-CH").id, NOW - dt.timedelta(hours=1))
    window("endpoint", endpoint.id, NOW - dt.timedelta(minutes=5))
    window("link", uplink(session, "TQ-YS-MB").id, NOW)  # starts now: active
    window("link", uplink(session, "TQ-SD").id, NOW + dt.timedelta(minutes=1))  # not yet
    window("site", site(session, "TQ-NH").id, NOW - dt.timedelta(hours=2), hours=2)  # just over
    window("bridge", bridge.id, NOW - dt.timedelta(hours=1))  # a bridge is not a site's

    state = by_name(collect_state(session, NOW))

    assert state["vcops_maintenance_active"] == [({"site": "TQ-CH"}, 1.0), ({"site": "TQ-HY-TS"}, 1.0),
                                                 ({"site": "TQ-YS-MB"}, 1.0)]


# ---------------------------------------------------------------- the page

# ---------------------------------------------------------------- invitations failed for good

def test_invitations_failed_for_good_are_counted_per_meeting_until_the_meeting_is_over(session):
    start = NOW + dt.timedelta(days=2)
    occurrence = book(session, "Hội nghị toàn tỉnh", ["TQ-NH"], start)
    clean = book(session, "Giao ban", ["TQ-CH"], start + dt.timedelta(hours=3))
    for email, status, permanent in (("a@example.com", DeliveryStatus.FAILED, True),  # refused with a 5xx
                                     ("b@example.com", DeliveryStatus.FAILED, True),  # out of attempts
                                     ("c@example.com", DeliveryStatus.FAILED, False),  # still being retried
                                     ("d@example.com", DeliveryStatus.SENT, False)):
        session.add(Delivery(batch="b", meeting_id=occurrence.meeting_id, kind=DeliveryKind.REQUEST, email=email,
                             status=status, permanent=permanent))
    session.add(Delivery(batch="c", meeting_id=clean.meeting_id, kind=DeliveryKind.REQUEST, email="e@example.com",
                         status=DeliveryStatus.SENT))
    session.flush()

    state = by_name(collect_state(session, NOW))
    assert state["vcops_invitations_failed_for_good"] == [
        ({"meeting_id": str(occurrence.meeting_id), "title": "Hội nghị toàn tỉnh"}, 2.0)]
    # Once the meeting is over, a missing invitation no longer matters: the alert clears.
    after = start + dt.timedelta(hours=2)
    assert by_name(collect_state(session, after))["vcops_invitations_failed_for_good"] == []


def test_the_page_is_valid_exposition_and_scrapes_never_read_the_database(app, session):
    book(session, 'Họp "khẩn" về lũ\\bão', ["TQ-LB"], NOW + dt.timedelta(hours=1))  # quotes and a backslash: escaped
    page = MetricsPage()
    refresh(page, session, NOW, 12)
    queries: list[str] = []
    engine = app.extensions["vcops_engine"]

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        queries.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with serve(page, "127.0.0.1:0") as server:
            bodies = []
            for _ in range(3):
                conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
                conn.request("GET", "/metrics")
                bodies.append(conn.getresponse().read().decode())
                conn.close()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert queries == []
    assert bodies[0] == bodies[1] == bodies[2]
    parsed = {f.name: f for f in text_string_to_metric_families(bodies[0])}
    assert {"vcops_link_info", "vcops_link_ancestor_info", "vcops_site_info", "vcops_endpoint_info",
            "vcops_meeting_site_start_timestamp_seconds", "vcops_meeting_site_end_timestamp_seconds",
            "vcops_meeting_info", "vcops_maintenance_active", "vcops_exporter_refresh_timestamp_seconds"} <= set(parsed)
    assert 'Họp "khẩn" về lũ\\bão' in {s.labels["title"] for s in parsed["vcops_meeting_info"].samples}
    assert parsed["vcops_exporter_refresh_timestamp_seconds"].samples[0].value == NOW.timestamp()


# ---------------------------------------------------------------- the command

def _scrape(url: str) -> str:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match, url
    conn = http.client.HTTPConnection(match[1], int(match[2]), timeout=5)
    try:
        conn.request("GET", match[3])
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@pytest.fixture
def seeded_app(fresh_app):
    """An app on a database of its own, committed for real, holding the demo province."""
    from app.sites.demo import seed

    app = fresh_app("sqlite")
    with app.app_context():
        with commit_scope() as session:
            seed(session)
        db.session.remove()
    return app


def test_vcops_exporter_serves_the_database_and_sees_a_new_window_within_a_refresh(seeded_app):
    with vcops_exporter(seeded_app, "--refresh-seconds", "0.5") as url:
        body = _scrape(url)
        assert 'vcops_site_info{site="TQ-LB",parent_site="TQ",uplink="TQ-LB-TQ"} 1.0' in body
        assert "vcops_maintenance_active{" not in body
        with seeded_app.app_context():
            with commit_scope() as session:
                maintenance.create_maintenance(session, "site", site(session, "TQ-LB-LC").id,
                                         dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
                                         dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), "Thay bộ định tuyến", None)
            db.session.remove()
        deadline = time.monotonic() + 10
        while 'vcops_maintenance_active{site="TQ-LB-LC"} 1.0' not in body:
            assert time.monotonic() < deadline, f"the new window never showed:\n{body}"
            time.sleep(0.2)
            body = _scrape(url)
    # Stopped by SIGTERM (the block checked it exited cleanly): the port is closed.
    with pytest.raises(OSError):
        _scrape(url)


def test_vcops_exporter_says_which_address_it_cannot_listen_on(seeded_app):
    run = subprocess.run([sys.executable, "-m", "app.cli", "exporter", "--listen", "nowhere"], cwd=REPO,
                         env=vcops_environment(seeded_app), capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "listen address must be host:port" in run.stderr and "'nowhere'" in run.stderr
