"""Host locks: one job at a time per host (JobHost rows, unique by host). A job takes every host of its run
or none; one whose host is busy waits for the holder, and is queued again when the holder frees its hosts."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import commit_scope, db
from app.provisioning.models import Job, JobHost, JobState
from app.provisioning.runner.processes import worker_name
from app.queue import outbox


def release_hosts(session: so.Session, job: Job) -> None:
    """Free the job's hosts and wake the jobs that waited for it (call with the job's row locked and its
    terminal state set, in the same transaction)."""
    session.execute(sa.delete(JobHost).where(JobHost.job_id == job.id))
    waiting = session.scalars(sa.select(Job.id).where(Job.waiting_for_job_id == job.id,
                                                      Job.state == JobState.QUEUED)).all()
    for job_id in waiting:
        outbox.enqueue(session, "jobs.run", job_id=job_id)


def take_hosts(job_id: int, hosts: list[str]) -> str:
    """Take every host or none: "run" (the job is started), "wait" (it waits for the holder) or "skip"
    (no longer queued)."""
    for _attempt in range(10):
        try:
            with commit_scope() as session:
                job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
                if job is None or job.state is not JobState.QUEUED:
                    return "skip"
                holders = session.scalars(sa.select(JobHost.job_id).where(JobHost.host.in_(hosts),
                                                                          JobHost.job_id != job_id)
                                          .order_by(JobHost.job_id)).all() if hosts else []
                if holders:
                    # Lock the holder: it either ends after we record our wait (and wakes us), or it has
                    # ended already and freed the host, and we try again at once.
                    holder = session.get(Job, holders[0], with_for_update=True, populate_existing=True)
                    if holder is not None and not holder.finished:
                        job.waiting_for_job_id = holder.id
                        job.worker = ""  # back in the queue's hands: the holder's end queues it again
                        return "wait"
                    continue
                session.add_all(JobHost(host=h, job_id=job_id) for h in hosts)
                job.start()
                job.worker = worker_name()
                return "run"
        except sa.exc.IntegrityError:
            db.session.remove()  # another job took one of the hosts meanwhile: look again
    return "wait"
