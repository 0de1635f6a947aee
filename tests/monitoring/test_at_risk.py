"""Meetings at risk, as the operator on duty reads them: the coming meetings (in progress or starting within
the next hours, scheduled or in progress) whose sites are failing, each failing site named with why; meetings
whose sites are fine, and cancelled ones, are not listed."""

from __future__ import annotations

import datetime as dt
import html

import sqlalchemy as sa

from app.db import commit_scope
from app.meetings.models import OccurrenceStatus
from tests.monitoring.probe_rows import all_fine, meeting, rooms_of, set_endpoint, set_link, site_id, uplink_code

IN_30_MIN = dt.timedelta(minutes=30)


def _at_risk(api, query: str = "") -> dict[str, dict]:
    response = api("operator").get(f"/api/v1/monitoring/at-risk{query}")
    assert response.status_code == 200, response.get_json()
    return {m["title"]: m for m in response.get_json()["meetings"]}


def test_a_meeting_in_30_minutes_whose_sites_link_is_down_is_at_risk_naming_the_site(session, api, login):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-LB-LC"), up=False)
    meeting(session, "Giao ban phòng chống lũ", "TQ", ["TQ-LB-LC", "TQ-LB-TL"], starts_in=IN_30_MIN)
    meeting(session, "Họp các xã Sơn Dương", "TQ", ["TQ-SD-SD", "TQ-SD-TT"], starts_in=IN_30_MIN)
    meeting(session, "Họp đã huỷ", "TQ", ["TQ-LB-LC"], starts_in=IN_30_MIN, status=OccurrenceStatus.CANCELLED)
    with commit_scope():
        pass

    found = _at_risk(api)
    assert set(found) == {"Giao ban phòng chống lũ"}
    risk = found["Giao ban phòng chống lũ"]
    assert [s["code"] for s in risk["sites"]] == ["TQ-LB-LC"]
    assert risk["sites"][0]["name"] == "Xã Lăng Can" and risk["in_progress"] is False
    assert [p["code"] for p in risk["sites"][0]["problems"]] == ["link_down"]

    page = html.unescape(login("operator").get("/monitoring/at-risk").get_data(as_text=True))
    assert "Giao ban phòng chống lũ" in page and "Xã Lăng Can" in page
    assert "Họp các xã Sơn Dương" not in page and "Họp đã huỷ" not in page
    # The board shows them too.
    board = html.unescape(login("operator").get("/monitoring/board").get_data(as_text=True))
    panel = board[board.index('id="at-risk-panel"'):board.index('id="board"')]
    assert "Giao ban phòng chống lũ" in panel and "Xã Lăng Can" in panel


def test_sites_below_a_downed_district_link_put_their_meeting_at_risk_as_unreachable_via_upstream(session, api):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-NH"), up=False)
    meeting(session, "Họp xã Thanh Tương", "TQ", ["TQ-NH-TT"], starts_in=dt.timedelta(minutes=-20))
    with commit_scope():
        pass

    risk = _at_risk(api)["Họp xã Thanh Tương"]
    assert risk["in_progress"] is True
    assert [(s["code"], s["state"], [p["code"] for p in s["problems"]]) for s in risk["sites"]] == [
        ("TQ-NH-TT", "unreachable", ["upstream_down"])]


def test_the_room_a_site_joins_from_decides_not_its_other_rooms(session, api):
    all_fine(session)
    hall, other = rooms_of(session, "TQ")
    set_endpoint(session, other, up=False)
    meeting(session, "Họp từ phòng 1", "TQ", ["TQ-HY"], starts_in=IN_30_MIN, rooms={"TQ": hall})
    meeting(session, "Họp từ phòng 2", "TQ", ["TQ-HY"], starts_in=IN_30_MIN, rooms={"TQ": other})
    unregistered = rooms_of(session, "TQ-HY")[0]
    set_endpoint(session, unregistered, registered=False)
    with commit_scope():
        pass

    found = _at_risk(api)
    first = {s["code"]: [p["code"] for p in s["problems"]] for s in found["Họp từ phòng 1"]["sites"]}
    assert first == {"TQ-HY": ["endpoint_unregistered"]}
    second = {s["code"]: [p["code"] for p in s["problems"]] for s in found["Họp từ phòng 2"]["sites"]}
    assert second == {"TQ": ["endpoint_down"], "TQ-HY": ["endpoint_unregistered"]}


def test_meetings_later_than_the_horizon_or_already_over_are_not_listed(session, api):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-YS"), up=False)
    meeting(session, "Họp chiều", "TQ", ["TQ-YS"], starts_in=dt.timedelta(hours=5))
    meeting(session, "Họp sáng đã xong", "TQ", ["TQ-YS"], starts_in=dt.timedelta(hours=-3),
            lasts=dt.timedelta(hours=1))
    meeting(session, "Họp nháp", "TQ", ["TQ-YS"], starts_in=IN_30_MIN, status=OccurrenceStatus.DRAFT)
    with commit_scope():
        pass

    assert _at_risk(api) == {}
    assert set(_at_risk(api, "?hours=6")) == {"Họp chiều"}
    assert api("operator").get("/api/v1/monitoring/at-risk?hours=99").status_code == 422


