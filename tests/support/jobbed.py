"""Running a playbook through the app's job machinery in a test, as a technician and a worker would: launch_job,
then the worker's outbox delivery and the runner. Shared by the playbook tests' beds."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from app.auth.models import User
from app.db import commit_scope, db
from app.provisioning import service
from app.provisioning.models import Job, JobEvent
from tests.support.outbox import drain_outbox


def run_playbook(app: Any, user_id: int, playbook: str, **launch: Any) -> Job:
    """Launch the playbook (a template of its own, check mode allowed) as the user and carry the job out as a
    worker does; the ended job."""
    with app.app_context():
        with commit_scope() as session:
            template = service.save_template(session, {"name": f"{playbook} {time.monotonic_ns()}",
                                                       "playbook": playbook, "check_allowed": True})
            job = service.launch_job(session, template, session.get(User, user_id), **launch)
        job_id = job.id
        db.session.remove()
        drain_outbox()
        finished = db.session.get(Job, job_id)
        db.session.remove()
    return finished


def job_events(app: Any, job_id: int) -> list[JobEvent]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)))
        db.session.remove()
    return rows
