"""Fixtures of the job tests: test playbooks run on the controller (`connection: local`), equipment whose
hosts are the controller itself, a credential with a known secret, and apps that commit for real so that a
worker (a thread or another process) sees what a request wrote."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.models import Role, User
from app.auth.service import create_token, create_user
from app.db import commit_scope, db
from app.provisioning import service
from app.provisioning.credentials import service as vault
from app.provisioning.models import Job, JobEvent
from app.sites.models import HostKind, Level, ManagedHost, Site

PLAYBOOKS = Path(__file__).parent / "playbooks"
SECRET = "Zq7-unlikely-Pa55word-4v"
PASSWORD = "correct horse battery"


@dataclass
class Bed:
    """A real-commit app with two link routers (r1, r2) on the controller and a technician's API token."""

    app: Any
    token: str
    user_id: int
    credential_id: int
    work_dir: Path

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        client = self.app.test_client()
        return getattr(client, method)(path, headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    def template(self, playbook: str, **fields: Any) -> int:
        with self.app.app_context():
            with commit_scope() as session:
                t = service.save_template(session, {"name": f"{playbook} {time.monotonic_ns()}",
                                                    "playbook": playbook, **fields})
            db.session.remove()
        return t.id

    def job(self, job_id: int) -> Job:
        with self.app.app_context():
            job = db.session.get(Job, job_id)
            db.session.remove()
        return job

    def events(self, job_id: int) -> list[JobEvent]:
        with self.app.app_context():
            rows = list(db.session.scalars(sa.select(JobEvent).where(JobEvent.job_id == job_id)
                                           .order_by(JobEvent.id)))
            db.session.remove()
        return rows


def seed_bed(session: Any) -> tuple[int, int]:
    level = Level(code="province", name="Tỉnh", rank=1)
    session.add(level)
    session.flush()
    site = Site(code="TQ", name="Tuyên Quang", level_id=level.id)
    session.add(site)
    session.flush()
    site.path = f"/{site.id}/"
    for name in ("r1", "r2"):
        session.add(ManagedHost(site_id=site.id, name=name, kind=HostKind.LINK_ROUTER, mgmt_address="127.0.0.1"))
    user = create_user(session, "tech@example.com", Role.TECHNICIAN, PASSWORD)
    credential = vault.create_credential(session, "routers", "password", "admin", SECRET)
    vault.assign_credential(session, credential, "link_router")
    return user.id, credential.id


@pytest.fixture
def make_bed(fresh_app: Callable[..., Any], tmp_path: Path) -> Callable[..., Bed]:
    def make(backend: str = "sqlite", **config: Any) -> Bed:
        work = tmp_path / f"work-{time.monotonic_ns()}"
        app = fresh_app(backend, PLAYBOOK_DIR=str(PLAYBOOKS), JOB_WORK_DIR=str(work), **config)
        with app.app_context():
            with commit_scope() as session:
                user_id, credential_id = seed_bed(session)
                token = create_token(session, session.get(User, user_id), "tests")[1]
            db.session.remove()
        return Bed(app, token, user_id, credential_id, work)

    return make


def wait_for(predicate: Callable[[], Any], seconds: float = 30.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None
