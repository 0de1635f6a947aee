"""The reapers (the periodic "reap_lost_jobs" task): runs whose worker died, ended and marked lost, and
queued jobs a dead worker had claimed but never started, marked lost too; queued jobs still waiting for a job
that has ended are woken."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from app.db import utcnow
from app.provisioning.models import TERMINAL_STATES, Job, JobState
from app.provisioning.runner.locks import release_hosts
from app.provisioning.runner.processes import end_processes, process_alive
from app.provisioning.runner.workdir import remove_run_dir
from app.queue import outbox
from app.queue.models import WorkerCheckin

log = logging.getLogger(__name__)


def reap_lost(session: so.Session) -> list[int]:
    """Both reapers, for the periodic task: runs whose worker died, and claims never started."""
    return reap_lost_jobs(session) + reap_lost_claims(session)


def worker_gone(session: so.Session, worker: str, stale: dt.timedelta) -> tuple[bool, bool]:
    """(gone, here): whether the job's worker is gone, and whether it ran on this machine."""
    host, _sep, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not process_alive(int(pid)), True
    if not worker:
        return True, False
    # Another machine: gone when no worker of that machine has checked in lately (its own reaper, if it
    # runs, ends the processes it left).
    seen = session.scalar(sa.select(sa.func.max(WorkerCheckin.seen_at))
                          .where(WorkerCheckin.name.like(f"{host}:%")))
    return seen is None or seen < utcnow() - stale, False


def reap_lost_jobs(session: so.Session) -> list[int]:
    """Mark running jobs whose worker died as lost, after ending their ansible-playbook process group on
    this machine, and free their hosts; wake queued jobs still waiting for a job that has ended.
    Returns the ids of the jobs marked lost."""
    stale = dt.timedelta(seconds=int(current_app.config["WORKER_STALE_SECONDS"]))
    lost: list[int] = []
    running = session.scalars(sa.select(Job.id).where(Job.state == JobState.RUNNING).order_by(Job.id)).all()
    for job_id in running:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.state is not JobState.RUNNING:
            continue
        gone, here = worker_gone(session, job.worker, stale)
        if not gone:
            continue
        if here:
            if not end_processes(job.pgid, job.run_dir):
                log.error("job %s: processes of the run survive SIGKILL; not marked lost yet", job.id)
                continue
            if job.run_dir:
                remove_run_dir(Path(job.run_dir))  # it holds opened credentials
        job.mark_lost()
        job.error = f"The worker {job.worker} stopped during the run."
        job.run_dir = ""
        release_hosts(session, job)
        lost.append(job.id)
        log.warning("job %s marked lost: worker %s is gone", job.id, job.worker)
    blocker = so.aliased(Job)
    waiting = session.scalars(sa.select(Job.id).join(blocker, Job.waiting_for_job_id == blocker.id)
                              .where(Job.state == JobState.QUEUED, blocker.state.in_(TERMINAL_STATES))).all()
    for job_id in waiting:
        outbox.enqueue(session, "jobs.run", job_id=job_id)
    session.flush()
    return lost


def reap_lost_claims(session: so.Session) -> list[int]:
    """Mark lost the queued jobs that a worker claimed (Job.worker is set as it takes the job off the queue)
    and that it never started because it died meanwhile: the queue's task was consumed, so nobody else would
    ever run them, and they would stay queued for good. Returns their ids.

    Lost, not queued again: as AWX does with a job its node had taken but not started ("waiting" on a node
    that is gone: awx.main.dispatch.reaper marks it failed and never re-runs it). A job that kills the worker
    taking it must not go on to kill the next one; and a run that would come minutes later than the technician
    launched it could fall in a meeting that the launch's guard never saw. Nothing ran on the hosts (the run
    starts only once the job is running), so relaunching is safe, and the job says so.
    """
    stale = dt.timedelta(seconds=int(current_app.config["WORKER_STALE_SECONDS"]))
    lost: list[int] = []
    claimed = session.scalars(sa.select(Job.id).where(Job.state == JobState.QUEUED, Job.worker != "")
                              .order_by(Job.id)).all()
    for job_id in claimed:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.state is not JobState.QUEUED or not job.worker:
            continue
        gone, _here = worker_gone(session, job.worker, stale)  # the running jobs' own test
        if not gone:
            continue
        job.mark_lost()  # it never ran: no start time
        job.error = (f"The worker {job.worker} stopped after taking the job and before starting the run; nothing "
                     f"ran on the hosts. Relaunch it.")
        release_hosts(session, job)  # it holds none yet; whoever might wait for it is woken all the same
        lost.append(job.id)
    session.flush()
    return lost


