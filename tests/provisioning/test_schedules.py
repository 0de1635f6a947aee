"""Schedules on templates: cron read in local time, a due schedule launched once as its owner even with two
workers at it, a guard refusal recorded as skipped, and the pages to manage them."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.auth.models import User
from app.db import commit_scope, db, utcnow
from app.errors import Invalid
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus, Participation
from app.provisioning import service
from app.provisioning.inventory import endpoint_hostname
from app.provisioning.models import Job
from app.provisioning.schedules import service as schedules
from app.provisioning.schedules.models import JobSchedule
from app.sites.models import Endpoint
from tests.provisioning.conftest import PASSWORD, PLAYBOOKS

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = dt.UTC


def test_a_nightly_schedule_runs_at_two_in_the_morning_local_time():
    # 01:30 in Hanoi is 18:30 UTC the day before: the run is at 02:00 local, 19:00 UTC.
    assert schedules.next_run("0 2 * * *", dt.datetime(2026, 3, 10, 18, 30, tzinfo=UTC), HCM) == \
        dt.datetime(2026, 3, 10, 19, 0, tzinfo=UTC)
    # Right at the due time, the next run is the following night, never the same minute again.
    assert schedules.next_run("0 2 * * *", dt.datetime(2026, 3, 10, 19, 0, tzinfo=UTC), HCM) == \
        dt.datetime(2026, 3, 11, 19, 0, tzinfo=UTC)
    # Mondays at 07:15 local: the Monday after Sunday 2026-03-15.
    assert schedules.next_run("15 7 * * 1", dt.datetime(2026, 3, 15, 12, 0, tzinfo=UTC), HCM) == \
        dt.datetime(2026, 3, 16, 0, 15, tzinfo=UTC)


@pytest.fixture
def template(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "PLAYBOOK_DIR", str(PLAYBOOKS))
    with commit_scope():
        made = service.save_template(session, {"name": f"Backup {uuid.uuid4().hex[:6]}", "playbook": "local_ping.yml"})
    return made


def _user(session, role: str = "technician") -> User:
    return session.scalar(sa.select(User).where(User.email == f"{role}@example.com"))


@pytest.mark.parametrize(("cron", "why"), [("61 * * * *", "minute"), ("0 2 * *", "four fields"),
                                           ("@reboot", "not five fields"), ("", "empty")])
def test_a_schedule_with_a_bad_cron_expression_is_refused(session, template, cron, why):
    with pytest.raises(Invalid) as refused:
        schedules.save_schedule(session, {"template_id": template.id, "cron": cron}, _user(session))
    assert "cron" in refused.value.fields, why


def test_a_due_schedule_launches_once_as_its_owner_and_moves_to_its_next_time(session, template):
    schedule = schedules.save_schedule(session, {"template_id": template.id, "cron": "0 2 * * *",
                                                 "limit": "", "extra_vars": {"keep": 7}}, _user(session))
    assert schedule.next_run_at > utcnow() and schedule.limit is None
    now = schedule.next_run_at + dt.timedelta(seconds=20)
    runs = schedules.run_due_schedules(session, now)
    assert [r.outcome for r in runs] == ["launched"]
    job = session.get(Job, runs[0].job_id)
    assert job.launched_by.email == "technician@example.com" and job.extra_vars == {"keep": 7}
    assert schedules.run_due_schedules(session, now) == []
    session.refresh(schedule)
    assert schedule.last_job_id == job.id and schedule.next_run_at == now.replace(second=0) + dt.timedelta(days=1)
    assert schedule.next_run_at.astimezone(HCM).hour == 2


def test_a_disabled_schedule_does_not_run_and_enabling_it_does_not_make_up_missed_runs(session, template):
    schedule = schedules.save_schedule(session, {"template_id": template.id, "cron": "*/5 * * * *"}, _user(session))
    schedules.set_enabled(session, schedule, False)
    assert schedule.next_run_at is None
    assert schedules.run_due_schedules(session, utcnow() + dt.timedelta(days=2)) == []
    later = utcnow() + dt.timedelta(days=2)
    schedules.set_enabled(session, schedule, True, now=later)
    assert later < schedule.next_run_at <= later + dt.timedelta(minutes=5)


def test_a_scheduled_run_a_meeting_stands_in_the_way_of_is_recorded_as_skipped(session, template):
    endpoint = session.scalar(sa.select(Endpoint).where(Endpoint.mgmt_address != "").order_by(Endpoint.id))
    now = utcnow()
    meeting = Meeting(uid=f"{uuid.uuid4()}@test", title="Họp trực tuyến UBND", host_site_id=endpoint.site_id)
    meeting.occurrences.append(Occurrence(setup_starts_at=now - dt.timedelta(minutes=10), starts_at=now,
                                          ends_at=now + dt.timedelta(hours=1), status=OccurrenceStatus.IN_PROGRESS))
    session.add(meeting)
    session.flush()
    session.add(Participation(occurrence_id=meeting.occurrences[0].id, site_id=endpoint.site_id))
    schedule = schedules.save_schedule(session, {"template_id": template.id, "cron": "* * * * *",
                                                 "limit": endpoint_hostname(endpoint)}, _user(session))
    jobs_before = session.scalar(sa.select(sa.func.count()).select_from(Job))
    runs = schedules.run_due_schedules(session, schedule.next_run_at)
    assert [r.outcome for r in runs] == ["skipped"] and "Họp trực tuyến UBND" in runs[0].message
    assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == jobs_before
    session.refresh(schedule)
    assert schedule.last_outcome == "skipped" and "Họp trực tuyến UBND" in schedule.last_message
    assert schedule.last_job_id is None and schedule.next_run_at > now


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_at_the_same_due_time_launch_the_schedule_once(make_bed, monkeypatch, backend):
    bed = make_bed(backend)
    template_id = bed.template("local_ping.yml")
    with bed.app.app_context():
        with commit_scope() as session:
            schedule = schedules.save_schedule(session, {"template_id": template_id, "cron": "0 2 * * *"},
                                               session.get(User, bed.user_id))
            schedule_id, due = schedule.id, schedule.next_run_at
        db.session.remove()
    # Both callers read the due schedule before either claims it (on SQLite the write lock orders them).
    barrier = threading.Barrier(2, timeout=3 if backend == "postgresql" else 0.01)
    read = schedules.due_schedules

    def due_then_wait(session, now):
        rows = read(session, now)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return rows

    monkeypatch.setattr(schedules, "due_schedules", due_then_wait)
    results: list = []
    errors: list = []

    def worker() -> None:
        try:
            with bed.app.app_context():
                with commit_scope() as session:
                    results.extend(schedules.run_due_schedules(session, due + dt.timedelta(seconds=5)))
                db.session.remove()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert [r.outcome for r in results] == ["launched"]
    with bed.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1
        assert db.session.get(JobSchedule, schedule_id).next_run_at == due + dt.timedelta(days=1)
        db.session.remove()


def test_technician_manages_schedules_from_their_pages(make_bed):
    bed = make_bed("sqlite")
    template_id = bed.template("local_ping.yml")
    client = bed.app.test_client()
    assert client.post("/login", data={"email": "tech@example.com", "password": PASSWORD}).status_code == 302
    assert client.get("/jobs/schedules/new").status_code == 200
    bad = client.post("/jobs/schedules/new", data={"template_id": template_id, "cron": "0 25 * * *",
                                                   "extra_vars": "{}", "enabled": "y"})
    assert bad.status_code == 422 and "cron expression" in bad.get_data(as_text=True)
    made = client.post("/jobs/schedules/new", data={"template_id": template_id, "cron": "0 2 * * *",
                                                    "limit": "r1", "extra_vars": "{}", "enabled": "y"})
    assert made.status_code == 302
    with bed.app.app_context():
        schedule = db.session.scalar(sa.select(JobSchedule))
        schedule_id = schedule.id
        assert schedule.limit == "r1" and schedule.created_by_id == bed.user_id
        db.session.remove()
    listing = client.get("/jobs/schedules/").get_data(as_text=True)
    assert "0 2 * * *" in listing and "02:00" in listing
    edited = client.post(f"/jobs/schedules/{schedule_id}/edit", data={"template_id": template_id,
                                                                      "cron": "30 3 * * 1", "limit": "",
                                                                      "extra_vars": "{}", "enabled": "y"})
    assert edited.status_code == 302
    assert client.post(f"/jobs/schedules/{schedule_id}/disable").status_code == 302
    assert "30 3 * * 1" in (page := client.get("/jobs/schedules/").get_data(as_text=True)) and "disabled" in page
    assert client.post(f"/jobs/schedules/{schedule_id}/enable").status_code == 302
    assert client.post(f"/jobs/schedules/{schedule_id}/delete").status_code == 302
    assert "No schedule yet." in client.get("/jobs/schedules/").get_data(as_text=True)


# ---------------------------------------------------------------- the JSON API

def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_technician_schedules_a_nightly_backup_through_the_api_and_reads_when_it_runs_next(api, session, template):
    technician = api("technician")
    made = technician.post("/api/v1/job-schedules", json={"template_id": template.id, "cron": "0 2 * * *",
                                                           "limit": "", "extra_vars": {"keep": 7}})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert made.headers["Location"].endswith(f"/api/v1/job-schedules/{body['id']}")
    assert body["template_id"] == template.id and body["template_name"] == template.name
    assert body["cron"] == "0 2 * * *" and body["timezone"] == "Asia/Ho_Chi_Minh"
    assert body["limit"] is None and body["extra_vars"] == {"keep": 7} and body["enabled"] is True
    assert body["owner"] == "technician@example.com" and body["last_outcome"] == ""
    # The next run: 02:00 in Hanoi, given in UTC (19:00 the day before) as ISO 8601 with its offset.
    assert body["next_run_at"].endswith("+00:00")
    next_run = _utc(body["next_run_at"])
    assert next_run > utcnow() and next_run.astimezone(HCM).hour == 2 and (next_run.hour, next_run.minute) == (19, 0)

    shown = api("viewer").get(made.headers["Location"])
    assert shown.status_code == 200 and shown.get_json() == body
    listed = api("viewer").get(f"/api/v1/job-schedules?template_id={template.id}").get_json()
    assert [s["id"] for s in listed["items"]] == [body["id"]] and listed["total"] == 1

    moved = technician.patch(made.headers["Location"], json={"cron": "30 7 * * 1", "limit": "r1"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["limit"] == "r1"
    monday = _utc(moved.get_json()["next_run_at"]).astimezone(HCM)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 7, 30)

    off = technician.patch(made.headers["Location"], json={"enabled": False})
    assert off.status_code == 200 and off.get_json()["enabled"] is False and off.get_json()["next_run_at"] is None
    assert api("viewer").get("/api/v1/job-schedules?enabled=false").get_json()["items"][0]["id"] == body["id"]
    assert api("viewer").get(f"/api/v1/job-schedules?enabled=true&template_id={template.id}").get_json()[
        "items"] == []
    on = technician.patch(made.headers["Location"], json={"enabled": True})
    assert on.get_json()["next_run_at"] is not None

    assert technician.delete(made.headers["Location"]).status_code == 204
    gone = api("viewer").get(made.headers["Location"])
    assert gone.status_code == 404 and gone.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("body", "field", "said"), [
    ({"cron": "0 25 * * *"}, "cron", "the hour field 25 is not one of 0-23"),
    ({"cron": "0 2 * * 8"}, "cron", "the day of the week field 8"),
    ({"cron": "0 2 30 2 *"}, "cron", "0 2 30 2 * never happens"),
    ({"cron": "0 2 * *"}, "cron", "five fields (it has 4)"),
    ({"cron": "@daily"}, "cron", "five fields"),
    ({"cron": ""}, "cron", "cron expression"),
    ({"cron": "0 2 * * *", "limit": "@/etc/passwd"}, "limit", "host pattern"),
    ({"cron": "0 2 * * *", "extra_vars": {"ansible_connection": "local"}}, "extra_vars", "extra variables"),
    ({"cron": "0 2 * * *", "when": "nightly"}, "when", "Unknown field"),
])
def test_a_schedule_the_api_cannot_take_is_refused_naming_the_field(api, session, template, body, field, said):
    before = session.scalar(sa.select(sa.func.count()).select_from(JobSchedule))
    response = api("technician").post("/api/v1/job-schedules", json={"template_id": template.id, **body})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert field in error["fields"], error
    assert said in error["message"] + " ".join(map(str, error["fields"][field]))
    assert session.scalar(sa.select(sa.func.count()).select_from(JobSchedule)) == before


def test_who_may_schedule_what_through_the_api(api, session, template):
    made = api("technician").post("/api/v1/job-schedules", json={"template_id": template.id, "cron": "0 2 * * *"})
    location = made.headers["Location"]
    for role in ("operator", "viewer", "secretariat", "site_staff"):
        assert api(role).post("/api/v1/job-schedules", json={"template_id": template.id,
                                                             "cron": "0 3 * * *"}).status_code == 403, role
        assert api(role).patch(location, json={"enabled": False}).status_code == 403, role
        assert api(role).delete(location).status_code == 403, role
    assert api("operator").get(location).status_code == 200
    assert api("site_staff").get("/api/v1/job-schedules").status_code == 403
    no_template = api("technician").post("/api/v1/job-schedules", json={"template_id": 999999, "cron": "0 2 * * *"})
    assert no_template.status_code == 422 and "template_id" in no_template.get_json()["error"]["fields"]
    assert api("technician").patch("/api/v1/job-schedules/999999", json={"enabled": False}).status_code == 404

    # An admin-only template: the technician can neither schedule it nor touch the admin's schedule of it.
    with commit_scope():
        service.save_template(session, {"launch_roles": ["admin"]}, template)
    refused = api("technician").post("/api/v1/job-schedules", json={"template_id": template.id, "cron": "0 4 * * *"})
    assert refused.status_code == 403 and template.name in refused.get_json()["error"]["message"]
    admins = api("admin").post("/api/v1/job-schedules", json={"template_id": template.id, "cron": "0 4 * * *"})
    assert admins.status_code == 201
    for change in ({"limit": "r1"}, {"enabled": False}):
        assert api("technician").patch(admins.headers["Location"], json=change).status_code == 403
    assert api("technician").delete(admins.headers["Location"]).status_code == 403
    assert api("admin").get(admins.headers["Location"]).get_json()["enabled"] is True


def test_the_openapi_document_describes_the_schedules_and_the_templates_guard(client):
    validator = pytest.importorskip("openapi_spec_validator")
    spec = client.get("/api/v1/openapi.json").get_json()
    validator.validate(spec)
    operations = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert {("/api/v1/job-schedules", "get"), ("/api/v1/job-schedules", "post"),
            ("/api/v1/job-schedules/{schedule_id}", "get"), ("/api/v1/job-schedules/{schedule_id}", "patch"),
            ("/api/v1/job-schedules/{schedule_id}", "delete"), ("/api/v1/job-templates/{template_id}", "get"),
            ("/api/v1/job-templates/{template_id}", "patch")} <= operations
    schemas = spec["components"]["schemas"]
    assert {"cron", "template_id"} <= set(schemas["ScheduleCreate"]["required"])
    assert {"next_run_at", "template_name", "timezone"} <= set(schemas["ScheduleOut"]["properties"])
    minutes = schemas["TemplatePatch"]["properties"]["expected_minutes"]
    assert (minutes["minimum"], minutes["maximum"]) == (1, 1440)
    assert {"changes_equipment", "expected_minutes"} <= set(schemas["TemplateOut"]["properties"])
    create = spec["paths"]["/api/v1/job-schedules"]["post"]
    assert {"201", "403", "422"} <= set(create["responses"])
