"""The meeting pages as the secretariat, a viewer and site staff use them (CSRF is off here; tested elsewhere).

Setup and checks run in app contexts of their own (`in_app`), never around a request: a request reuses an app
context it finds, and would then share its session (a refusal's rollback would take the setup with it) and
its logged-in user.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app.db import db
from app.meetings import service
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus, Participation
from app.meetings.service import BookingRequest, Frequency, Recurrence
from app.sites.models import Site

from .conftest import local


def in_app(app, fn):
    """Run fn(session) in an app context of its own and commit it (this only releases a savepoint: the test's
    outer transaction is still rolled back at its end)."""
    with app.app_context():
        result = fn(db.session)
        db.session.commit()
        return result


@dataclass
class Booked:
    id: int
    occurrence_ids: list[int]
    participation_ids: dict[str, int]  # site code -> its participation in the first occurrence


@pytest.fixture
def sites(app) -> dict[str, int]:
    """Site ids by code."""
    return in_app(app, lambda s: dict(s.execute(sa.select(Site.code, Site.id)).all()))


@pytest.fixture
def book(app, sites, day):
    def make(title: str, codes: list[str], start: str = "08:00", end: str = "09:00", on: dt.date | None = None,
             **kw) -> Booked:
        req = BookingRequest(title=title, host_site_id=sites["TQ"], site_ids=[sites[c] for c in codes],
                             starts_at=local(on or day, start), ends_at=local(on or day, end), **kw)

        def do(session):
            meeting = service.book_meeting(session, req)
            return Booked(meeting.id, [o.id for o in meeting.occurrences],
                          {p.site.code: p.id for p in meeting.occurrences[0].participations})

        return in_app(app, do)

    return make


def meeting_titled(app, title: str) -> dict:
    def read(session):
        meeting = session.scalar(sa.select(Meeting).where(Meeting.title == title))
        if meeting is None:
            return None
        return {"id": meeting.id, "rrule": meeting.rrule, "conference_number": meeting.conference_number,
                "occurrences": [(o.id, o.starts_at, o.status, sorted(p.site.code for p in o.participations))
                                for o in meeting.occurrences]}

    return in_app(app, read)


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def section(page: str, start: str, end: str = "</table>") -> str:
    """The part of a page from the first `start` to the next `end` (a table without the filters' choices)."""
    begin = page.index(start)
    return page[begin:page.index(end, begin)]


def booking_form(sites, day: dt.date, title: str, codes: list[str], start: str = "08:00", end: str = "09:00",
                 **overrides) -> dict:
    data = {"title": title, "chair": "Chủ tịch UBND tỉnh", "host_site_id": str(sites["TQ"]),
            "site_ids": [str(sites[c]) for c in codes], "date": day.isoformat(), "start_time": start,
            "end_time": end, "bridge_id": "", "setup_minutes": "60", "bitrate_kbps": "2000", "notes": "",
            "classification": "normal", "frequency": "", "interval": "1", "until": "", "count": ""}
    data.update(overrides)
    return data


def test_secretariat_books_through_the_form_and_sees_the_meeting_in_the_list_and_calendar(app, login, sites, day):
    client = login("secretariat")
    form = client.get("/meetings/new")
    assert form.status_code == 200
    assert f'<option selected value="{sites["TQ"]}">' in form.get_data(as_text=True)  # the province hall
    response = client.post("/meetings/new", data=booking_form(
        sites, day, "Giao ban công tác tháng", [], subtree_ids=[str(sites["TQ-CH"])], start="14:00", end="16:00"))
    assert response.status_code == 302, text_of(response)
    meeting = meeting_titled(app, "Giao ban công tác tháng")
    assert response.headers["Location"].endswith(f"/meetings/{meeting['id']}")
    [(occurrence_id, starts_at, status, codes)] = meeting["occurrences"]
    assert starts_at == local(day, "14:00") and status is OccurrenceStatus.SCHEDULED
    assert codes == ["TQ", "TQ-CH", "TQ-CH-KB", "TQ-CH-VL"]

    page = text_of(client.get(response.headers["Location"]))
    assert "Giao ban công tác tháng" in page and "Chủ tịch UBND tỉnh" in page
    assert "Thị trấn Vĩnh Lộc" in page and "MCU-TQ-01" in page and meeting["conference_number"] in page
    assert "The meeting is booked" in page

    listed = section(text_of(client.get("/meetings/?q=giao+ban")), "<table")
    assert "Giao ban công tác tháng" in listed
    week = text_of(client.get(f"/meetings/calendar?view=week&date={day.isoformat()}"))
    assert f'/meetings/{meeting["id"]}?occurrence={occurrence_id}' in week and "14:00–16:00 Giao ban" in week
    month = text_of(client.get(f"/meetings/calendar?view=month&date={day.isoformat()}"))
    assert "Giao ban công tác tháng" in month
    day_page = text_of(client.get(f"/meetings/calendar?view=day&date={day.isoformat()}"))
    assert "Giao ban công tác tháng" in day_page
    next_week = text_of(client.get(f"/meetings/calendar?view=week&date={(day + dt.timedelta(days=7)).isoformat()}"))
    assert "Giao ban công tác tháng" not in next_week


def test_a_clash_shows_the_form_again_with_the_users_input_and_the_clashing_meeting_named(
        app, login, sites, day, book):
    booked = book("Họp về phòng chống lũ", ["TQ-NH"], "08:00", "10:00")
    client = login("secretariat")
    response = client.post("/meetings/new", data=booking_form(
        sites, day, "Họp chuyển đổi số", ["TQ-NH", "TQ-LB"], "09:30", "11:00", notes="Chuẩn bị báo cáo"))
    assert response.status_code == 409
    page = text_of(response)
    assert 'value="Họp chuyển đổi số"' in page and "Chuẩn bị báo cáo" in page  # what the user typed
    assert f'<option selected value="{sites["TQ-LB"]}">' in page
    clashes = section(page, 'class="clashes"', "</section>")
    assert "Phòng họp trực tuyến (Huyện Na Hang)" in clashes
    assert f'<a href="/meetings/{booked.id}">Họp về phòng chống lũ</a>' in clashes
    assert meeting_titled(app, "Họp chuyển đổi số") is None
    assert meeting_titled(app, "Họp về phòng chống lũ") is not None


def test_a_series_can_skip_its_clashing_occurrences(app, login, sites, day, book):
    book("Họp huyện Na Hang", ["TQ-NH"], "08:00", "10:00", on=day + dt.timedelta(days=7))
    client = login("secretariat")
    data = booking_form(sites, day, "Giao ban tuần", ["TQ-NH"], frequency="weekly", count="3")
    refused = client.post("/meetings/new", data=data)
    assert refused.status_code == 409 and "Họp huyện Na Hang" in text_of(refused)
    response = client.post("/meetings/new", data={**data, "skip_clashing": "y"})
    assert response.status_code == 302
    page = text_of(client.get(response.headers["Location"]))
    assert "1 clashing occurrence was skipped" in page and "Every week, 3 times" in page
    assert [o[2] for o in meeting_titled(app, "Giao ban tuần")["occurrences"]] == [
        OccurrenceStatus.SCHEDULED, OccurrenceStatus.CANCELLED, OccurrenceStatus.SCHEDULED]


def test_bad_input_is_shown_next_to_its_field(login, sites, day):
    client = login("secretariat")
    response = client.post("/meetings/new", data=booking_form(sites, day, "", ["TQ-LB"], "10:00", "09:00",
                                                               frequency="daily"))
    assert response.status_code == 422
    page = text_of(response)
    for name in ("title", "end_time", "frequency"):
        assert f'id="{name}-error"' in page, name


def test_a_viewer_sees_the_calendar_but_may_not_book(login, book, day):
    book("Họp trực tuyến toàn tỉnh", ["TQ-LB"])
    client = login("viewer")
    assert client.get("/meetings/new").status_code == 403
    assert client.post("/meetings/new", data={}).status_code == 403
    page = text_of(client.get(f"/meetings/calendar?date={day.isoformat()}"))
    assert "Họp trực tuyến toàn tỉnh" in page and "/meetings/new" not in page


def test_site_staff_see_only_their_sites_meetings_and_confirm_their_attendance(app, login, book, sites, day):
    ours = book("Họp phường Minh Xuân", ["TQ-TP-MX"])
    theirs = book("Họp huyện Lâm Bình", ["TQ-LB"], "14:00", "15:00")
    client = login("site_staff")  # staff of Phường Minh Xuân (TQ-TP-MX)

    listed = section(text_of(client.get("/meetings/")), "<table")
    assert "Họp phường Minh Xuân" in listed and "Họp huyện Lâm Bình" not in listed
    assert client.get(f"/meetings/{theirs.id}").status_code == 404
    week = text_of(client.get(f"/meetings/calendar?date={day.isoformat()}"))
    assert "Họp phường Minh Xuân" in week and "Họp huyện Lâm Bình" not in week
    assert client.get(f"/meetings/sites/{sites['TQ-LB']}/schedule").status_code == 403
    assert "Họp phường Minh Xuân" in text_of(client.get(f"/meetings/sites/{sites['TQ-TP-MX']}/schedule"))
    assert client.get("/meetings/new").status_code == 403

    page = text_of(client.get(f"/meetings/{ours.id}"))
    own, host = ours.participation_ids["TQ-TP-MX"], ours.participation_ids["TQ"]
    assert f"/meetings/participations/{own}/confirm" in page
    assert f"/meetings/participations/{host}/confirm" not in page  # not their site
    assert client.post(f"/meetings/participations/{host}/confirm").status_code == 403
    response = client.post(f"/meetings/participations/{own}/confirm")
    assert response.status_code == 302
    page = text_of(client.get(response.headers["Location"]))
    assert "confirmed by site_staff@example.com" in page
    confirmed = in_app(app, lambda s: {p.id: (p.confirmed_by, p.confirmed_at) for p in s.scalars(
        sa.select(Participation).where(Participation.id.in_([own, host])))})
    assert confirmed[own][0] == "site_staff@example.com" and confirmed[own][1] is not None
    assert confirmed[host] == ("", None)


def test_the_week_of_a_district_shows_only_that_districts_meetings(login, book, sites, day):
    book("Họp xã Kim Bình", ["TQ-CH-KB"], "08:00", "09:00")
    book("Họp huyện Hàm Yên", ["TQ-HY"], "10:00", "11:00")
    book("Họp huyện Chiêm Hóa", ["TQ-CH"], "14:00", "15:00", on=day + dt.timedelta(days=2))
    client = login("viewer")
    week = text_of(client.get(f"/meetings/calendar?view=week&date={day.isoformat()}&within={sites['TQ-CH']}"))
    grid = section(week, '<table class="calendar')
    assert "Họp xã Kim Bình" in grid and "Họp huyện Chiêm Hóa" in grid and "Họp huyện Hàm Yên" not in grid
    assert "Huyện Chiêm Hóa" in section(week, "<h1>", "</h1>")
    # The navigation keeps the filter.
    following = re.search(r'<a href="([^"]+)" rel="next">', week).group(1)
    assert f"within={sites['TQ-CH']}" in following and (day + dt.timedelta(days=7)).isoformat() in following
    one_site = text_of(client.get(f"/meetings/calendar?date={day.isoformat()}&site={sites['TQ-HY']}"))
    assert "Họp huyện Hàm Yên" in section(one_site, '<table class="calendar')
    assert "Họp xã Kim Bình" not in section(one_site, '<table class="calendar')


def test_secretariat_moves_one_occurrence_and_cancels_this_and_the_following(app, login, book, day):
    series = book("Giao ban tuần", ["TQ-YS"], recurrence=Recurrence(Frequency.WEEKLY, count=4))
    second, third = series.occurrence_ids[1:3]
    client = login("secretariat")
    form = text_of(client.get(f"/meetings/occurrences/{second}/move"))
    assert 'value="08:00"' in form
    moved_day = day + dt.timedelta(days=8)
    response = client.post(f"/meetings/occurrences/{second}/move", data={
        "date": moved_day.isoformat(), "start_time": "13:30", "end_time": "14:30"})
    assert response.status_code == 302, text_of(response)

    def start_of(occurrence_id: int) -> dt.datetime:
        return in_app(app, lambda s: s.get(Occurrence, occurrence_id).starts_at)

    assert start_of(second) == local(moved_day, "13:30")

    # A move onto a taken time is refused with the clashing meeting named, and moves nothing.
    other = book("Họp huyện Yên Sơn", ["TQ-YS"], "08:00", "09:00", on=day + dt.timedelta(days=15))
    refused = client.post(f"/meetings/occurrences/{second}/move", data={
        "date": (day + dt.timedelta(days=15)).isoformat(), "start_time": "08:00", "end_time": "09:00"})
    assert refused.status_code == 409
    assert f'<a href="/meetings/{other.id}">Họp huyện Yên Sơn</a>' in text_of(refused)
    assert start_of(second) == local(moved_day, "13:30")

    assert "Cancel this occurrence and all later ones" in text_of(client.get(f"/meetings/occurrences/{third}/cancel"))
    response = client.post(f"/meetings/occurrences/{third}/cancel", data={"following": "y"})
    assert response.status_code == 302
    meeting = meeting_titled(app, "Giao ban tuần")
    assert [o[2] for o in meeting["occurrences"]] == [OccurrenceStatus.SCHEDULED] * 2 + [
        OccurrenceStatus.CANCELLED] * 2
    assert "UNTIL=" in meeting["rrule"]


def test_a_draft_is_scheduled_from_its_page_and_a_whole_meeting_cancelled(app, login, sites, day):
    client = login("secretariat")
    response = client.post("/meetings/new", data=booking_form(sites, day, "Họp dự thảo", ["TQ-SD"], draft="y"))
    assert response.status_code == 302
    page = text_of(client.get(response.headers["Location"]))
    assert "saved as a draft" in page and "Schedule the draft" in page
    meeting_id = meeting_titled(app, "Họp dự thảo")["id"]
    assert client.get(f"/meetings/{meeting_id}/schedule").status_code == 200
    assert client.post(f"/meetings/{meeting_id}/schedule").status_code == 302
    assert meeting_titled(app, "Họp dự thảo")["occurrences"][0][2] is OccurrenceStatus.SCHEDULED

    assert client.post(f"/meetings/{meeting_id}/cancel").status_code == 302
    assert meeting_titled(app, "Họp dự thảo")["occurrences"][0][2] is OccurrenceStatus.CANCELLED
    again = client.post(f"/meetings/{meeting_id}/cancel")
    assert again.status_code == 409 and "nothing left to cancel" in text_of(again)


def test_the_availability_page_suggests_free_times_and_links_them_to_the_booking_form(login, book, sites, day):
    booked = book("Họp huyện Hàm Yên", ["TQ-HY"], "08:00", "10:00")
    client = login("secretariat")
    page = text_of(client.get("/meetings/availability", query_string={
        "host_site_id": sites["TQ"], "site_ids": [sites["TQ-HY"]], "date": day.isoformat(),
        "start_time": "09:00", "end_time": "10:00", "setup_minutes": 60, "bitrate_kbps": 2000, "title": "Họp mới"}))
    assert "Not everything is free" in page and f'<a href="/meetings/{booked.id}">Họp huyện Hàm Yên</a>' in page
    suggestions = section(page, 'class="suggestions"', "</section>")
    first = re.search(r'<a href="(/meetings/new\?[^"]+)">', suggestions)
    assert first is not None
    assert "start_time=11:00" in html.unescape(first.group(1)).replace("%3A", ":")
    form = text_of(client.get(html.unescape(first.group(1))))
    assert 'value="Họp mới"' in form and 'value="11:00"' in form
