"""Bridges are backed up too: a bridge is a Linux server (a namespaced test host) set up by server_baseline.yml;
backup_config.yml, run through the app's jobs, reads the media service's configuration from the bridge and VCOps
keeps it as a version of that bridge, a new one only when it changed; the backups pages show the bridge's
versions and what changed between them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.models import Role, User
from app.auth.service import create_user
from app.db import commit_scope, db
from app.devices.models import HostKey, HostKeyState
from app.provisioning import service
from app.provisioning.backups.models import ConfigBackup
from app.provisioning.credentials import service as vault
from app.provisioning.models import Job, JobState
from app.sites.models import Bridge
from tests.playbooks.conftest import Province
from tests.support.hosts import LabHost
from tests.support.outbox import drain_outbox
from tests.support.seeds import province_site

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/nft").exists(), reason="server_baseline.yml checks its "
                                "firewall rules with nft: apt-get install nftables")

PASSWORD = "correct horse battery"
BASELINE = {"ntp_servers": ["198.18.0.1"]}  # the lab's side of the link: no time server of the real world


@pytest.fixture
def bridge_bed(ssh_hosts: Callable[..., list[LabHost]], fresh_app: Callable[..., Any],
               tmp_path: Path) -> tuple[Province, int]:
    """A real-commit app whose one bridge is a Linux test host, its host key pinned, its login in the vault."""
    host = ssh_hosts(1, "linux")[0]
    app = fresh_app("sqlite", JOB_WORK_DIR=str(tmp_path / "work"))
    with app.app_context():
        with commit_scope() as session:
            site = province_site(session)
            bridge = Bridge(name="mcu-tq", vendor="VCOps media", site_id=site.id, mgmt_address=host.address,
                            sip_address="mcu@vc.tuyenquang.example.com", total_ports=40)
            session.add(bridge)
            session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                                fingerprint=host.host_key_fingerprint(), state=HostKeyState.ACCEPTED))
            user = create_user(session, "tech@example.com", Role.TECHNICIAN, PASSWORD)
            credential = vault.create_credential(session, "bridge key", "ssh_key", host.username,
                                                 host.private_key_text)
            vault.assign_credential(session, credential, "bridge")
            session.flush()
            user_id, bridge_id = user.id, bridge.id
        db.session.remove()
    return Province(app, [host], user_id), bridge_id


def _versions(p: Province, bridge_id: int) -> list[ConfigBackup]:
    with p.app.app_context():
        rows = list(db.session.scalars(sa.select(ConfigBackup).where(ConfigBackup.bridge_id == bridge_id)
                                       .order_by(ConfigBackup.id)))
        db.session.remove()
    return rows


def _run(p: Province, playbook: str, **extra_vars: Any) -> Any:
    """Launch as the technician with extra variables (Province.run takes none), and carry it out as a worker."""
    with p.app.app_context():
        with commit_scope() as session:
            template = service.save_template(session, {"name": f"{playbook} {time.monotonic_ns()}",
                                                       "playbook": playbook})
            job_id = service.launch_job(session, template, session.get(User, p.user_id),
                                        extra_vars={**BASELINE, **extra_vars}).id
        db.session.remove()
        drain_outbox()
    with p.app.app_context():
        job = db.session.get(Job, job_id)
        db.session.remove()
    return job


def test_a_bridges_configuration_is_kept_in_versions_and_the_page_shows_what_changed(bridge_bed):
    p, bridge_id = bridge_bed
    host = p.hosts[0]
    set_up = _run(p, "server_baseline.yml", media_bitrate_kbps=2048)
    assert set_up.state is JobState.SUCCEEDED, p.log(set_up.id) + set_up.error

    first = p.run("backup_config.yml")
    assert first.state is JobState.SUCCEEDED, p.log(first.id) + first.error
    stored = _versions(p, bridge_id)
    assert [b.job_id for b in stored] == [first.id]
    on_the_bridge = host.run("cat", "/etc/vcops-media/media.conf").stdout
    assert stored[0].content == on_the_bridge and "bitrate_kbps = 2048" in stored[0].content
    assert "name = mcu-tq" in stored[0].content
    assert "bitrate_kbps" not in p.log(first.id), "the configuration reaches VCOps, not the job's log"

    again = p.run("backup_config.yml")
    assert again.state is JobState.SUCCEEDED
    assert len(_versions(p, bridge_id)) == 1, "unchanged: no new version"

    # The technician raises the bridge's bitrate; the next backup keeps a second version.
    assert _run(p, "server_baseline.yml", media_bitrate_kbps=4096).state is JobState.SUCCEEDED
    third = p.run("backup_config.yml")
    assert third.state is JobState.SUCCEEDED, p.log(third.id)
    versions = _versions(p, bridge_id)
    assert [b.job_id for b in versions] == [first.id, third.id]
    assert "bitrate_kbps = 4096" in versions[1].content

    client = p.app.test_client()
    assert client.post("/login", data={"email": "tech@example.com", "password": PASSWORD}).status_code == 302
    page = client.get(f"/backups/bridges/{bridge_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "mcu-tq" in text and "-bitrate_kbps = 2048" in text and "+bitrate_kbps = 4096" in text
    index = client.get("/backups/").get_data(as_text=True)
    assert f"/backups/bridges/{bridge_id}" in index and "mcu-tq" in index
    shown = client.get(f"/backups/{versions[0].id}").get_data(as_text=True)
    assert "bitrate_kbps = 2048" in shown and f"/backups/bridges/{bridge_id}" in shown
