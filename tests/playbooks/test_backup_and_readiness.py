"""Backups and the pre-meeting checks: backup_config.yml stores each endpoint's configuration in VCOps, a new
version only when it changed, and the backups page shows what changed; readiness.yml names the endpoint whose
SIP is not registered while the ready ones pass (their clock in sync, their site's link answering)."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from app.provisioning.backups.models import ConfigBackup
from app.provisioning.models import JobState
from simulators.cisco_xapi import StateStore


def _backups(p) -> list[ConfigBackup]:
    with p.app.app_context():
        rows = list(db.session.scalars(sa.select(ConfigBackup).order_by(ConfigBackup.id)))
        db.session.remove()
    return rows


def test_backups_keep_a_version_only_when_the_configuration_changed_and_show_the_diff(province):
    p = province(2)
    first = p.run("backup_config.yml")
    assert first.state is JobState.SUCCEEDED, p.log(first.id)
    stored = _backups(p)
    assert sorted(b.endpoint_id for b in stored) == sorted(p.endpoint_ids)
    assert all(b.job_id == first.id and "SIP DisplayName" in b.content for b in stored)

    with StateStore(p.hosts[0].state_path).edit() as state:
        state["config"]["SIP DisplayName"] = "Phòng họp mới"
    second = p.run("backup_config.yml")
    assert second.state is JobState.SUCCEEDED
    newer = [b for b in _backups(p) if b.job_id == second.id]
    assert [b.endpoint_id for b in newer] == [p.endpoint_ids[0]]  # the unchanged one kept no new version

    client = p.app.test_client()
    signed_in = client.post("/login", data={"email": "tech@example.com", "password": "correct horse battery"})
    assert signed_in.status_code == 302
    page = client.get(f"/backups/endpoints/{p.endpoint_ids[0]}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "+SIP DisplayName: Phòng họp mới" in text and "-SIP DisplayName: " in text


def test_readiness_names_the_endpoint_whose_sip_is_not_registered(province):
    p = province(2)
    assert p.run("provision_endpoint.yml").state is JobState.SUCCEEDED
    with StateStore(p.hosts[1].state_path).edit() as state:  # its registrar setting was lost
        state["config"]["SIP Proxy 1 Address"] = ""

    job = p.run("readiness.yml")

    assert job.host_counts[p.names[0]]["failed"] == 0 and job.host_counts[p.names[0]]["ok"] == 4, p.log(job.id)
    assert job.host_counts[p.names[1]]["failed"] == 1
    assert "SIP not registered (Inactive: No proxy configured)" in p.log(job.id)
