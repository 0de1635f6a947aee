"""Typed models of provisioning: job templates, jobs with their events, and the per-host locks that let one
job at a time work on a host (credentials and their assignments: app.provisioning.credentials.models).

A Job is a small state machine (queued → running → succeeded / failed / cancelled / lost); its methods are
the only way to move it, and a terminal state is never left.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import lazy_gettext as _l

from app.db import Base, stored_enum, utcnow
from app.errors import Conflict
from app.provisioning.credentials.models import Credential

if TYPE_CHECKING:
    from app.auth.models import User


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})
# Every move a job may make; anything else is refused.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # queued -> lost: a worker took the job off the queue and died before starting it (runner.reaper).
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.LOST}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}),
}
STATE_LABELS: dict[JobState, Any] = {
    JobState.QUEUED: _l("queued"),
    JobState.RUNNING: _l("running"),
    JobState.SUCCEEDED: _l("succeeded"),
    JobState.FAILED: _l("failed"),
    JobState.CANCELLED: _l("cancelled"),
    JobState.LOST: _l("lost"),
}
HOST_COUNTS = ("ok", "changed", "failed", "unreachable", "skipped")

JobAction = Literal["start", "finish", "cancel", "mark_lost"]
# Why a move is refused, one whole sentence for every state and action that TRANSITIONS does not allow (a
# sentence built from a state label and an action does not translate); the caller fills in %(id)s.
REFUSALS: dict[tuple[JobState, JobAction], Any] = {
    (JobState.RUNNING, "start"): _l("Job #%(id)s is running already, so it cannot be started again."),
    (JobState.SUCCEEDED, "start"): _l("Job #%(id)s is succeeded, so it cannot be started."),
    (JobState.FAILED, "start"): _l("Job #%(id)s is failed, so it cannot be started."),
    (JobState.CANCELLED, "start"): _l("Job #%(id)s is cancelled, so it cannot be started."),
    (JobState.LOST, "start"): _l("Job #%(id)s is lost, so it cannot be started."),
    (JobState.QUEUED, "finish"): _l("Job #%(id)s is queued and has not started, so it cannot be finished."),
    (JobState.SUCCEEDED, "finish"): _l("Job #%(id)s is succeeded, so it cannot be finished again."),
    (JobState.FAILED, "finish"): _l("Job #%(id)s is failed, so it cannot be finished again."),
    (JobState.CANCELLED, "finish"): _l("Job #%(id)s is cancelled, so it cannot be finished again."),
    (JobState.LOST, "finish"): _l("Job #%(id)s is lost, so it cannot be finished again."),
    (JobState.SUCCEEDED, "cancel"): _l("Job #%(id)s is succeeded, so it cannot be cancelled."),
    (JobState.FAILED, "cancel"): _l("Job #%(id)s is failed, so it cannot be cancelled."),
    (JobState.CANCELLED, "cancel"): _l("Job #%(id)s is cancelled already, so it cannot be cancelled again."),
    (JobState.LOST, "cancel"): _l("Job #%(id)s is lost, so it cannot be cancelled."),
    (JobState.SUCCEEDED, "mark_lost"): _l("Job #%(id)s is succeeded, so it cannot be marked lost."),
    (JobState.FAILED, "mark_lost"): _l("Job #%(id)s is failed, so it cannot be marked lost."),
    (JobState.CANCELLED, "mark_lost"): _l("Job #%(id)s is cancelled, so it cannot be marked lost."),
    (JobState.LOST, "mark_lost"): _l("Job #%(id)s is lost already, so it cannot be marked lost again."),
}


class JobTemplate(Base):
    """A playbook with its defaults, and who may launch it."""

    __tablename__ = "job_templates"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)
    description: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    playbook: so.Mapped[str] = so.mapped_column(sa.String(200))  # a file name in PLAYBOOK_DIR
    default_limit: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    tags: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    extra_vars: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    launch_roles: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)  # Role values
    check_allowed: so.Mapped[bool] = so.mapped_column(default=True)
    # When set, every host of the run logs in with it; otherwise each host's assigned credential.
    credential_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("credentials.id", ondelete="SET NULL"), index=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    credential: so.Mapped[Credential | None] = so.relationship()

    def __repr__(self) -> str:
        return f"<JobTemplate {self.name}>"


class Job(Base):
    """One run of a template, with what it was asked to do, how it went and where it ran."""

    __tablename__ = "jobs"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    template_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("job_templates.id"), index=True)
    launched_by_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    playbook: so.Mapped[str] = so.mapped_column(sa.String(200))  # as it was at launch: history stays true
    limit: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    tags: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    check_mode: so.Mapped[bool] = so.mapped_column(default=False)
    extra_vars: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    state: so.Mapped[JobState] = so.mapped_column(stored_enum(JobState, "job_state"), default=JobState.QUEUED,
                                                  index=True)
    return_code: so.Mapped[int | None]
    # {"host": {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0}} from the playbook's stats.
    host_counts: so.Mapped[dict[str, dict[str, int]]] = so.mapped_column(sa.JSON, default=dict)
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")  # why it failed before or around Ansible
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow, index=True)
    started_at: so.Mapped[dt.datetime | None]
    finished_at: so.Mapped[dt.datetime | None]
    cancel_requested_at: so.Mapped[dt.datetime | None]
    waiting_for_job_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    worker: so.Mapped[str] = so.mapped_column(sa.String(200), default="")  # host:pid, as the worker checks in
    pid: so.Mapped[int | None]  # of ansible-playbook
    pgid: so.Mapped[int | None]  # its process group, ended whole when the job is cancelled or lost
    # The run's private data directory while it exists: a reaper removes it (it holds opened credentials).
    run_dir: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    artifacts_path: so.Mapped[str] = so.mapped_column(sa.String(500), default="")

    template: so.Mapped[JobTemplate] = so.relationship()
    launched_by: so.Mapped[User | None] = so.relationship("User")
    waiting_for: so.Mapped[Job | None] = so.relationship(remote_side=[id])

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def totals(self) -> dict[str, int]:
        """The per-host counts added up over the hosts."""
        return {name: sum(counts.get(name, 0) for counts in (self.host_counts or {}).values())
                for name in HOST_COUNTS}

    # ------------------------------------------------------------ the state machine

    def _move(self, target: JobState, action: JobAction) -> None:
        if target not in TRANSITIONS.get(self.state, frozenset()):
            raise Conflict(str(REFUSALS[self.state, action]) % {"id": self.id}, code="job_state")
        self.state = target

    def start(self) -> None:
        self._move(JobState.RUNNING, "start")
        self.started_at = utcnow()
        self.waiting_for_job_id = None

    def finish(self, rc: int | None) -> None:
        """End a running job by its return code: 0 succeeded, anything else (or none) failed."""
        self._move(JobState.SUCCEEDED if rc == 0 else JobState.FAILED, "finish")
        self.return_code = rc
        self.finished_at = utcnow()

    def cancel(self) -> None:
        self._move(JobState.CANCELLED, "cancel")
        self.finished_at = utcnow()
        self.waiting_for_job_id = None

    def mark_lost(self) -> None:
        self._move(JobState.LOST, "mark_lost")
        self.finished_at = utcnow()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state}>"


class JobEvent(Base):
    """One event of a run, in the order Ansible emitted it (play, task, a host's result, the stats)."""

    __tablename__ = "job_events"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: so.Mapped[int]
    type: so.Mapped[str] = so.mapped_column(sa.String(20))  # play, task, result, stats, output
    event: so.Mapped[str] = so.mapped_column(sa.String(60), default="")  # Ansible's own name of the event
    host: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    task: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    status: so.Mapped[str] = so.mapped_column(sa.String(20), default="")  # ok, changed, failed, skipped, …
    stdout: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)


class JobHost(Base):
    """A host taken by a running job: the unique host name lets only one job at a time work on it."""

    __tablename__ = "job_hosts"

    host: so.Mapped[str] = so.mapped_column(sa.String(255), primary_key=True)
    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    taken_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)


class JobSite(Base):
    """A site a job works on (its hosts' sites, as resolved at launch): what a user's scope sees of the jobs."""

    __tablename__ = "job_sites"

    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True,
                                               index=True)
