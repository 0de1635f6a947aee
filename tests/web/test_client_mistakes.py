"""A client's mistake is a 4xx in the one error format naming what is wrong, never a 500 from the database:
an id past the integer column in an address or a body, a NUL or a lone surrogate in any text (a title, a search),
a page past any list, a time in the year 9999, a JSON body nested 100,000 deep. The cases the security review
found (issue 12), on SQLite and PostgreSQL, which refuse different values."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.db import db
from app.meetings.models import Meeting
from app.sites.models import Site

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
PAST_THE_COLUMN = 2**31  # PostgreSQL's integer ends at 2**31 - 1
UNSTORABLE = "must not contain a NUL character or a lone surrogate"


@pytest.fixture
def ids(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(Site.code, Site.id)).all())


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message", "fields"}, body
    assert body["error"]["status"] == status
    return body["error"]


def booking(ids, **overrides) -> dict:
    start = dt.datetime.combine(dt.date.today() + dt.timedelta(days=12), dt.time(8, 0), tzinfo=LOCAL)
    return {"title": "Giao ban", "site_ids": [ids["TQ-YS"]], "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(hours=1)).isoformat(), **overrides}


def meetings_titled(app, prefix: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).where(Meeting.title.startswith(prefix)))


def test_a_meeting_id_past_the_integer_column_is_not_found_in_the_error_format(api, login):
    secretariat = api(Role.SECRETARIAT)
    error = error_of(secretariat.get(f"/api/v1/meetings/{PAST_THE_COLUMN}"), 404)
    assert error["code"] == "not_found"
    error_of(api(Role.TECHNICIAN).delete("/api/v1/job-schedules/789212511800"), 404)
    # the largest id is an id like any other: not found, since there is none
    error_of(secretariat.get(f"/api/v1/meetings/{PAST_THE_COLUMN - 1}"), 404)
    # the pages too: every <int:...> of the app is bounded the same way
    page = login(Role.SECRETARIAT).get(f"/meetings/{PAST_THE_COLUMN}")
    assert page.status_code == 404 and "text/html" in page.content_type


def test_an_id_past_the_integer_column_in_a_body_is_refused_naming_the_field(app, api, ids):
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json=booking(
        ids, title="Giao ban số lớn", site_ids=[ids["TQ-YS"], PAST_THE_COLUMN]))
    error = error_of(response, 422)
    assert list(error["fields"]) == ["site_ids.1"]
    assert meetings_titled(app, "Giao ban số lớn") == 0


def test_a_title_with_a_nul_is_refused_naming_the_title(app, api, ids):
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json=booking(ids, title="Giao\x00ban"))
    error = error_of(response, 422)
    assert list(error["fields"]) == ["title"]
    assert "title" in error["message"]
    assert meetings_titled(app, "Giao") == 0


def test_a_lone_surrogate_in_a_title_is_refused_naming_the_title(app, api, ids):
    # JSON may spell half of a surrogate pair on its own; it is no character, and has no UTF-8 to store.
    body = json.dumps(booking(ids, title="Giao ban PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800")
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", data=body, content_type="application/json")
    error = error_of(response, 422)
    assert error["fields"] == {"title": [UNSTORABLE]}
    assert meetings_titled(app, "Giao ban") == 0


def test_a_search_with_a_nul_is_refused_naming_q_by_the_api_and_the_pages(api, login):
    error = error_of(api(Role.SECRETARIAT).get("/api/v1/meetings?q=giao%00ban"), 422)
    assert error["fields"] == {"q": [UNSTORABLE]}
    error_of(api(Role.TECHNICIAN).get("/api/v1/sites?q=%00"), 422)
    page = login(Role.TECHNICIAN).get("/sites?q=Y%00n")
    assert page.status_code == 422 and UNSTORABLE in page.get_data(as_text=True)


def test_a_json_body_nested_100000_deep_is_refused_as_invalid_json(api):
    secretariat = api(Role.SECRETARIAT)
    deep = "[" * 100_000 + "]" * 100_000
    error = error_of(secretariat.post("/api/v1/meetings", data=deep, content_type="application/json"), 400)
    assert error["code"] == "invalid_json"
    # past the parser's limit but well inside Python's own stack: the same answer
    nested = '{"title": ' + "[" * 40 + "]" * 40 + "}"
    error = error_of(secretariat.post("/api/v1/meetings", data=nested, content_type="application/json"), 400)
    assert error["code"] == "invalid_json" and "32" in error["message"]


def test_a_page_or_page_size_out_of_range_is_refused_naming_it(api):
    tech = api(Role.TECHNICIAN)
    assert list(error_of(tech.get(f"/api/v1/sites?page={PAST_THE_COLUMN}"), 422)["fields"]) == ["page"]
    assert list(error_of(tech.get("/api/v1/sites?page=0"), 422)["fields"]) == ["page"]
    assert list(error_of(tech.get("/api/v1/sites?page_size=100000"), 422)["fields"]) == ["page_size"]
    # the largest page there may be is simply empty
    last = tech.get(f"/api/v1/sites?page={PAST_THE_COLUMN - 1}")
    assert last.status_code == 200 and last.get_json()["items"] == []


def test_a_meeting_in_the_year_9999_is_refused_naming_its_start(api, ids):
    start = dt.datetime(9999, 12, 31, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json=booking(
        ids, starts_at=start.isoformat(), ends_at=(start + dt.timedelta(hours=1)).isoformat()))
    assert "starts_at" in error_of(response, 422)["fields"]


def test_a_list_page_given_a_number_past_any_id_or_an_odd_page_answers_without_a_server_error(login):
    tech = login(Role.TECHNICIAN)
    for path in ("/sites", "/equipment", "/links", "/meetings/"):
        for query in (f"within={PAST_THE_COLUMN}", "within=99999999999999999999", f"site_id={10**20}", "page=²",
                      f"page={10**30}"):
            page = tech.get(f"{path}?{query}")
            assert page.status_code in (200, 404, 422), (path, query, page.status_code)
