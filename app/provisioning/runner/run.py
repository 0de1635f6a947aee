"""One run of a job (run_job: the "jobs.run" outbox handler): take its hosts, write its private data
directory, run ansible-playbook through ansible-runner with VCOps' settings, store its events, stop on a
cancel, keep its artifacts scrubbed, and end the job and free its hosts in one transaction.

In order: take the job's hosts (one job at a time per host; a job whose host is busy stays queued, waiting
for the job that holds it, and is woken when that job ends); write a private data directory (mode 0700) with
the inventory, the opened credentials (files 0600) and the accepted host keys of its hosts (a job whose hosts
have no accepted key is refused before anything connects); run ansible-playbook with VCOps' Ansible settings
and the worker's secrets left out of its environment; store every event as it comes (runner.events), with
every secret of the run scrubbed; stop when a cancel is asked for; keep the artifacts, scrubbed, under
INSTANCE_PATH/jobs/<id>/; end the run's SSH connections and remove the private data directory whatever
happened; end the job and free its hosts in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
import yaml
from flask import current_app

from app.db import commit_scope, db, read_only_intent
from app.provisioning.credentials.service import CredentialKeyError, credentials_for
from app.provisioning.inventory import Inventory, build_inventory
from app.provisioning.models import Job, JobState
from app.provisioning.runner.events import EventWriter, host_counts
from app.provisioning.runner.files import write_private
from app.provisioning.runner.hostkeys import (
    hosts_without_keys,
    refuse_hosts_without_keys,
    refused_host_keys,
    write_host_keys,
)
from app.provisioning.runner.locks import release_hosts, take_hosts
from app.provisioning.runner.processes import end_processes, worker_name
from app.provisioning.runner.scrub import Scrubber, keep_artifacts
from app.provisioning.runner.settings import ansible_settings, app_settings, control_dir, inherited_env
from app.provisioning.runner.targets import target_hosts
from app.provisioning.runner.workdir import InventoryDumper, make_run_dir, remove_run_dir, unsafe, write_inventory

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 1.0


@dataclass
class _Plan:
    job_id: int
    playbook: Path
    limit: str
    tags: str
    check: bool
    extra_vars: dict[str, Any]
    inventory: Inventory


def _fail(job_id: int, message: str) -> None:
    """End a job that could not run, with the reason (its hosts, if it had taken any, are freed)."""
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.finished:
            return
        if job.state is JobState.QUEUED:
            job.start()
        job.error = message[:4000]
        job.finish(None)
        release_hosts(session, job)


def run_job(job_id: int) -> None:
    """Carry out a queued job (the outbox handler of "jobs.run"); a job that is not queued is left alone."""
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.state is not JobState.QUEUED:
            return
        if job.worker and job.worker != worker_name():
            # Another worker took it: its message came back to the queue only because that worker stopped (the
            # outbox hands a message over again once its lease ran out). Nothing ran on the hosts; the reaper marks
            # the job lost and it is never run behind the technician's back (reaper.reap_lost_claims says why).
            return
        # Claimed: should this worker die before the run starts, the reaper (runner.reaper.reap_lost_claims) marks
        # the job lost instead of leaving it queued with nobody to run it.
        job.worker = worker_name()
        plan = _Plan(job.id, Path(current_app.config["PLAYBOOK_DIR"]) / job.playbook, job.limit, job.tags,
                     job.check_mode, dict(job.extra_vars or {}),
                     build_inventory(session, job.template.credential_id))
    if not plan.playbook.is_file():
        _fail(job_id, f"The playbook {plan.playbook.name} is not in {plan.playbook.parent}.")
        return
    run_dir = make_run_dir(job_id)
    try:
        _run_in(plan, run_dir)
    finally:
        remove_run_dir(run_dir)


def _run_in(plan: _Plan, run_dir: Path) -> None:
    (run_dir / "inventory").mkdir(mode=0o700)
    (run_dir / "keys").mkdir(mode=0o700)
    (run_dir / "env").mkdir(mode=0o700)
    (run_dir / "tmp").mkdir(mode=0o700)
    plain_inventory = run_dir / "inventory" / "plan.yml"
    write_inventory(plan.inventory, plain_inventory)
    try:
        hosts = target_hosts(plan.playbook, plain_inventory, plan.limit)
    except Exception as exc:  # a playbook Ansible cannot read, a limit it refuses
        _fail(plan.job_id, f"The playbook or the limit cannot be read: {exc}")
        return
    finally:
        plain_inventory.unlink()
    if not hosts:
        _fail(plan.job_id, f"No host matches the playbook's hosts within the limit {plan.limit or '(none)'}.")
        return
    unpinned = hosts_without_keys(plan.inventory, hosts)
    if unpinned:  # refused before anything connects to them
        _fail(plan.job_id, refuse_hosts_without_keys(plan.inventory, unpinned))
        return
    if take_hosts(plan.job_id, hosts) != "run":
        return
    outcome = _RunOutcome()
    scrub = Scrubber([])
    try:
        with commit_scope() as session:
            logins = credentials_for(session, {plan.inventory.credential_of[h] for h in hosts
                                               if h in plan.inventory.credential_of})
            session.execute(sa.update(Job).where(Job.id == plan.job_id).values(run_dir=str(run_dir)))
        scrub = Scrubber(login.secret for login in logins.values())
        # Only the hosts of this run get a login; the others stay in the inventory for its groups.
        run_inventory = Inventory(plan.inventory.hosts, plan.inventory.groups,
                                  {h: c for h, c in plan.inventory.credential_of.items() if h in hosts})
        write_inventory(run_inventory, run_dir / "inventory" / "hosts.yml", logins, run_dir / "keys")
        write_host_keys(plan.inventory, hosts, run_dir)
        control_dir(run_dir).mkdir(mode=0o700, exist_ok=True)
        if plan.extra_vars:
            write_private(run_dir / "env" / "extravars",
                          yaml.dump(unsafe(plan.extra_vars), Dumper=InventoryDumper, allow_unicode=True))
        try:
            _run_playbook(plan, run_dir, scrub, outcome)
        finally:
            # The shared SSH connections outlive ansible-playbook by ControlPersist: end them with the run.
            end_processes(None, str(run_dir))
        refused = refused_host_keys(plan.inventory, hosts, run_dir)
        if refused:
            outcome.error = f"{outcome.error} {refused}".strip()
    except CredentialKeyError as exc:
        outcome.error = f"The credentials cannot be opened: {exc}"
    except Exception as exc:  # whatever broke, the job ends with the reason and its hosts are freed
        outcome.error = scrub.text(f"The run broke off: {type(exc).__name__}: {exc}")
        log.error("job %s: %s", plan.job_id, outcome.error)
    artifacts = Path(current_app.config["INSTANCE_PATH"]) / "jobs" / str(plan.job_id)
    try:
        if outcome.artifact_dir and Path(outcome.artifact_dir).is_dir():
            keep_artifacts(Path(outcome.artifact_dir), artifacts, scrub)
    except OSError as exc:
        log.warning("job %s: artifacts not kept: %s", plan.job_id, exc)
    _end(plan.job_id, outcome, artifacts)


@dataclass
class _RunOutcome:
    status: str = ""
    rc: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    artifact_dir: str = ""


def _run_playbook(plan: _Plan, run_dir: Path, scrub: Scrubber, outcome: _RunOutcome) -> None:
    from ansible_runner.interface import init_runner

    job_id = plan.job_id
    state = {"pid_recorded": False, "checked": 0.0, "cancel": False}

    writer = EventWriter(current_app._get_current_object(), job_id, scrub)

    def on_event(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            outcome.stats = event.get("event_data") or {}
        writer.put(event)  # stored by the writer's thread: ansible-playbook's output is read on at once
        return True

    def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
        outcome.status = str(data.get("status", ""))
        log.info("job %s: %s", job_id, outcome.status)

    def cancel_requested() -> bool:
        if state["cancel"]:
            return True
        now = time.monotonic()
        if now - state["checked"] >= CANCEL_CHECK_SECONDS:
            state["checked"] = now
            state["cancel"] = _read(lambda s: s.scalar(sa.select(Job.cancel_requested_at)
                                                       .where(Job.id == job_id))) is not None
        return state["cancel"]

    timeout = int(current_app.config["JOB_TIMEOUT"])
    settings = ansible_settings(run_dir, **app_settings())
    cmdline = "--check --diff" if plan.check else None
    runner = init_runner(private_data_dir=str(run_dir), project_dir=str(plan.playbook.parent),
                         playbook=str(plan.playbook), inventory=str(run_dir / "inventory" / "hosts.yml"),
                         limit=plan.limit or None, tags=plan.tags or None, cmdline=cmdline, ident="run",
                         envvars=settings, quiet=True, timeout=timeout or None, rotate_artifacts=0,
                         # ansible-runner would point the fact cache at the run's own artifacts (empty at each
                         # run): the settings' cache is the app's.
                         fact_cache_type="",
                         settings={"pexpect_timeout": 0.25, "pexpect_use_poll": True},
                         event_handler=on_event, status_handler=on_status, cancel_callback=cancel_requested)
    # ansible-playbook inherits only what it needs of the worker's environment (see settings.INHERITED_ENV).
    runner.config.env = inherited_env(runner.config.env, settings)
    outcome.artifact_dir = runner.config.artifact_dir
    writer.start()
    try:
        status, rc = runner.run()
    finally:
        writer.close()  # every event is stored before the job is marked ended
    outcome.status, outcome.rc = status, rc
    if status == "timeout":
        outcome.error = f"Stopped after {timeout} seconds (VCOPS_JOB_TIMEOUT)."


def _read(fn: Callable[[so.Session], Any]) -> Any:
    """A short read of its own (on SQLite without taking the write lock), ended at once."""
    with read_only_intent():
        try:
            return fn(db.session())
        finally:
            db.session.rollback()


def _end(job_id: int, outcome: _RunOutcome, artifacts: Path) -> None:
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None:
            return
        job.host_counts = host_counts(outcome.stats)
        job.artifacts_path = str(artifacts) if artifacts.is_dir() else ""
        job.run_dir = ""
        if job.state is JobState.RUNNING:  # (a reaper may have marked it lost meanwhile)
            if outcome.error:
                job.error = outcome.error[:4000]
            if outcome.status == "canceled":
                job.return_code = outcome.rc
                job.cancel()
            else:
                job.finish(outcome.rc if outcome.status in ("successful", "failed") else None)
        release_hosts(session, job)
