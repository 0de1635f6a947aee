"""The meeting-window guard: a job that would change a site's equipment during one of its meetings (setup
buffer included) is refused naming the meeting and the site; check mode and read-only templates pass; a
technician may override with a reason, which the audit log and the job page keep."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import User
from app.db import commit_scope, utcnow
from app.errors import Conflict, Invalid
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus, Participation
from app.provisioning import service
from app.provisioning.guard import service as guard
from app.provisioning.guard.models import JobOverride
from app.provisioning.inventory import endpoint_hostname
from app.provisioning.models import Job
from app.sites.models import Endpoint
from tests.provisioning.conftest import PLAYBOOKS

REASON = "The hall's codec froze; the chair asked us to restart it now."


@pytest.fixture
def template(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "PLAYBOOK_DIR", str(PLAYBOOKS))
    with commit_scope():
        made = service.save_template(session, {"name": f"Provision {uuid.uuid4().hex[:6]}",
                                               "playbook": "local_ping.yml"})
    return made


@pytest.fixture
def endpoint(session):
    """A demo endpoint with a management address: the host the jobs below would change."""
    return session.scalar(sa.select(Endpoint).where(Endpoint.mgmt_address != "").order_by(Endpoint.id))


def _meeting(session, site_id: int, setup_in: int, starts_in: int, ends_in: int, title: str = "") -> Meeting:
    now = utcnow()
    meeting = Meeting(uid=f"{uuid.uuid4()}@test", title=title or f"Giao ban {uuid.uuid4().hex[:4]}",
                      host_site_id=site_id)
    occurrence = Occurrence(setup_starts_at=now + dt.timedelta(minutes=setup_in),
                            starts_at=now + dt.timedelta(minutes=starts_in),
                            ends_at=now + dt.timedelta(minutes=ends_in), status=OccurrenceStatus.SCHEDULED)
    meeting.occurrences.append(occurrence)
    session.add(meeting)
    session.flush()
    session.add(Participation(occurrence_id=occurrence.id, site_id=site_id))
    session.flush()
    return meeting


def _user(session, role: str = "technician") -> User:
    return session.scalar(sa.select(User).where(User.email == f"{role}@example.com"))


def test_technician_cannot_change_a_site_during_the_setup_of_its_meeting(api, session, template, endpoint):
    # The meeting starts in 80 minutes, but its setup (the test call) starts in 20: within a 30-minute job.
    meeting = _meeting(session, endpoint.site_id, setup_in=20, starts_in=80, ends_in=140)
    # (requests share the test's session: what is not committed would go with the refused request's rollback)
    session.commit()
    response = api("technician").post("/api/v1/jobs", json={"template_id": template.id,
                                                            "limit": endpoint_hostname(endpoint)})
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "meeting_in_progress"
    assert meeting.title in error["message"] and endpoint.site.name in error["message"]
    assert "override" in error["fields"]
    # The refusal changed nothing: no job was queued, and the meeting is still booked.
    assert session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.template_id == template.id)) == 0
    session.refresh(meeting)
    assert [o.status for o in meeting.occurrences] == [OccurrenceStatus.SCHEDULED]


def test_a_meeting_after_the_jobs_expected_duration_or_at_another_site_does_not_stop_it(session, template,
                                                                                         endpoint):
    _meeting(session, endpoint.site_id, setup_in=40, starts_in=100, ends_in=160)  # after 30 minutes
    other = session.scalar(sa.select(Endpoint).where(Endpoint.mgmt_address != "",
                                                     Endpoint.site_id != endpoint.site_id))
    _meeting(session, other.site_id, setup_in=-10, starts_in=0, ends_in=60)
    job = service.launch_job(session, template, _user(session), limit=endpoint_hostname(endpoint))
    assert job.id and job.override is None
    guard.save_template_guard(session, template, True, 60)  # a longer job reaches the first meeting's setup
    with pytest.raises(Conflict):
        service.launch_job(session, template, _user(session), limit=endpoint_hostname(endpoint))


def test_check_mode_and_read_only_templates_may_run_during_a_meeting(session, template, endpoint):
    _meeting(session, endpoint.site_id, setup_in=-30, starts_in=0, ends_in=60)
    group = f"site_{endpoint.site.code}".replace("-", "_")
    checked = service.launch_job(session, template, _user(session), limit=group, check=True)
    assert checked.check_mode
    with pytest.raises(Conflict):
        service.launch_job(session, template, _user(session), limit=group)
    guard.save_template_guard(session, template, changes_equipment=False, expected_minutes=30)
    backup = service.launch_job(session, template, _user(session), limit=group)
    assert backup.id and backup.override is None


def test_technician_overrides_with_a_reason_which_the_audit_log_and_the_job_page_keep(client, login, session,
                                                                                      template, endpoint):
    meeting = _meeting(session, endpoint.site_id, setup_in=-30, starts_in=0, ends_in=60)
    job = service.launch_job(session, template, _user(session), limit=endpoint_hostname(endpoint),
                             override=True, override_reason=REASON)
    override = session.get(JobOverride, job.id)
    assert override.reason == REASON and [m["title"] for m in override.meetings] == [meeting.title]
    assert override.meetings[0]["sites"] == [endpoint.site.name]
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "override",
                                                       AuditEntry.object_id == str(job.id)))
    assert entry.after["reason"] == REASON and entry.after["meetings"][0]["title"] == meeting.title
    session.commit()  # kept through the viewer's requests (they share the test's session and roll back theirs)
    login("viewer")
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert 'id="job-override"' in page and meeting.title in page and "restart it now" in page


@pytest.mark.parametrize("reason", ["", "   ", "urgent"])
def test_an_override_without_a_real_reason_is_refused(session, template, endpoint, reason):
    _meeting(session, endpoint.site_id, setup_in=-30, starts_in=0, ends_in=60)
    before = session.scalar(sa.select(sa.func.count()).select_from(JobOverride))
    with pytest.raises(Invalid) as refused:
        service.launch_job(session, template, _user(session), limit=endpoint_hostname(endpoint),
                           override=True, override_reason=reason)
    assert "override_reason" in refused.value.fields
    assert session.scalar(sa.select(sa.func.count()).select_from(JobOverride)) == before


def test_the_launch_form_offers_the_override_once_a_meeting_is_in_the_way(client, login, session, template,
                                                                          endpoint):
    meeting = _meeting(session, endpoint.site_id, setup_in=-30, starts_in=0, ends_in=60)
    with commit_scope():
        pass
    login("technician")
    response = client.post(f"/jobs/templates/{template.id}/launch",
                           data={"limit": endpoint_hostname(endpoint), "tags": "", "extra_vars": "{}"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert meeting.title in page and 'name="override_reason"' in page


# ---------------------------------------------------------------- a template's guard settings: page and API

def test_technician_marks_a_backup_template_read_only_on_its_page_and_it_then_runs_during_a_meeting(
        client, login, session, template, endpoint):
    _meeting(session, endpoint.site_id, setup_in=-30, starts_in=0, ends_in=60)
    with commit_scope():
        pass
    login("technician")
    page = client.get(f"/jobs/templates/{template.id}/guard")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-field="changes_equipment">yes' in text and 'data-field="expected_minutes">30' in text

    saved = client.post(f"/jobs/templates/{template.id}/guard", data={"expected_minutes": "45"})  # box unticked
    assert saved.status_code == 302, saved.get_data(as_text=True)
    shown = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'data-field="changes_equipment">no (read-only)' in shown and 'data-field="expected_minutes">45' in shown
    assert "Guard settings of" in shown
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "TemplateGuard",
                                                       AuditEntry.object_id == str(template.id)))
    assert entry.user_id == _user(session).id and entry.after["before"]["changes_equipment"] is True
    assert entry.after["changes_equipment"] is False and entry.after["expected_minutes"] == 45
    job = service.launch_job(session, template, _user(session), limit=endpoint_hostname(endpoint))
    assert job.id and job.override is None  # the meeting no longer stands in the way of a read-only run


@pytest.mark.parametrize("minutes", ["0", "1441", "-5", "half an hour", ""])
def test_the_guard_page_refuses_a_duration_outside_1_to_1440_minutes_next_to_the_field(client, login, session,
                                                                                       template, minutes):
    login("technician")
    response = client.post(f"/jobs/templates/{template.id}/guard",
                           data={"changes_equipment": "y", "expected_minutes": minutes})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="expected_minutes-error"' in text
    assert guard.template_guard(session, template).expected_minutes == 30  # nothing stored


def test_api_shows_and_changes_a_templates_guard_settings(api, session, template):
    shown = api("viewer").get(f"/api/v1/job-templates/{template.id}")
    assert shown.status_code == 200
    assert shown.get_json()["changes_equipment"] is True and shown.get_json()["expected_minutes"] == 30
    listed = {t["id"]: t for t in api("viewer").get("/api/v1/job-templates").get_json()["items"]}
    assert listed[template.id]["expected_minutes"] == 30

    changed = api("technician").patch(f"/api/v1/job-templates/{template.id}",
                                      json={"changes_equipment": False, "expected_minutes": 90})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["changes_equipment"] is False and changed.get_json()["expected_minutes"] == 90
    assert api("viewer").get(f"/api/v1/job-templates/{template.id}").get_json()["expected_minutes"] == 90
    # One field at a time: the other stays; the template's own fields change the same way.
    again = api("admin").patch(f"/api/v1/job-templates/{template.id}",
                               json={"expected_minutes": 1440, "description": "Nightly backups"})
    assert again.status_code == 200, again.get_json()
    body = again.get_json()
    assert body["changes_equipment"] is False and body["expected_minutes"] == 1440
    assert body["description"] == "Nightly backups"
    listed = {t["id"]: t for t in api("viewer").get("/api/v1/job-templates").get_json()["items"]}
    assert listed[template.id]["changes_equipment"] is False and listed[template.id]["expected_minutes"] == 1440


@pytest.mark.parametrize(("body", "field"), [
    ({"expected_minutes": 0}, "expected_minutes"), ({"expected_minutes": 1441}, "expected_minutes"),
    ({"expected_minutes": "30"}, "expected_minutes"), ({"expected_minutes": 2.5}, "expected_minutes"),
    ({"changes_equipment": "maybe"}, "changes_equipment"), ({"expected_minute": 30}, "expected_minute"),
    ({"playbook": "not-a-playbook.yml"}, "playbook"),
])
def test_api_refuses_bad_guard_settings_naming_the_field_and_changes_nothing(api, session, template, body, field):
    response = api("technician").patch(f"/api/v1/job-templates/{template.id}", json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert field in error["fields"], error
    shown = api("viewer").get(f"/api/v1/job-templates/{template.id}").get_json()
    assert shown["expected_minutes"] == 30 and shown["changes_equipment"] is True


def test_only_those_who_may_launch_a_template_change_its_guard_settings(api, client, login, session, template):
    for role in ("operator", "viewer", "secretariat"):
        refused = api(role).patch(f"/api/v1/job-templates/{template.id}", json={"changes_equipment": False})
        assert refused.status_code == 403, role
    assert api("technician").patch("/api/v1/job-templates/999999", json={"expected_minutes": 5}).status_code == 404
    # An admin-only template: a technician may neither open it to themselves nor let it pass the guard.
    with commit_scope():
        service.save_template(session, {"launch_roles": ["admin"]}, template)
    for body in ({"changes_equipment": False}, {"launch_roles": ["admin", "technician"]}):
        refused = api("technician").patch(f"/api/v1/job-templates/{template.id}", json=body)
        assert refused.status_code == 403 and "may not change it" in refused.get_json()["error"]["message"]
    login("technician")
    page = client.post(f"/jobs/templates/{template.id}/guard", data={"expected_minutes": "10"})
    assert page.status_code == 403
    # Nor through the template's own form, which would let them add their role to it.
    assert client.get(f"/jobs/templates/{template.id}/edit").status_code == 403
    edited = client.post(f"/jobs/templates/{template.id}/edit", data={
        "name": template.name, "playbook": template.playbook, "launch_roles": ["admin", "technician"]})
    assert edited.status_code == 403
    session.expire_all()
    assert template.launch_roles == ["admin"]
    assert api("admin").patch(f"/api/v1/job-templates/{template.id}",
                              json={"changes_equipment": False}).status_code == 200
    assert guard.template_guard(session, template).changes_equipment is False
