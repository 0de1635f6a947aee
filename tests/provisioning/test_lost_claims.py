"""A job that a worker took off the queue but never started (the worker died in between) does not stay queued
for ever: the reaper marks it lost, saying nothing ran, while jobs nobody took yet, or taken by a worker still
alive, stay queued."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.auth.models import User
from app.auth.service import create_token
from app.config import PROJECT_ROOT
from app.db import commit_scope, db, utcnow
from app.provisioning import service
from app.provisioning.guard import service as guard
from app.provisioning.models import Job, JobHost, JobState, JobTemplate
from app.provisioning.runner import reaper, run
from app.queue.models import OutboxMessage, WorkerCheckin
from app.queue.tasks import periodic
from tests.provisioning.conftest import Bed, seed_bed, wait_for


def _queued(session, worker: str) -> Job:
    template = JobTemplate(name=f"t {worker or 'nobody'}", playbook="ping.yml", extra_vars={}, launch_roles=[])
    job = Job(template=template, playbook="ping.yml", state=JobState.QUEUED, worker=worker, extra_vars={},
              host_counts={})
    session.add(job)
    session.flush()
    return job


def test_a_queued_job_taken_by_a_worker_that_is_gone_is_marked_lost_and_the_others_stay_queued(session):
    taken_by_the_dead = _queued(session, "gone-machine:4242")
    taken_by_the_living = _queued(session, "busy-machine:77")
    not_taken = _queued(session, "")
    session.add_all([WorkerCheckin(name="gone-machine:1", seen_at=utcnow() - dt.timedelta(hours=1)),
                     WorkerCheckin(name="busy-machine:77", seen_at=utcnow())])
    session.flush()

    assert reaper.reap_lost_claims(session) == [taken_by_the_dead.id]

    assert taken_by_the_dead.state is JobState.LOST and taken_by_the_dead.finished_at is not None
    assert "gone-machine:4242" in taken_by_the_dead.error and "nothing ran" in taken_by_the_dead.error
    assert taken_by_the_dead.started_at is None  # it never started
    assert taken_by_the_living.state is JobState.QUEUED and not_taken.state is JobState.QUEUED
    assert reaper.reap_lost_claims(session) == []  # once only


def test_a_job_taken_by_another_worker_is_not_run_when_its_message_comes_back_to_the_queue(app, session):
    # The outbox hands a message over again once the lease of the worker that stopped has run out; the job that
    # worker took is the reaper's to mark lost, never run minutes later than the technician launched it.
    taken = _queued(session, "gone-machine:4242")
    session.commit()
    run.run_job(taken.id)
    session.expire_all()
    job = session.get(Job, taken.id)
    assert job.state is JobState.QUEUED and job.worker == "gone-machine:4242" and job.started_at is None


def _held_playbooks(folder: Path) -> None:
    """A playbook that imports its plays from a file; `_hold` later turns that file into a pipe."""
    folder.mkdir()
    (folder / "held.yml").write_text("---\n- import_playbook: held-plays.yml\n")
    (folder / "held-plays.yml").write_text("---\n- hosts: all\n  gather_facts: false\n  tasks: []\n")


def _hold(folder: Path) -> None:
    """The plays are now read from a pipe nobody writes to: a worker preparing its run stops there, after
    taking the job and before starting it, as a worker busy reading a large inventory would. (The launch itself
    reads the plays for the job's sites, so the pipe comes after it.)"""
    (folder / "held-plays.yml").unlink()
    os.mkfifo(folder / "held-plays.yml")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_killed_between_taking_a_job_and_starting_it_leaves_the_job_lost_not_queued(fresh_app, tmp_path,
                                                                                            backend):
    playbooks = tmp_path / "playbooks"
    _held_playbooks(playbooks)
    app = fresh_app(backend, PLAYBOOK_DIR=str(playbooks), JOB_WORK_DIR=str(tmp_path / "work"))
    with app.app_context():
        with commit_scope() as session:
            user_id, credential_id = seed_bed(session)
            token = create_token(session, session.get(User, user_id), "tests")[1]
            template = service.save_template(session, {"name": "Held", "playbook": "held.yml"})
            # Read-only for the guard, which would otherwise read the playbook's hosts at launch.
            guard.save_template_guard(session, template, changes_equipment=False)
            template_id = template.id
        db.session.remove()
    bed = Bed(app, token, user_id, credential_id, tmp_path / "work")
    # Launched before any worker runs, so that the job waits in the queue while its plays become a pipe.
    launched = bed.api("post", "/api/v1/jobs", json={"template_id": template_id})
    assert launched.status_code == 202, launched.get_json()
    job_id = launched.get_json()["id"]
    _hold(playbooks)

    # A real task-queue worker (`vcops worker`) in a process of its own, on the app's database and queue.
    settings = {"DATABASE_URL": app.config["DATABASE_URL"], "INSTANCE_PATH": app.config["INSTANCE_PATH"],
                "SECRET_KEY": app.config["SECRET_KEY"], "PLAYBOOK_DIR": str(playbooks),
                "JOB_WORK_DIR": str(tmp_path / "work"), "REDIS_URL": "", "QUEUE_NAME": app.config["QUEUE_NAME"],
                "QUEUE_WORKERS": "1", "EMBEDDED_WORKER": "false"}
    env = {**os.environ, **{f"VCOPS_{k}": v for k, v in settings.items()}}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=PROJECT_ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    name = f"{socket.gethostname()}:{worker.pid}"
    try:
        def checked_in() -> bool:
            with app.app_context():
                found = db.session.scalar(sa.select(WorkerCheckin.id).where(WorkerCheckin.name == name))
                db.session.remove()
            return found is not None

        assert wait_for(checked_in, seconds=60), (tmp_path / "worker.log").read_text()
        assert wait_for(lambda: bed.job(job_id).worker == name, seconds=60), (tmp_path / "worker.log").read_text()
        assert bed.job(job_id).state is JobState.QUEUED
        with app.app_context():  # the message is the worker's, under its lease, while the worker lives
            rows = db.session.execute(sa.select(OutboxMessage.done_at, OutboxMessage.claimed_until)
                                      .where(OutboxMessage.task == "jobs.run")).all()
            db.session.remove()
        assert rows and all(r.done_at is None and r.claimed_until is not None for r in rows)
        periodic("reap_lost_jobs").call_local()  # the reaper, as the queue runs it every minute
        assert bed.job(job_id).state is JobState.QUEUED, "the worker is alive: its job is left alone"

        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        periodic("reap_lost_jobs").call_local()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        log.close()

    job = bed.job(job_id)
    assert job.state is JobState.LOST and name in job.error and "before starting the run" in job.error
    shown = bed.api("get", f"/api/v1/jobs/{job_id}").get_json()
    assert shown["state"] == "lost" and shown["started_at"] is None and shown["finished_at"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JobHost)) == 0
        db.session.remove()
