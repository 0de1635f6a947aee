"""A meeting further ahead than MAX_BOOKING_DAYS_AHEAD (730 days by default) is a typing mistake: booking or moving
it is refused, naming the limit, on the pages, through the API and in the service alike, and nothing is written
(no meeting, no invitation in the outbox)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.errors import Invalid
from app.meetings import service
from app.meetings.models import Meeting, Occurrence
from app.meetings.service import Frequency, Recurrence
from app.queue.models import OutboxMessage
from app.sites.models import Site

from . import test_pages as pages
from .conftest import LOCAL, local

in_app = pages.in_app
NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)


@pytest.fixture
def ids(app) -> dict[str, int]:
    """Site ids by code, read in an app context of its own (requests must not share the test's session)."""
    return in_app(app, lambda s: dict(s.execute(sa.select(Site.code, Site.id)).all()))


def counts(app) -> tuple[int, int]:
    return in_app(app, lambda s: (s.scalar(sa.select(sa.func.count()).select_from(Meeting)),
                                  s.scalar(sa.select(sa.func.count()).select_from(OutboxMessage))))


def test_the_limit_is_the_setting_and_defaults_to_two_years(app):
    assert app.config["MAX_BOOKING_DAYS_AHEAD"] == 730
    with app.app_context():
        assert service.max_days_ahead() == 730


def test_a_meeting_in_the_year_9999_is_refused_by_the_service_naming_the_limit_and_nothing_is_written(
        app, session, request_for):
    before = counts(app)
    req = request_for("Họp năm 9999", ["TQ-YS"], on=dt.date(9999, 12, 30), end_on=dt.date(9999, 12, 30))
    with pytest.raises(Invalid) as refused:
        service.book_meeting(session, req, now=NOW)
    assert refused.value.code == "too_far_ahead"
    assert "at most 730 days ahead (until 01/12/2028)" in refused.value.message
    assert refused.value.fields == {"starts_at": ["at most 730 days ahead"]}
    session.rollback()
    assert counts(app) == before


def test_the_last_day_of_the_limit_is_bookable_and_the_day_after_is_not(app, session, request_for):
    last = (NOW + dt.timedelta(days=730)).astimezone(LOCAL).date()
    ok = service.book_meeting(session, request_for("Họp xa nhất", ["TQ-YS"], start="08:00", end="09:00",
                                                   on=last - dt.timedelta(days=1), end_on=last - dt.timedelta(days=1)),
                              now=NOW)
    assert ok.id is not None
    with pytest.raises(Invalid, match="730 days ahead"):
        service.book_meeting(session, request_for("Họp quá xa", ["TQ-YS"], on=last + dt.timedelta(days=1),
                                                  end_on=last + dt.timedelta(days=1)), now=NOW)


def test_a_series_whose_last_occurrence_falls_beyond_the_limit_is_refused_whole(app, session, request_for, day):
    app.config["MAX_BOOKING_DAYS_AHEAD"], saved = 60, app.config["MAX_BOOKING_DAYS_AHEAD"]
    try:
        weekly = Recurrence(Frequency.WEEKLY, count=20)  # 19 weeks on: past 60 days
        with pytest.raises(Invalid, match="at most 60 days ahead") as refused:
            service.book_meeting(session, request_for("Giao ban tuần", ["TQ-YS"], recurrence=weekly))
        assert refused.value.fields == {"starts_at": ["at most 60 days ahead"]}
        assert service.book_meeting(session, request_for("Giao ban tuần", ["TQ-YS"],
                                                         recurrence=Recurrence(Frequency.WEEKLY, count=4))).id
    finally:
        app.config["MAX_BOOKING_DAYS_AHEAD"] = saved


def test_the_api_refuses_a_booking_in_9999_with_422_naming_the_limit_and_sends_no_invitation(app, api, ids):
    before = counts(app)
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json={
        "title": "Họp năm 9999", "site_ids": [ids["TQ-YS"]], "starts_at": "9999-12-30T08:00:00+07:00",
        "ends_at": "9999-12-30T09:00:00+07:00"})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "too_far_ahead" and "at most 730 days ahead" in error["message"]
    assert error["fields"] == {"starts_at": ["at most 730 days ahead"]}
    assert counts(app) == before


def test_the_booking_page_refuses_a_date_too_far_ahead_and_shows_why(app, login, ids):
    client = login("secretariat")
    before = counts(app)
    response = client.post("/meetings/new", data=pages.booking_form(ids, dt.date(9999, 12, 30), "Họp năm 9999",
                                                                    ["TQ-YS"]))
    assert response.status_code == 422
    assert "at most 730 days ahead" in pages.text_of(response)
    assert counts(app) == before


def test_moving_an_occurrence_beyond_the_limit_is_refused_in_the_api_and_on_the_page(app, api, login, ids, day):
    req = service.BookingRequest(title="Giao ban tháng", host_site_id=ids["TQ"], site_ids=[ids["TQ-YS"]],
                                 starts_at=local(day, "08:00"), ends_at=local(day, "09:00"))
    occurrence_id = in_app(app, lambda s: service.book_meeting(s, req).occurrences[0].id)
    response = api(Role.SECRETARIAT).post(f"/api/v1/meetings/occurrences/{occurrence_id}/move", json={
        "starts_at": "9999-01-04T08:00:00+07:00", "ends_at": "9999-01-04T09:00:00+07:00"})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"starts_at": ["at most 730 days ahead"]}

    page = login("secretariat").post(f"/meetings/occurrences/{occurrence_id}/move", data={
        "date": "9999-01-04", "start_time": "08:00", "end_time": "09:00"})
    assert page.status_code == 422 and "at most 730 days ahead" in pages.text_of(page)
    assert in_app(app, lambda s: s.get(Occurrence, occurrence_id).starts_at) == local(day, "08:00")


def test_checking_availability_that_far_ahead_is_refused_rather_than_searched(api, ids):
    response = api(Role.SECRETARIAT).post("/api/v1/meetings/availability", json={
        "site_ids": [ids["TQ-YS"]], "starts_at": "9999-12-30T08:00:00+07:00",
        "ends_at": "9999-12-30T09:00:00+07:00"})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "too_far_ahead"
