"""What holding a meeting online saved — travel, time, cost and paper — follows from the settings shown beside it."""

from __future__ import annotations

import datetime as dt

import pytest

from app.agenda import service as agenda
from app.reports.meetings import meeting_figures
from app.reports.models import MeetingHeadcount
from app.reports.periods import month_bounds
from app.reports.report import build_report
from app.reports.savings import Assumptions, haversine_km, savings
from tests.reports.conftest import LOCAL, book, local, pdf_of_pages, set_travel, site, upload

LATER = dt.timedelta(days=800)
SETTINGS = {"REPORT_PEOPLE_PER_SITE": 3, "REPORT_COST_PER_KM": 2000.0, "REPORT_COST_PER_HOUR": 50000.0,
            "REPORT_TRAVEL_SPEED_KMH": 40.0, "REPORT_ROAD_FACTOR": 1.5}


@pytest.fixture
def settings(app, monkeypatch):
    for key, value in SETTINGS.items():
        monkeypatch.setitem(app.config, key, value)
    return SETTINGS


def _report(session, month: dt.date):
    start, end = month_bounds(month.year, month.month)
    return build_report(session, start, end, now=dt.datetime.now(dt.UTC) + LATER, usage=False)


def test_a_meeting_of_a_host_and_three_sites_forty_km_away_saves_what_the_settings_say(session, settings,
                                                                                       quiet_month):
    for code in ("TQ-LB", "TQ-NH", "TQ-CH"):
        set_travel(session, code, km=40)
    day = quiet_month + dt.timedelta(days=7)
    book(session, "Giao ban", ["TQ-LB", "TQ-NH", "TQ-CH"], local(day, "08:00"), local(day, "10:00"))

    s = _report(session, quiet_month).savings

    # each site: 3 people, 2 x 40 km and 2 x 1 hour (40 km at 40 km/h) on the road
    assert s.site_trips == 3
    assert s.person_km == 3 * 3 * 80
    assert s.person_hours == 3 * 3 * 2
    assert s.cost == 3 * (3 * 80 * 2000 + 3 * 2 * 50000)  # 2 340 000 đồng
    [meeting] = s.meetings
    assert (meeting.occurrences, meeting.sites, meeting.people, meeting.cost) == (1, 3, 3, 2_340_000)
    assert s.assumptions == Assumptions(road_factor=1.5, speed_kmh=40.0, people_per_site=3, cost_per_km=2000.0,
                                        cost_per_hour=50000.0)


def test_a_travel_time_the_province_set_is_used_instead_of_the_speed(session, settings, quiet_month):
    set_travel(session, "TQ-LB", km=40, minutes=90)
    day = quiet_month + dt.timedelta(days=7)
    book(session, "Giao ban", ["TQ-LB"], local(day, "08:00"), local(day, "10:00"))

    s = _report(session, quiet_month).savings

    assert (s.person_km, s.person_hours) == (3 * 80, 3 * 3.0)


def test_without_a_set_distance_the_coordinates_and_the_road_factor_give_it(session, settings, quiet_month):
    host, lam_binh = site(session, "TQ"), site(session, "TQ-LB")
    host.latitude, host.longitude = 21.0, 105.2
    lam_binh.latitude, lam_binh.longitude = 22.0, 105.2  # one degree of latitude north: 111.2 km
    site(session, "TQ-NH").latitude = None  # no coordinates, nothing set: counted apart, saves nothing
    session.flush()
    day = quiet_month + dt.timedelta(days=8)
    book(session, "Giao ban", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "10:00"))

    s = _report(session, quiet_month).savings

    one_way = 111.195 * 1.5
    assert haversine_km(21.0, 105.2, 22.0, 105.2) == pytest.approx(111.195, abs=0.01)
    assert s.person_km == pytest.approx(3 * 2 * one_way, abs=0.1)
    assert s.person_hours == pytest.approx(3 * 2 * one_way / 40, abs=0.01)
    assert (s.site_trips, s.sites_without_distance) == (2, 1)


