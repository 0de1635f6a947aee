"""Typed models of the meeting-window guard and of schedules: a template's guard settings, the overrides a
technician confirmed, and the schedules that launch a template by a cron expression.

The guard settings live in a table of their own (one row per template, absent = the defaults) so that the
job templates' table and model stay as they are; a template without a row changes equipment and is
expected to take 30 minutes.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.auth.models import User
    from app.provisioning.models import Job, JobTemplate

DEFAULT_EXPECTED_MINUTES = 30


class TemplateGuard(Base):
    """How the guard treats a template's runs: whether they change equipment, and how long one is expected
    to take (the window checked against the sites' meetings)."""

    __tablename__ = "job_template_guards"

    template_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("job_templates.id", ondelete="CASCADE"),
                                                   primary_key=True)
    # False for read-only playbooks (backups, readiness checks): they may run during a meeting.
    changes_equipment: so.Mapped[bool] = so.mapped_column(default=True)
    expected_minutes: so.Mapped[int] = so.mapped_column(default=DEFAULT_EXPECTED_MINUTES)

    __table_args__ = (
        sa.CheckConstraint("expected_minutes >= 1 AND expected_minutes <= 1440", name="expected_minutes_range"),
    )


class JobOverride(Base):
    """A technician's confirmed override of the guard for one job: who, why, and which meetings it crossed."""

    __tablename__ = "job_overrides"

    job_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    reason: so.Mapped[str] = so.mapped_column(sa.Text)
    # [{"occurrence_id", "meeting_id", "title", "sites": [names], "setup_starts_at", "ends_at"}] as at launch.
    meetings: so.Mapped[list[dict[str, Any]]] = so.mapped_column(sa.JSON, default=list)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    user: so.Mapped[User | None] = so.relationship("User")
    # Job.override (None when the job needed none): the job page shows it without a model change in Job.
    job: so.Mapped[Job] = so.relationship(backref=so.backref("override", uselist=False, passive_deletes=True))


class JobSchedule(Base):
    """A template launched by a cron expression read in local time (Asia/Ho_Chi_Minh), as its owner."""

    __tablename__ = "job_schedules"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    template_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("job_templates.id", ondelete="CASCADE"),
                                                   index=True)
    cron: so.Mapped[str] = so.mapped_column(sa.String(100))  # five fields: minute hour day month weekday
    limit: so.Mapped[str | None] = so.mapped_column(sa.String(500))  # None: the template's default
    tags: so.Mapped[str | None] = so.mapped_column(sa.String(500))  # None: the template's
    extra_vars: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    enabled: so.Mapped[bool] = so.mapped_column(default=True)
    # The next due time (UTC); None while disabled. Moved by compare-and-set, so one run per due time.
    next_run_at: so.Mapped[dt.datetime | None] = so.mapped_column(index=True)
    last_run_at: so.Mapped[dt.datetime | None]
    last_job_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"))
    last_outcome: so.Mapped[str] = so.mapped_column(sa.String(20), default="")  # launched, skipped, failed
    last_message: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    template: so.Mapped[JobTemplate] = so.relationship()
    last_job: so.Mapped[Job | None] = so.relationship()
    created_by: so.Mapped[User | None] = so.relationship("User")

    def __repr__(self) -> str:
        return f"<JobSchedule {self.id} {self.cron}>"
