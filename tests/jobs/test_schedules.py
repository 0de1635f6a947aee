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
from app.provisioning import schedules, service
from app.provisioning.models import Job
from app.provisioning.runner import endpoint_hostname
from app.provisioning.schedule_models import JobSchedule
from app.sites.models import Endpoint
from tests.jobs.conftest import PASSWORD, PLAYBOOKS

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
