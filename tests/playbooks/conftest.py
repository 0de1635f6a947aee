"""Fixtures of the playbook tests: simulated endpoints (tests.support.hosts) known to a real-commit app as Endpoint rows
at the sites of a small province, with their host keys accepted and their logins in the vault, and a way to run
a playbook through the app's job machinery (launch_job, then the worker's outbox delivery and the runner)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope, db
from app.devices.models import HostKey, HostKeyState
from app.provisioning.credentials import service as vault
from app.provisioning.models import Job, JobEvent
from app.sites.models import Endpoint, Level, Link, Site
from tests.support.hosts import LabHost, ssh_hosts  # noqa: F401 - ssh_hosts: a fixture
from tests.support.jobbed import job_events, run_playbook

if not (Path(sys.executable).parent / "ansible-playbook").exists():
    pytest.skip("ansible-playbook is not installed beside the test's Python", allow_module_level=True)

SITES = (("TQ-CH", "Huyện Chiêm Hoá"), ("TQ-HY", "Huyện Hàm Yên"), ("TQ-NH", "Huyện Na Hang"))


@dataclass
class Province:
    """A real-commit app with one endpoint per test host, each at a district of its own."""

    app: Any
    hosts: list[LabHost]
    user_id: int
    endpoint_ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def run(self, playbook: str, *, check: bool = False, limit: str = "") -> Job:
        return run_playbook(self.app, self.user_id, playbook, limit=limit, check=check)

    def events(self, job_id: int) -> list[JobEvent]:
        return job_events(self.app, job_id)

    def log(self, job_id: int) -> str:
        return "".join(e.stdout + "\n" for e in self.events(job_id))


@pytest.fixture
def province(ssh_hosts: Callable[..., list[LabHost]],  # noqa: F811 - the fixture imported above
             fresh_app: Callable[..., Any], tmp_path: Path) -> Callable[..., Province]:
    def make(n: int = 3, backend: str = "sqlite") -> Province:
        hosts = ssh_hosts(n, "xapi", boot_seconds=1.0)
        app = fresh_app(backend, JOB_WORK_DIR=str(tmp_path / f"work-{time.monotonic_ns()}"))
        with app.app_context():
            with commit_scope() as session:
                province_level = Level(code="province", name="Tỉnh", rank=1)
                district = Level(code="district", name="Huyện", rank=2)
                session.add_all([province_level, district])
                session.flush()
                top = Site(code="TQ", name="UBND tỉnh Tuyên Quang", level_id=province_level.id)
                session.add(top)
                session.flush()
                top.path = f"/{top.id}/"
                user = create_user(session, "tech@example.com", Role.TECHNICIAN, "correct horse battery")
                endpoints = []
                for host, (code, name) in zip(hosts, SITES, strict=False):
                    site = Site(code=code, name=name, level_id=district.id, parent_id=top.id)
                    session.add(site)
                    session.flush()
                    site.path = f"{top.path}{site.id}/"
                    # The link's address at the district is the test host's: the readiness check pings it.
                    session.add(Link(code=f"L-{code}", site_a_id=site.id, address_a=host.address, site_b_id=top.id,
                                     address_b=host.peer_address, bandwidth_kbps=4096))
                    endpoint = Endpoint(site_id=site.id, room_name="Phòng họp 1", vendor="Cisco",
                                        mgmt_address=host.address, mgmt_port=host.port,
                                        sip_uri=f"{code.lower()}@vc.tuyenquang.example.com")
                    session.add(endpoint)
                    session.flush()
                    endpoints.append(endpoint)
                    session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                                        fingerprint=host.host_key_fingerprint(), state=HostKeyState.ACCEPTED))
                    credential = vault.create_credential(session, f"room {code}", "password", host.username,
                                                         host.password)
                    vault.assign_credential(session, credential, "endpoint", device=endpoint)
                user_id = user.id
                ids = [e.id for e in endpoints]
                names = [f"{e.site.code}.phong-hop-1" for e in endpoints]
            db.session.remove()
        return Province(app, hosts, user_id, ids, names)

    return make
