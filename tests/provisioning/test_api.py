"""Launching is checked before anything is queued; a launch answers 202 with the job's address and queues one
outbox message; the pages launch, list with filters, show the job with its log, and cancel and relaunch."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from app.auth.models import User
from app.db import commit_scope, utcnow
from app.errors import Invalid
from app.provisioning import service
from app.provisioning.credentials import service as vault
from app.provisioning.models import Job, JobEvent, JobState, JobTemplate
from app.queue.models import OutboxMessage
from app.sites.models import Endpoint
from tests.provisioning.conftest import PLAYBOOKS


@pytest.fixture
def template(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "PLAYBOOK_DIR", str(PLAYBOOKS))
    # Committed (into the test's outer transaction): a refused request's rollback must not take it away.
    with commit_scope():
        made = service.save_template(session, {"name": "Ping the routers", "playbook": "local_ping.yml",
                                               "default_limit": "link_routers", "check_allowed": False,
                                               "extra_vars": {"bitrate": 2048}})
    return made


def _jobs(session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Job))


def test_technician_launches_through_the_api_and_gets_202_with_the_jobs_address(api, session, template):
    response = api("technician").post("/api/v1/jobs", json={"template_id": template.id, "limit": "r1,TQ-*:!r9",
                                                            "tags": "a, b", "extra_vars": {"bitrate": 4096}})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{body['id']}")
    assert body["state"] == "queued" and body["limit"] == "r1,TQ-*:!r9" and body["tags"] == "a,b"
    assert body["extra_vars"] == {"bitrate": 4096} and body["launched_by"] == "technician@example.com"
    message = session.scalar(sa.select(OutboxMessage).where(OutboxMessage.task == "jobs.run")
                             .order_by(OutboxMessage.id.desc()))
    assert message.payload == {"job_id": body["id"]}
    followed = api("viewer").get(response.headers["Location"])
    assert followed.status_code == 200 and followed.get_json()["template_name"] == "Ping the routers"
    defaults = api("technician").post("/api/v1/jobs", json={"template_id": template.id}).get_json()
    assert defaults["limit"] == "link_routers" and defaults["extra_vars"] == {"bitrate": 2048}


@pytest.mark.parametrize(("body", "field"), [
    ({"limit": "@/etc/passwd"}, "limit"),
    ({"limit": "~.*"}, "limit"),
    ({"limit": "r1 r2"}, "limit"),
    ({"tags": "ok,bad tag"}, "tags"),
    ({"extra_vars": {"ansible_connection": "local"}}, "extra_vars"),
    ({"extra_vars": {"vcops_anything": 1}}, "extra_vars"),
    ({"extra_vars": {"not a name": 1}}, "extra_vars"),
    ({"check_mode": True}, "check_mode"),
])
def test_a_launch_that_could_change_what_runs_is_refused_naming_the_field(api, session, template, body, field):
    before = _jobs(session)
    response = api("technician").post("/api/v1/jobs", json={"template_id": template.id, **body})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert _jobs(session) == before


def test_who_may_launch_what(api, session, template):
    assert api("operator").post("/api/v1/jobs", json={"template_id": template.id}).status_code == 403
    assert api("technician").post("/api/v1/jobs", json={"template_id": 999999}).status_code == 404
    with commit_scope():
        service.save_template(session, {"launch_roles": ["admin"]}, template)
    refused = api("technician").post("/api/v1/jobs", json={"template_id": template.id})
    assert refused.status_code == 403 and "may not launch" in refused.get_json()["error"]["message"]
    assert api("admin").post("/api/v1/jobs", json={"template_id": template.id}).status_code == 202
    with pytest.raises(Invalid, match="cannot launch"):
        service.save_template(session, {"launch_roles": ["viewer"]}, template)


def test_a_template_names_one_of_the_installations_playbooks(session, template):
    with pytest.raises(Invalid) as refused:
        service.save_template(session, {"name": "escape", "playbook": "../../etc/passwd.yml"})
    assert "playbook" in refused.value.fields
    assert "local_ping.yml" in service.list_playbooks()


def test_a_queued_job_is_cancelled_at_once_and_an_ended_one_cannot_be(api, template):
    client = api("technician")
    job_id = client.post("/api/v1/jobs", json={"template_id": template.id}).get_json()["id"]
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", json={})
    assert cancelled.status_code == 202 and cancelled.get_json()["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", json={})
    assert again.status_code == 409 and "cannot be cancelled" in again.get_json()["error"]["message"]
    relaunched = client.post(f"/api/v1/jobs/{job_id}/relaunch", json={})
    assert relaunched.status_code == 202 and relaunched.get_json()["id"] != job_id
    listed = client.get(f"/api/v1/jobs?state=cancelled&template_id={template.id}").get_json()
    assert [j["id"] for j in listed["items"]] == [job_id]


def test_the_pages_launch_list_and_show_a_job_with_its_live_log(app, login, session, template):
    client = login("technician")
    listing = client.get("/jobs/templates")
    assert listing.status_code == 200 and "Ping the routers" in listing.get_data(as_text=True)
    form = client.get(f"/jobs/templates/{template.id}/launch")
    assert form.status_code == 200 and "link_routers" in form.get_data(as_text=True)
    bad = client.post(f"/jobs/templates/{template.id}/launch", data={"limit": "@hosts", "extra_vars": "{}"})
    assert bad.status_code == 422 and "no spaces, @files" in bad.get_data(as_text=True)
    launched = client.post(f"/jobs/templates/{template.id}/launch", data={"limit": "r1", "tags": "",
                                                                          "extra_vars": '{"bitrate": 1}'})
    assert launched.status_code == 302
    job = session.scalar(sa.select(Job).order_by(Job.id.desc()))
    assert launched.headers["Location"].endswith(f"/jobs/{job.id}") and job.limit == "r1"

    # As if the worker had started it and said something, while another job waits for it.
    job.start()
    session.add(JobEvent(job_id=job.id, seq=1, type="play", stdout="PLAY [Check that each host answers]"))
    waiting = service.launch_job(session, template, session.get(User, job.launched_by_id), limit="r1")
    waiting.waiting_for_job_id = job.id
    session.flush()
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "PLAY [Check that each host answers]" in page and "job_log.js" in page
    assert f'action="/jobs/{job.id}/cancel"' in page
    assert f"Waiting for job #{job.id}" in client.get(f"/jobs/{waiting.id}").get_data(as_text=True)
    polled = client.get(f"/jobs/{job.id}/events.json?after=0").get_json()
    assert [e["seq"] for e in polled["events"]] == [1] and polled["state"] == "running"
    assert client.get(f"/jobs/{job.id}/events.json?after=1").get_json()["events"] == []

    assert client.post(f"/jobs/{job.id}/cancel").status_code == 302
    session.refresh(job)
    assert job.cancel_requested_at is not None and job.state is JobState.RUNNING

    history = client.get(f"/jobs/?state=running&template_id={template.id}").get_data(as_text=True)
    assert f"#{job.id}" in history and f"#{waiting.id}<" not in history
    today = utcnow().date().isoformat()
    assert f"#{job.id}" in client.get(f"/jobs/?since={today}").get_data(as_text=True)
    assert f"#{job.id}" not in client.get("/jobs/?until=2001-01-01").get_data(as_text=True)


def test_viewers_follow_jobs_but_cannot_launch_or_cancel(app, session, template):
    viewer = app.test_client()
    viewer.post("/login", data={"email": "viewer@example.com", "password": "correct horse battery"})
    assert viewer.get("/jobs/").status_code == 200
    assert viewer.get(f"/jobs/templates/{template.id}/launch").status_code == 403
    assert "Launch</a>" not in viewer.get("/jobs/templates").get_data(as_text=True)


def test_technician_writes_a_template_on_its_page_and_assigns_a_credential(app, login, session, monkeypatch):
    monkeypatch.setitem(app.config, "PLAYBOOK_DIR", str(PLAYBOOKS))
    client = login("technician")
    assert "local_ping.yml" in client.get("/jobs/templates/new").get_data(as_text=True)
    refused = client.post("/jobs/templates/new", data={"name": "Backups", "playbook": "local_ping.yml",
                                                       "extra_vars": "[1, 2]", "launch_roles": ["technician"]})
    assert refused.status_code == 422 and "must be a JSON object" in refused.get_data(as_text=True)
    saved = client.post("/jobs/templates/new", data={"name": "Backups", "playbook": "local_ping.yml",
                                                     "default_limit": "endpoints", "tags": "backup",
                                                     "extra_vars": '{"keep": 5}', "launch_roles": ["technician"],
                                                     "check_allowed": "y"})
    assert saved.status_code == 302
    made = session.scalar(sa.select(JobTemplate).where(JobTemplate.name == "Backups"))
    assert (made.extra_vars, made.launch_roles, made.tags) == ({"keep": 5}, ["technician"], "backup")
    assert '"keep": 5' in html.unescape(client.get(f"/jobs/templates/{made.id}/edit").get_data(as_text=True))

    with commit_scope():
        credential = vault.create_credential(session, "endpoints", "password", "admin", "pw-for-endpoints")
    endpoint = session.scalars(sa.select(Endpoint)).first()
    form = client.get(f"/jobs/credentials/{credential.id}/assign")
    assert form.status_code == 200 and endpoint.room_name in form.get_data(as_text=True)
    assigned = client.post(f"/jobs/credentials/{credential.id}/assign",
                           data={"equipment_kind": "endpoint", "site_id": "", "device": f"endpoint:{endpoint.id}"})
    assert assigned.status_code == 302
    assert vault.credential_for_endpoint(session, endpoint).password == "pw-for-endpoints"
    listing = client.get("/jobs/credentials").get_data(as_text=True)
    assert f"only {endpoint.site.code} {endpoint.room_name}" in listing
    wrong = client.post(f"/jobs/credentials/{credential.id}/assign",
                        data={"equipment_kind": "bridge", "site_id": "", "device": f"endpoint:{endpoint.id}"})
    assert wrong.status_code == 422 and "not of the kind chosen" in wrong.get_data(as_text=True)