def test_a_meeting_may_set_its_own_number_of_people(session, settings, quiet_month):
    set_travel(session, "TQ-LB", km=40)
    day = quiet_month + dt.timedelta(days=9)
    meeting = book(session, "Hội nghị lớn", ["TQ-LB"], local(day, "08:00"), local(day, "10:00"))
    session.add(MeetingHeadcount(meeting_id=meeting.id, people_per_site=10))
    session.flush()

    s = _report(session, quiet_month).savings

    assert s.meetings[0].people == 10
    assert s.person_km == 10 * 80


def test_paper_saved_is_pages_times_the_people_who_would_have_had_a_copy(session, settings, quiet_month):
    day = quiet_month + dt.timedelta(days=10)
    meeting = book(session, "Giao ban", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "10:00"))
    agenda.add_document(session, meeting, upload(pdf_of_pages(4), "Báo cáo.pdf"))
    agenda.add_document(session, meeting, upload(pdf_of_pages(1, "Phụ lục"), "Phụ lục.pdf"))
    agenda.publish(session, meeting)
    agenda.add_item(session, meeting, {"title": "Ý kiến các huyện"})
    agenda.publish(session, meeting)  # the same files in the second version count once

    s = _report(session, quiet_month).savings

    [row] = s.meetings
    assert row.pages == 5
    assert s.paper_pages == 5 * 3 * 2  # five pages, three people at each of the two sites that would travel
    assert row.documents_without_pages == 0


def test_the_savings_of_several_occurrences_add_up_per_meeting_and_per_month(session, settings, quiet_month):
    set_travel(session, "TQ-LB", km=40)
    day = quiet_month + dt.timedelta(days=1)
    book(session, "Sáng", ["TQ-LB"], local(day, "08:00"), local(day, "09:00"))
    book(session, "Chiều", ["TQ-LB"], local(day, "14:00"), local(day, "15:00"))
    start, end = month_bounds(quiet_month.year, quiet_month.month)
    figures = meeting_figures(session, start, end, tz=LOCAL, now=dt.datetime.now(dt.UTC) + LATER)

    s = savings(session, figures.occurrences, Assumptions.from_config({**SETTINGS}), tz=LOCAL)

    assert len(s.meetings) == 2
    [month] = s.months
    assert month.month == quiet_month and month.person_km == 2 * 3 * 80


def test_the_province_sets_a_sites_travel_and_a_meetings_headcount_through_the_api(app, session, api, settings,
                                                                                   quiet_month):
    day = quiet_month + dt.timedelta(days=12)
    meeting = book(session, "Hội nghị toàn tỉnh", ["TQ-LB"], local(day, "08:00"), local(day, "10:00"))
    session.commit()

    travel = api("technician").put("/api/v1/reports/travel/TQ-LB", json={"distance_km": 40, "travel_minutes": 60})
    people = api("secretariat").put(f"/api/v1/reports/headcounts/{meeting.id}", json={"people_per_site": 5})
    refused = api("viewer").put("/api/v1/reports/travel/TQ-LB", json={"distance_km": 1, "travel_minutes": None})
    negative = api("technician").put("/api/v1/reports/travel/TQ-NH", json={"distance_km": -3, "travel_minutes": None})

    assert travel.status_code == 200, travel.get_json()
    assert travel.get_json() == {"site": "TQ-LB", "name": "Huyện Lâm Bình", "distance_km": 40.0, "travel_minutes": 60}
    assert people.status_code == 200 and people.get_json()["people_per_site"] == 5
    assert refused.status_code == 403 and negative.status_code == 422
    listed = api("viewer").get("/api/v1/reports/travel").get_json()
    assert [t["site"] for t in listed] == ["TQ-LB"]
    s = _report(session, quiet_month).savings
    assert (s.person_km, s.person_hours) == (5 * 80, 5 * 2.0)

    cleared = api("technician").put("/api/v1/reports/travel/TQ-LB", json={"distance_km": None, "travel_minutes": None})
    assert cleared.status_code == 204
    assert api("viewer").get("/api/v1/reports/travel").get_json() == []
