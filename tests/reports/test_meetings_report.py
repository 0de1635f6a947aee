"""The meeting figures the province's plan is judged by: held against scheduled, hours, sites taking part, by level
and kind, and per site; an occurrence counts once, in the month it starts, whatever boundary it crosses."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from app.calendar.service import confirm_attendance
from app.meetings.models import Classification
from app.meetings.service import Frequency, Recurrence, cancel_occurrence
from app.reports.meetings import meeting_figures
from app.reports.periods import month_bounds
from app.reports.report import build_report
from tests.reports.conftest import LOCAL, book, local, site

LATER = dt.timedelta(days=800)  # read as if every booked meeting were over


def _figures(session, first: dt.date, tz=LOCAL, site_id=None, months=1):
    start = month_bounds(first.year, first.month, tz)[0]
    last_month = dt.date(first.year + (first.month - 1 + months - 1) // 12, (first.month - 1 + months - 1) % 12 + 1, 1)
    end = month_bounds(last_month.year, last_month.month, tz)[1]
    return meeting_figures(session, start, end, site_id, tz=tz, now=dt.datetime.now(dt.UTC) + LATER)


def test_a_month_counts_meetings_held_hours_and_sites_taking_part(session, quiet_month):
    day = quiet_month + dt.timedelta(days=9)
    book(session, "Giao ban tháng", ["TQ-LB", "TQ-NH", "TQ-CH"], local(day, "08:00"), local(day, "10:30"))
    book(session, "Họp chuyên đề", ["TQ-LB", "TQ-HY"], local(day, "14:00"), local(day, "15:00"),
         classification=Classification.RESTRICTED)

    f = _figures(session, quiet_month)

    assert (f.scheduled, f.held, f.cancelled, f.meetings_held) == (2, 2, 0, 2)
    assert f.hours == 3.5
    assert f.sites_taking_part == 5  # the host and four districts, each once
    assert f.site_connections == 7
    assert f.by_classification == {"normal": 1, "restricted": 1}
    assert f.by_kind == {"single": 2, "series": 0}
    province, district = site(session, "TQ").level.name, site(session, "TQ-LB").level.name
    assert f.by_host_level == {province: 2}
    assert f.by_site_level == {district: 5, province: 2}
    [month] = f.months
    assert (month.month, month.meetings, month.occurrences, month.hours) == (quiet_month, 2, 2, 3.5)


def test_a_cancelled_occurrence_is_scheduled_but_not_held(session, quiet_month):
    day = quiet_month + dt.timedelta(days=2)
    series = book(session, "Giao ban tuần", ["TQ-LB"], local(day, "08:00"), local(day, "09:00"),
                  recurrence=Recurrence(Frequency.WEEKLY, count=3))
    cancel_occurrence(session, series.occurrences[1])

    f = _figures(session, quiet_month, months=2)

    assert (f.scheduled, f.held, f.cancelled) == (3, 2, 1)
    assert f.meetings_held == 1  # a series counts once among the meetings, each occurrence among the occurrences
    assert f.by_kind == {"single": 0, "series": 2}


def test_meetings_still_to_come_are_not_counted_as_held(session, quiet_month):
    day = quiet_month + dt.timedelta(days=3)
    book(session, "Sắp tới", ["TQ-LB"], local(day, "08:00"), local(day, "09:00"))
    start, end = month_bounds(quiet_month.year, quiet_month.month)

    f = meeting_figures(session, start, end, tz=LOCAL, now=local(day, "08:30"))

    assert (f.scheduled, f.held, f.upcoming, f.hours) == (1, 0, 1, 0)


def test_a_meeting_across_midnight_at_the_end_of_a_month_counts_once_in_the_month_it_starts(session, quiet_month):
    last_day = quiet_month - dt.timedelta(days=1)  # the last day of the month before
    book(session, "Trực ban", ["TQ-LB"], local(last_day, "23:00"), local(quiet_month, "01:00"))
    before = last_day.replace(day=1)

    earlier, later = _figures(session, before), _figures(session, quiet_month)
    both = _figures(session, before, months=2)

    assert (earlier.held, earlier.hours) == (1, 2.0)
    assert (later.held, later.hours) == (0, 0)
    assert both.held == 1
    assert [(m.month, m.occurrences, m.hours) for m in both.months] == [(before, 1, 2.0), (quiet_month, 0, 0.0)]


def test_a_meeting_across_a_daylight_saving_change_counts_its_real_hours_once(session):
    # Where clocks change (Europe/Berlin, the last Sunday of October 2027 at 03:00 back to 02:00), a meeting
    # from 01:30 to 03:30 on the wall clock lasted three hours, and belongs to October only.
    berlin = ZoneInfo("Europe/Berlin")
    day = dt.date(2027, 10, 31)
    book(session, "Họp với đối tác", ["TQ-LB"], local(day, "01:30", berlin).astimezone(dt.UTC),
         local(day, "03:30", berlin).astimezone(dt.UTC))

    october = _figures(session, dt.date(2027, 10, 1), tz=berlin)
    both = _figures(session, dt.date(2027, 10, 1), tz=berlin, months=2)

    assert (october.held, october.hours) == (1, 3.0)
    assert [(m.month.month, m.occurrences, m.hours) for m in both.months] == [(10, 1, 3.0), (11, 0, 0.0)]


def test_each_site_shows_invited_confirmed_and_connected(session, quiet_month):
    day = quiet_month + dt.timedelta(days=4)
    first = book(session, "Giao ban", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "09:00"))
    book(session, "Giao ban 2", ["TQ-LB"], local(day, "10:00"), local(day, "11:00"))
    lam_binh = next(p for p in first.occurrences[0].participations if p.site.code == "TQ-LB")
    confirm_attendance(session, lam_binh, "vanthu@lambinh.example.vn", now=local(day, "07:00"))

    f = _figures(session, quiet_month)
    rows = {r.code: r for r in f.sites}

    assert (rows["TQ-LB"].invited, rows["TQ-LB"].confirmed, rows["TQ-LB"].connected) == (2, 1, 2)
    assert (rows["TQ-NH"].invited, rows["TQ-NH"].confirmed, rows["TQ-NH"].connected) == (1, 0, 1)
    assert rows["TQ-LB"].declined is None  # the calendar records no declines yet
    assert rows["TQ-LB"].hours == 2.0


def test_a_district_sees_the_meetings_its_sites_take_part_in_and_only_its_own_sites(session, quiet_month):
    day = quiet_month + dt.timedelta(days=5)
    book(session, "Tỉnh với Lâm Bình", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "09:00"))
    book(session, "Tỉnh với Hàm Yên", ["TQ-HY"], local(day, "10:00"), local(day, "11:00"))
    book(session, "Huyện Lâm Bình họp xã", ["TQ-LB-LC"], local(day, "14:00"), local(day, "15:00"), host="TQ-LB")

    f = _figures(session, quiet_month, site_id=site(session, "TQ-LB").id)

    assert f.held == 2
    assert sorted(r.code for r in f.sites) == ["TQ-LB", "TQ-LB-LC"]


def test_the_report_holds_the_last_twelve_months_of_usage(session, quiet_month):
    day = quiet_month + dt.timedelta(days=6)
    book(session, "Giao ban", ["TQ-LB"], local(day, "08:00"), local(day, "09:00"))
    start, end = month_bounds(quiet_month.year, quiet_month.month)

    report = build_report(session, start, end, now=dt.datetime.now(dt.UTC) + LATER)

    assert len(report.usage) == 12
    assert report.usage[-1].month == quiet_month and report.usage[-1].occurrences == 1
    assert report.meetings.held == 1
