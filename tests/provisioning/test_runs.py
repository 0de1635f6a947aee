"""Jobs run for real: launched through the API, run by the worker through ansible-runner and ansible-playbook
against hosts on the controller (`connection: local`), followed through their events, cancelled, made to
wait for a busy host, and left by a worker that dies; the credential's secret never shows anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import load_models
from app.config import PROJECT_ROOT
from app.db import Base, commit_scope, db
from app.provisioning.models import JobHost, JobState
from app.provisioning.runner import processes, reaper
from app.provisioning.runner.run import run_job
from app.queue.tasks import huey
from tests.provisioning.conftest import SECRET, Bed, wait_for
from tests.support.outbox import drain_outbox

pytestmark = pytest.mark.skipif(not (Path(sys.executable).parent / "ansible-playbook").exists(),
                                reason="ansible-playbook is not installed beside the test's Python")


def _launch(bed: Bed, template_id: int, **body) -> int:
    response = bed.api("post", "/api/v1/jobs", json={"template_id": template_id, **body})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job_id}")
    assert response.get_json()["state"] == "queued"
    return job_id


def _work(bed: Bed) -> None:
    """What a worker does: carry out the outbox messages waiting (the queue's hand-off is tested elsewhere)."""
    drain_outbox(bed.app)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_launched_job_runs_on_the_worker_with_its_events_in_order_and_counts_per_host(make_bed, tmp_path,
                                                                                       backend):
    bed = make_bed(backend)
    folder = tmp_path / "configs"
    folder.mkdir()
    template_id = bed.template("write_file.yml", extra_vars={"folder": str(folder)})
    job_id = _launch(bed, template_id)
    _work(bed)

    job = bed.job(job_id)
    assert job.state is JobState.SUCCEEDED and job.return_code == 0, job.error
    assert job.host_counts == {"r1": {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0},
                               "r2": {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0}}
    assert (folder / "r1.conf").read_text() == "configured r1\n"
    events = bed.events(job_id)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [e.type for e in events if e.type != "output"]
    assert kinds.index("play") < kinds.index("task") < kinds.index("result") < kinds.index("stats")
    results = {(e.host, e.task): e.status for e in events if e.type == "result"}
    assert results[("r1", "Write the host's file")] == "changed"
    assert results[("r2", "Only with the tag")] == "ok"
    assert any("PLAY RECAP" in e.stdout for e in events)

    shown = bed.api("get", f"/api/v1/jobs/{job_id}").get_json()
    assert shown["state"] == "succeeded" and shown["totals"]["changed"] == 2 and shown["launched_by"]
    page = bed.api("get", f"/api/v1/jobs/{job_id}/events?after=0").get_json()
    assert [e["seq"] for e in page["items"]] == seqs and page["finished"] is True
    assert bed.api("get", f"/api/v1/jobs/{job_id}/events?after={seqs[-1]}").get_json()["items"] == []
    assert (Path(job.artifacts_path) / "stdout").is_file() and Path(job.artifacts_path).parent.name == "jobs"

    # Run again with a limit and a tag: only r2, only the tagged task; nothing changes.
    again = _launch(bed, template_id, limit="r2", tags="extra")
    _work(bed)
    job = bed.job(again)
    assert job.state is JobState.SUCCEEDED
    assert job.host_counts == {"r2": {"ok": 1, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}}


def test_check_mode_reports_what_would_change_and_changes_nothing(make_bed, tmp_path):
    bed = make_bed()
    folder = tmp_path / "configs"
    folder.mkdir()
    template_id = bed.template("write_file.yml", extra_vars={"folder": str(folder)})
    job_id = _launch(bed, template_id, check_mode=True, limit="r1")
    _work(bed)
    job = bed.job(job_id)
    assert job.state is JobState.SUCCEEDED and job.check_mode
    assert job.host_counts["r1"]["changed"] == 1
    assert not (folder / "r1.conf").exists()
    assert any("configured r1" in e.stdout for e in bed.events(job_id)), "check mode shows the diff"


def test_a_failing_task_fails_the_job_with_its_return_code(make_bed):
    bed = make_bed()
    job_id = _launch(bed, bed.template("fail.yml"), limit="r1")
    _work(bed)
    job = bed.job(job_id)
    assert job.state is JobState.FAILED and job.return_code == 2
    assert job.host_counts["r1"]["failed"] == 1
    failed = [e for e in bed.events(job_id) if e.status == "failed"]
    assert failed and "the device refused the configuration" in failed[0].stdout
    with bed.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JobHost)) == 0  # its hosts are free
        db.session.remove()


