"""Typed models of schedules: the schedules that launch a job template by a cron expression (the guard's
settings and overrides: app.provisioning.guard.models)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.auth.models import User
    from app.provisioning.models import Job, JobTemplate


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
