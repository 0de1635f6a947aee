"""Fixtures of the Linux playbook tests: an app that commits for real, whose inventory holds Linux test hosts
(network namespaces with their own sshd and view of the filesystem, tests/hosts.py) as media servers or link
routers, logged into with the lab's key through a credential of the vault, each host's key accepted (pinned)
as a technician would; and a worker that carries out the queued jobs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.auth.models import Role
from app.auth.service import create_user
from app.config import PROJECT_ROOT
from app.db import commit_scope, db
from app.devices.models import HostKey, HostKeyState
from app.provisioning.credentials import service as vault
from app.provisioning.models import Job, JobEvent
from app.sites.models import HostKind, ManagedHost
from tests.support.hosts import LabHost, ssh_hosts  # noqa: F401 - ssh_hosts: a fixture
from tests.support.jobbed import job_events, run_playbook
from tests.support.seeds import province_site

PLAYBOOKS = PROJECT_ROOT / "playbooks"
HAS_ANSIBLE = (Path(sys.executable).parent / "ansible-playbook").exists()


@dataclass
class Bed:
    app: Any
    user_id: int
    hosts: dict[str, LabHost]

    def run(self, playbook: str, **launch: Any) -> Job:
        """Launch the playbook as the technician and carry the job out as a worker does; the ended job."""
        return run_playbook(self.app, self.user_id, playbook, **launch)

    def events(self, job_id: int) -> list[JobEvent]:
        return job_events(self.app, job_id)

    def log(self, job: Job) -> str:
        return "".join(e.stdout + "\n" for e in self.events(job.id) if e.stdout) + (job.error or "")


def pin_host_key(session: Any, host: LabHost) -> None:
    """Accept the test host's key, as a technician does after comparing its fingerprint."""
    session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                        fingerprint=host.host_key_fingerprint(), state=HostKeyState.ACCEPTED))


@pytest.fixture
def linux_bed(fresh_app: Callable[..., Any], ssh_hosts: Callable[..., list[LabHost]], tmp_path: Path,  # noqa: F811
              ) -> Callable[..., Bed]:
    """make(n, kind) -> a bed whose inventory holds N Linux test hosts of that kind (media_server, link_router)."""
    if not HAS_ANSIBLE:
        pytest.skip("ansible-playbook is not installed beside the test's Python")

    def make(n: int, kind: HostKind, backend: str = "sqlite", pinned: bool = True) -> Bed:
        hosts = ssh_hosts(n, "linux")
        app = fresh_app(backend, PLAYBOOK_DIR=str(PLAYBOOKS), JOB_WORK_DIR=str(tmp_path / "work"))
        with app.app_context():
            with commit_scope() as session:
                site = province_site(session, "Tuyên Quang")
                for i, host in enumerate(hosts, 1):
                    session.add(ManagedHost(site_id=site.id, name=f"h{i}", kind=kind, mgmt_address=host.address))
                    if pinned:
                        pin_host_key(session, host)
                user = create_user(session, "tech@example.com", Role.TECHNICIAN, "correct horse battery")
                credential = vault.create_credential(session, "lab key", "ssh_key", "root", hosts[0].private_key_text)
                vault.assign_credential(session, credential, kind.value)
            user_id = user.id
            db.session.remove()
        return Bed(app, user_id, {f"h{i}": host for i, host in enumerate(hosts, 1)})

    return make