def test_a_degraded_link_puts_a_meeting_at_risk_and_a_site_not_measured_lately_is_unknown(session, api):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-CH-VL"), lost=3, sent=20)
    set_link(session, uplink_code(session, "TQ-CH-KB"), age=dt.timedelta(hours=1))  # stale: unknown
    meeting(session, "Họp Chiêm Hóa", "TQ", ["TQ-CH-VL", "TQ-CH-KB"], starts_in=dt.timedelta(hours=2))
    with commit_scope():
        pass

    risk = _at_risk(api)["Họp Chiêm Hóa"]
    assert [(s["code"], s["state"], [p["code"] for p in s["problems"]]) for s in risk["sites"]] == [
        ("TQ-CH-VL", "degraded", ["loss"]), ("TQ-CH-KB", "unknown", ["stale"])]


def test_with_nothing_measured_every_site_is_unknown_and_the_page_never_says_all_is_normal(session, api, login):
    meeting(session, "Họp trực tuyến chưa đo", "TQ", ["TQ-LB-LC"], starts_in=IN_30_MIN)
    with commit_scope():
        pass

    risk = _at_risk(api)["Họp trực tuyến chưa đo"]
    assert {s["code"]: s["state"] for s in risk["sites"]} == {"TQ": "unknown", "TQ-LB-LC": "unknown"}
    page = html.unescape(login("operator").get("/monitoring/at-risk").get_data(as_text=True))
    assert "Họp trực tuyến chưa đo" in page
    assert "every site of the coming meetings is fine" not in page and "đều bình thường" not in page


def test_maintenance_that_starts_later_on_a_link_of_the_path_puts_the_meeting_at_risk(session, api):
    from app.sites.models import Link, MaintenanceWindow

    all_fine(session)
    occurrence = meeting(session, "Họp Lăng Can", "TQ", ["TQ-LB-LC"], starts_in=dt.timedelta(hours=1))
    link = session.scalar(sa.select(Link).where(Link.code == uplink_code(session, "TQ-LB-LC")))
    session.add(MaintenanceWindow(link_id=link.id, starts_at=occurrence.starts_at + dt.timedelta(minutes=30),
                                  ends_at=occurrence.ends_at + dt.timedelta(hours=1), reason="Thay cáp quang"))
    with commit_scope():
        pass

    risk = _at_risk(api)["Họp Lăng Can"]
    [site] = risk["sites"]
    assert site["code"] == "TQ-LB-LC" and [p["code"] for p in site["problems"]] == ["maintenance_planned"]
    assert link.code in site["problems"][0]["message"] and "Thay cáp quang" in site["problems"][0]["message"]


def test_a_site_not_ready_at_its_test_session_puts_the_meeting_at_risk(session, api):
    from app.conference.readiness import Readiness, ReadinessCheck, Round

    all_fine(session)
    occurrence = meeting(session, "Họp có điểm chưa sẵn sàng", "TQ", ["TQ-LB-LC"], starts_in=IN_30_MIN)
    session.add(ReadinessCheck(occurrence_id=occurrence.id, site_id=site_id(session, "TQ-LB-LC"),
                               round=Round.SETUP, status=Readiness.NOT_READY, checks=[],
                               reason="The endpoint is not registered to the SIP server (403 Forbidden).",
                               action="Launch provision_endpoint for this endpoint."))
    with commit_scope():
        pass

    [site] = _at_risk(api)["Họp có điểm chưa sẵn sàng"]["sites"]
    assert site["code"] == "TQ-LB-LC" and [p["code"] for p in site["problems"]] == ["not_ready"]
    assert "403 Forbidden" in site["problems"][0]["message"]


def test_a_technician_making_maintenance_over_a_booked_meeting_is_warned_naming_it(session, login):
    from zoneinfo import ZoneInfo

    occurrence = meeting(session, "Giao ban tuần xã Lăng Can", "TQ", ["TQ-LB-LC"], starts_in=dt.timedelta(days=2))
    with commit_scope():
        pass
    local = occurrence.starts_at.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    site = site_id(session, "TQ-LB-LC")
    client = login("technician")
    response = client.post(f"/maintenance/new?target=site:{site}", data={
        "target": f"site:{site}", "starts_at": (local - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (local + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"), "reason": "Sửa điện phòng họp"},
        follow_redirects=True)
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    warning = next(line for line in page.splitlines() if "trùng với các cuộc họp đã đặt lịch" in line
                   or "overlaps booked meetings" in line)
    assert "Giao ban tuần xã Lăng Can" in warning and local.strftime("%H:%M %d/%m/%Y") in warning
    assert local.strftime("%H:%M %d/%m/%Y") in page


def test_a_conference_not_ready_on_its_bridge_puts_the_meeting_at_risk(session):
    from app.conference.models import Conference, ConferenceState
    from app.monitoring.at_risk import meetings_at_risk

    all_fine(session)
    occurrence = meeting(session, "Họp chưa có phòng trên MCU", "TQ", ["TQ-LB-LC"], starts_in=IN_30_MIN)
    session.add(Conference(meeting_id=occurrence.meeting_id, number="880123", state=ConferenceState.FAILED,
                           last_error="The MCU refused: too many conferences."))
    session.flush()

    [risk] = [m for m in meetings_at_risk(session) if m.title == "Họp chưa có phòng trên MCU"]
    assert risk.sites == [] and [p.code for p in risk.problems] == ["conference_not_ready"]
    assert "too many conferences" in risk.problems[0].message