def test_the_credential_secret_appears_in_no_output_of_a_run(make_bed, caplog, capfd):
    caplog.set_level("DEBUG")
    bed = make_bed()
    job_id = _launch(bed, bed.template("leak.yml"), limit="r1")
    _work(bed)
    job = bed.job(job_id)
    assert job.state is JobState.FAILED  # the playbook ends with a task that fails, quoting the password
    printed = [e.stdout for e in bed.events(job_id) if "the password is" in e.stdout]
    assert printed and "the password is ********" in printed[0], "the run used the password, scrubbed"

    found = []
    load_models()
    with bed.app.app_context():
        present = set(sa.inspect(db.session.get_bind()).get_table_names())
        for table in (t for t in Base.metadata.sorted_tables if t.name in present):
            for row in db.session.execute(sa.select(table)):
                if SECRET in json.dumps([str(v) for v in row]):
                    found.append(f"database: {table.name}")
        db.session.remove()
    for path in Path(bed.app.config["INSTANCE_PATH"]).rglob("*"):
        if path.is_file() and SECRET.encode() in path.read_bytes():
            found.append(f"file: {path}")
    assert list(Path(job.artifacts_path).rglob("*")), "the artifacts were kept"
    out, err = capfd.readouterr()
    if SECRET in caplog.text or SECRET in out or SECRET in err:
        found.append("logs or console")
    for page in (bed.api("get", f"/api/v1/jobs/{job_id}"), bed.api("get", f"/api/v1/jobs/{job_id}/events")):
        if SECRET in page.get_data(as_text=True):
            found.append(f"API: {page.request.path}")
    assert not found, found
    assert not list(bed.work_dir.iterdir()), "the private data directory was removed"


def _in_thread(bed: Bed, job_id: int) -> threading.Thread:
    def work() -> None:
        with bed.app.app_context():
            run_job(job_id)
            db.session.remove()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _sleeping(bed: Bed, job_id: int) -> bool:
    return any(e.task == "Sleep" and e.type == "task" for e in bed.events(job_id))


def test_cancel_stops_a_running_job_and_its_processes(make_bed):
    bed = make_bed()
    job_id = _launch(bed, bed.template("sleep.yml", extra_vars={"seconds": 60}), limit="r1")
    thread = _in_thread(bed, job_id)
    assert wait_for(lambda: _sleeping(bed, job_id)), "the job never reached its long task"
    pgid = bed.job(job_id).pgid
    assert pgid and processes.run_processes(pgid, "")

    response = bed.api("post", f"/api/v1/jobs/{job_id}/cancel", json={})
    assert response.status_code == 202 and response.get_json()["cancel_requested_at"]
    thread.join(timeout=20)
    assert not thread.is_alive(), "the run did not stop"
    job = bed.job(job_id)
    assert job.state is JobState.CANCELLED and job.finished_at
    assert processes.run_processes(pgid, "") == []
    again = bed.api("post", f"/api/v1/jobs/{job_id}/cancel", json={})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "job_state"


@pytest.fixture
def consumer(make_bed):
    bed = make_bed()
    worker = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    worker.start()
    yield bed
    worker.stop(graceful=True)
    huey.flush()


def test_a_second_job_on_a_busy_host_waits_for_the_first_and_then_runs(consumer):
    bed = consumer
    first = _launch(bed, bed.template("sleep.yml", extra_vars={"seconds": 4}), limit="r1")
    assert wait_for(lambda: bed.job(first).state is JobState.RUNNING)
    second = _launch(bed, bed.template("local_ping.yml"), limit="r1")
    assert wait_for(lambda: bed.job(second).waiting_for_job_id == first), "the second job did not wait"
    assert bed.job(second).state is JobState.QUEUED and bed.job(first).state is JobState.RUNNING

    assert wait_for(lambda: bed.job(second).finished, seconds=60)
    a, b = bed.job(first), bed.job(second)
    assert a.state is JobState.SUCCEEDED and b.state is JobState.SUCCEEDED, (a.error, b.error)
    assert b.started_at >= a.finished_at and b.waiting_for_job_id is None


def test_a_worker_killed_mid_run_leaves_a_lost_job_and_no_ansible_process(make_bed):
    bed = make_bed()
    job_id = _launch(bed, bed.template("sleep.yml", extra_vars={"seconds": 120}), limit="r1")
    config = {k: bed.app.config[k] for k in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "PLAYBOOK_DIR",
                                             "JOB_WORK_DIR", "REDIS_URL", "QUEUE_NAME")}
    config.update(TESTING=True, EMBEDDED_WORKER=False)
    worker = subprocess.Popen([sys.executable, "-m", "tests.provisioning.worker_process", json.dumps(config),
                               str(job_id)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _sleeping(bed, job_id) and bed.job(job_id).pgid, seconds=60), "never ran"
        job = bed.job(job_id)
        assert job.worker.endswith(f":{worker.pid}") and processes.run_processes(job.pgid, job.run_dir)
        with bed.app.app_context():  # the worker is alive: nothing to reap
            with commit_scope() as session:
                assert reaper.reap_lost_jobs(session) == []
            db.session.remove()

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert bed.job(job_id).state is JobState.RUNNING  # nobody is left to say otherwise, until the reaper
        with bed.app.app_context():
            with commit_scope() as session:
                assert reaper.reap_lost_jobs(session) == [job_id]
            db.session.remove()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    lost = bed.job(job_id)
    assert lost.state is JobState.LOST and "stopped during the run" in lost.error
    assert processes.run_processes(job.pgid, job.run_dir) == []
    assert not Path(job.run_dir).exists(), "the opened credentials were removed"
    with bed.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JobHost)) == 0
        db.session.remove()
