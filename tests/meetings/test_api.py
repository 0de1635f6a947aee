"""The meetings' JSON API as scripts of the secretariat and site staff use it, with a bearer token.

Setup runs in app contexts of its own (`in_app`, as in test_pages), never around a request.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading

import sqlalchemy as sa
from werkzeug.serving import make_server

from app.auth.models import Role
from app.auth.service import create_token, create_user
from app.db import commit_scope, db
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus
from app.sites.demo import seed
from app.sites.models import Endpoint, Site

from . import test_pages as pages
from .conftest import local

# Fixtures and helpers shared with the pages' tests: site ids by code, and booking as setup.
in_app = pages.in_app
sites = pages.sites
book = pages.book


def error_of(response) -> dict:
    body = response.get_json()
    # `clashes` (objects) only in a refused booking, beside `fields` (app.extensions.ErrorDetail)
    extra = {"clashes"} if body["error"].get("code") == "clash" else set()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "code", "message", "fields", *extra}, body
    assert body["error"]["status"] == response.status_code
    return body["error"]


def iso(value: dt.datetime) -> str:
    return value.isoformat()


def utc(day: dt.date, hhmm: str) -> str:
    """How the API answers a local time: in UTC."""
    return local(day, hhmm).astimezone(dt.UTC).isoformat()


def test_secretariat_books_reads_lists_moves_and_cancels_a_series_through_the_api(app, api, sites, day):
    secretariat = api(Role.SECRETARIAT)
    second_room = in_app(app, lambda s: s.scalar(sa.select(Endpoint.id).where(
        Endpoint.site_id == sites["TQ"], Endpoint.room_name == "Phòng họp trực tuyến 2")))
    response = secretariat.post("/api/v1/meetings", json={
        "title": "Giao ban tuần", "chair": "Phó Chủ tịch", "site_ids": [sites["TQ-LB"]],
        "subtree_ids": [sites["TQ-NH"]], "rooms": [{"site_id": sites["TQ"], "endpoint_id": second_room}],
        "starts_at": iso(local(day, "08:00")), "ends_at": iso(local(day, "09:30")),
        "recurrence": {"frequency": "weekly", "count": 3}, "classification": "restricted"})
    assert response.status_code == 201, response.get_json()
    meeting = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/meetings/{meeting['id']}")
    assert meeting["host_site_code"] == "TQ" and meeting["rrule"] == "FREQ=WEEKLY;COUNT=3"
    assert meeting["classification"] == "restricted" and meeting["setup_minutes"] == 60
    first, second, third = meeting["occurrences"]
    assert first["starts_at"] == utc(day, "08:00") == f"{day.isoformat()}T01:00:00+00:00"
    assert first["setup_starts_at"] == utc(day, "07:00")
    assert first["bridge"]["name"] == "MCU-TQ-01" and first["status"] == "scheduled"
    rooms = {p["site_code"]: p["room_name"] for p in first["participations"]}
    assert rooms == {"TQ": "Phòng họp trực tuyến 2", "TQ-LB": "Phòng họp trực tuyến",
                     "TQ-NH": "Phòng họp trực tuyến", "TQ-NH-NH": "Phòng họp trực tuyến",
                     "TQ-NH-TT": "Phòng họp trực tuyến"}

    assert secretariat.get(f"/api/v1/meetings/{meeting['id']}").get_json() == meeting
    listed = secretariat.get(f"/api/v1/meetings?within={sites['TQ-NH']}&q=giao").get_json()
    assert [m["id"] for m in listed["items"]] == [meeting["id"]] and listed["total"] == 1
    assert listed["items"][0]["occurrence_count"] == 3
    assert listed["items"][0]["next_occurrence"]["id"] == first["id"]
    assert secretariat.get(f"/api/v1/meetings?site_id={sites['TQ-HY']}").get_json()["total"] == 0

    moved = secretariat.post(f"/api/v1/meetings/occurrences/{second['id']}/move", json={
        "starts_at": iso(local(day + dt.timedelta(days=8), "14:00")),
        "ends_at": iso(local(day + dt.timedelta(days=8), "15:30"))})
    assert moved.status_code == 200, moved.get_json()
    again = {o["id"]: o for o in moved.get_json()["occurrences"]}[second["id"]]
    assert again["starts_at"] == utc(day + dt.timedelta(days=8), "14:00")
    assert again["sequence"] == 1

    cancelled = secretariat.post(f"/api/v1/meetings/occurrences/{third['id']}/cancel", json={"following": False})
    assert cancelled.status_code == 200
    assert [o["status"] for o in cancelled.get_json()["occurrences"]] == ["scheduled", "scheduled", "cancelled"]
    whole = secretariat.post(f"/api/v1/meetings/{meeting['id']}/cancel")
    assert whole.status_code == 200
    assert {o["status"] for o in whole.get_json()["occurrences"]} == {"cancelled"}
    assert error_of(secretariat.post(f"/api/v1/meetings/{meeting['id']}/cancel"))["code"] == "closed"


def count_meetings(app) -> int:
    return in_app(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(Meeting)))


def test_a_refused_booking_answers_409_with_every_clash_and_writes_nothing(app, api, book, sites, day):
    held = book("Họp về phòng chống lũ", ["TQ-NH"], "08:00", "10:00")
    before = count_meetings(app)
    response = api(Role.SECRETARIAT).post("/api/v1/meetings", json={
        "title": "Họp chuyển đổi số", "site_ids": [sites["TQ-NH"]], "starts_at": iso(local(day, "09:30")),
        "ends_at": iso(local(day, "11:00")), "recurrence": {"frequency": "daily", "count": 2}})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "clash" and "Họp về phòng chống lũ" in error["message"]
    [occurrence] = error["clashes"]  # only the first day clashes; the second is free
    in_words = f"{local(day, '09:30'):%d/%m/%Y %H:%M}: {occurrence['clashes'][0]['message']}"
    assert error["fields"]["clashes"] == [in_words]  # the same, as every field's reasons: strings
    assert occurrence["starts_at"] == utc(day, "09:30")
    assert {"kind": "room", "resource": "Phòng họp trực tuyến (Huyện Na Hang)", "meeting_id": held.id,
            "meeting_title": "Họp về phòng chống lũ"}.items() <= occurrence["clashes"][0].items()
    assert count_meetings(app) == before


def test_unknown_fields_and_times_without_an_offset_are_refused(api, sites, day):
    secretariat = api(Role.SECRETARIAT)
    body = {"title": "Họp", "site_ids": [sites["TQ-LB"]], "starts_at": iso(local(day, "08:00")),
            "ends_at": iso(local(day, "09:00"))}
    response = secretariat.post("/api/v1/meetings", json={**body, "room": 3})
    assert response.status_code == 422 and error_of(response)["fields"] == {"room": ["Unknown field."]}
    naive = secretariat.post("/api/v1/meetings", json={**body, "starts_at": f"{day.isoformat()}T08:00:00"})
    assert naive.status_code == 422 and "starts_at" in error_of(naive)["fields"]
    series = secretariat.post("/api/v1/meetings", json={**body, "recurrence": {"frequency": "weekly"}})
    assert series.status_code == 422 and "recurrence.until" in error_of(series)["fields"]
    backwards = secretariat.post("/api/v1/meetings", json={**body, "ends_at": iso(local(day, "07:00"))})
    assert backwards.status_code == 422 and error_of(backwards)["fields"] == {"ends_at": ["must be after the start"]}
    nowhere = secretariat.post("/api/v1/meetings", json={**body, "site_ids": [999999]})
    assert nowhere.status_code == 404
    assert api(Role.VIEWER).post("/api/v1/meetings", json=body).status_code == 403


def test_availability_through_the_api_shows_what_is_taken_and_the_next_free_slots(api, book, sites, day):
    held = book("Họp huyện Hàm Yên", ["TQ-HY"], "08:00", "10:00")
    response = api(Role.VIEWER).post("/api/v1/meetings/availability", json={
        "subtree_ids": [sites["TQ-HY"]], "starts_at": iso(local(day, "09:00")),
        "ends_at": iso(local(day, "10:00"))})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["free"] is False
    district = next(s for s in answer["sites"] if s["site_code"] == "TQ-HY")
    assert district["free"] is False and district["holders"][0]["meeting_id"] == held.id
    assert next(s for s in answer["sites"] if s["site_code"] == "TQ-HY-TS")["free"] is True
    [bridge] = answer["bridges"]
    assert (bridge["used_ports"], bridge["needed_ports"], bridge["total_ports"]) == (2, 4, 60)
    uplink = next(link for link in answer["links"] if link["code"] == "TQ-HY-TQ")
    assert (uplink["used_kbps"], uplink["needed_kbps"], uplink["bandwidth_kbps"]) == (2400, 7200, 20000)
    assert [s["starts_at"] for s in answer["suggestions"]] == [utc(day, t) for t in ("11:00", "11:30", "12:00")]


def test_site_staff_list_only_their_sites_meetings_and_confirm_their_attendance(api, book):
    ours = book("Họp phường Minh Xuân", ["TQ-TP-MX"])
    theirs = book("Họp huyện Lâm Bình", ["TQ-LB"], "14:00", "15:00")
    staff = api(Role.SITE_STAFF)
    assert [m["title"] for m in staff.get("/api/v1/meetings").get_json()["items"]] == ["Họp phường Minh Xuân"]
    assert staff.get(f"/api/v1/meetings/{theirs.id}").status_code == 404
    participations = ours.participation_ids
    assert staff.post(f"/api/v1/meetings/participations/{participations['TQ']}/confirm").status_code == 403
    response = staff.post(f"/api/v1/meetings/participations/{participations['TQ-TP-MX']}/confirm")
    assert response.status_code == 200
    assert response.get_json()["confirmed_by"] == "site_staff@example.com"
    assert staff.post("/api/v1/meetings/availability", json={}).status_code == 403
    everyone = api(Role.TECHNICIAN).get("/api/v1/meetings").get_json()["items"]
    assert {"Họp phường Minh Xuân", "Họp huyện Lâm Bình"} <= {m["title"] for m in everyone}


def test_a_draft_holds_nothing_until_it_is_scheduled_through_the_api(api, sites, day):
    secretariat = api(Role.SECRETARIAT)
    body = {"title": "Họp dự thảo", "site_ids": [sites["TQ-SD"]], "starts_at": iso(local(day, "08:00")),
            "ends_at": iso(local(day, "09:00"))}
    draft = secretariat.post("/api/v1/meetings", json={**body, "draft": True}).get_json()
    assert draft["occurrences"][0]["status"] == "draft" and draft["occurrences"][0]["bridge"] is None
    # The draft holds nothing: a meeting at the same time takes the room.
    assert secretariat.post("/api/v1/meetings", json={**body, "title": "Họp thật"}).status_code == 201
    refused = secretariat.post(f"/api/v1/meetings/{draft['id']}/schedule")
    assert refused.status_code == 409 and "Họp thật" in error_of(refused)["message"]


def test_twenty_simultaneous_posts_through_http_give_one_booking_and_nineteen_refusals(fresh_app, day):
    """A real server with threads on PostgreSQL: the check and the insert never interleave."""
    app = fresh_app("postgresql")
    with app.app_context(), commit_scope() as session:
        seed(session)
        host_id = session.scalar(sa.select(Site.id).where(Site.code == "TQ"))
        site_id = session.scalar(sa.select(Site.id).where(Site.code == "TQ-NH-TT"))
        user = create_user(session, "vanphong@example.com", Role.SECRETARIAT, "correct horse battery")
        token = create_token(session, user, "concurrency")[1]
    with app.app_context():
        db.session.remove()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    barrier = threading.Barrier(20)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def secretary(n: int) -> None:
        body = json.dumps({"title": f"Họp số {n}", "host_site_id": host_id, "site_ids": [site_id],
                           "starts_at": iso(local(day, "14:00")), "ends_at": iso(local(day, "15:00"))})
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
        try:
            barrier.wait(timeout=30)
            conn.request("POST", "/api/v1/meetings", body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            reply = conn.getresponse()
            answer = (reply.status, json.loads(reply.read() or b"{}"))
        except Exception as exc:  # reported below as a failure of the test
            answer = (0, {"exception": repr(exc)})
        finally:
            conn.close()
        with lock:
            answers.append(answer)

    try:
        threads = [threading.Thread(target=secretary, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        server.shutdown()
        serving.join(timeout=10)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * 19, answers
    [winner] = [body["title"] for status, body in answers if status == 201]
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "clash" and f"\u201c{winner}\u201d" in body["error"]["message"], body
    with app.app_context():
        held = db.session.scalar(sa.select(sa.func.count(Occurrence.id)).where(
            Occurrence.status == OccurrenceStatus.SCHEDULED))
        db.session.remove()
    assert held == 1
