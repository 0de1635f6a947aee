"""The meeting-window guard: a job that would change a site's equipment during one of its meetings (setup
buffer included) is refused naming the meeting and the site; check mode and read-only templates pass; a
technician may override with a reason, which the audit log and the job page keep."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from app.auth.models import AuditEntry, User
from app.db import commit_scope, utcnow
from app.errors import Conflict, Invalid
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus, Participation
from app.provisioning import guard, service
from app.provisioning.runner import endpoint_hostname
from app.provisioning.schedule_models import JobOverride
from app.sites.models import Endpoint
from tests.jobs.conftest import PLAYBOOKS

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
    with commit_scope():
        pass
    response = api("technician").post("/api/v1/jobs", json={"template_id": template.id,
                                                            "limit": endpoint_hostname(endpoint)})
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "meeting_in_progress"
    assert meeting.title in error["message"] and endpoint.site.name in error["message"]
    assert "override" in error["fields"]


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
    with commit_scope():
        pass
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
