"""Typed models of the meeting-window guard: a template's guard settings, and the overrides a technician
confirmed.

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
    from app.provisioning.models import Job

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
