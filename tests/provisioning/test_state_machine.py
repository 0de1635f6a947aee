"""A job moves only along its allowed transitions; a terminal state is never left; a job whose worker's
machine went quiet is marked lost, one whose worker still checks in is not."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.db import utcnow
from app.errors import Conflict
from app.provisioning.models import Job, JobHost, JobState, JobTemplate
from app.provisioning.runner import reaper
from app.queue.models import WorkerCheckin


def _job(state: JobState = JobState.QUEUED) -> Job:
    return Job(id=7, state=state, playbook="ping.yml", limit="", tags="", extra_vars={}, host_counts={})


def test_a_job_goes_from_queued_to_running_to_succeeded_or_failed_by_its_return_code(app):
    with app.app_context():
        job = _job()
        job.start()
        assert job.state is JobState.RUNNING and job.started_at is not None
        job.finish(0)
        assert job.state is JobState.SUCCEEDED and job.return_code == 0 and job.finished
        other = _job()
        other.start()
        other.finish(4)
        assert other.state is JobState.FAILED and other.return_code == 4


@pytest.mark.parametrize(("state", "action"), [
    (JobState.QUEUED, "finish"), (JobState.RUNNING, "start"),
    (JobState.SUCCEEDED, "cancel"), (JobState.FAILED, "start"), (JobState.CANCELLED, "finish"),
    (JobState.LOST, "cancel"), (JobState.SUCCEEDED, "mark_lost"),
])
def test_a_transition_that_is_not_allowed_is_refused_with_a_conflict_and_changes_nothing(app, state, action):
    with app.app_context():
        job = _job(state)
        with pytest.raises(Conflict) as refused:
            getattr(job, action)(*([0] if action == "finish" else []))
        assert job.state is state
        assert refused.value.code == "job_state"
        assert f"Job #7 is {state.value}" in refused.value.message


def test_queued_and_running_jobs_can_be_cancelled(app):
    with app.app_context():
        for state in (JobState.QUEUED, JobState.RUNNING):
            job = _job(state)
            job.cancel()
            assert job.state is JobState.CANCELLED and job.finished_at is not None


def _running_on(session, worker: str) -> Job:
    template = JobTemplate(name=f"t {worker}", playbook="ping.yml", extra_vars={}, launch_roles=[])
    job = Job(template=template, playbook="ping.yml", state=JobState.RUNNING, worker=worker, extra_vars={},
              host_counts={}, started_at=utcnow())
    session.add(job)
    session.flush()
    session.add(JobHost(host=f"host-of-{job.id}", job_id=job.id))
    session.flush()
    return job


def test_a_job_whose_workers_machine_stopped_checking_in_is_marked_lost_and_frees_its_hosts(session):
    quiet = _running_on(session, "gone-machine:4242")
    alive = _running_on(session, "busy-machine:77")
    session.add_all([WorkerCheckin(name="gone-machine:1", seen_at=utcnow() - dt.timedelta(hours=1)),
                     WorkerCheckin(name="busy-machine:77", seen_at=utcnow())])
    session.flush()
    assert reaper.reap_lost_jobs(session) == [quiet.id]
    assert quiet.state is JobState.LOST and "gone-machine:4242" in quiet.error
    assert alive.state is JobState.RUNNING
    held = session.scalars(sa.select(JobHost.job_id)).all()
    assert quiet.id not in held and alive.id in held
