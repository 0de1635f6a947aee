"""Configuration backups: one row per version of an endpoint's (or a bridge's) configuration, as fetched by a job."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow
from app.provisioning.models import Job
from app.sites.models import Bridge, Endpoint


class ConfigBackup(Base):
    """A configuration as fetched; a new row only when it differs from the device's previous one."""

    __tablename__ = "config_backups"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    endpoint_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
                                                          index=True)
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id", ondelete="CASCADE"), index=True)
    job_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    fetched_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    content: so.Mapped[str] = so.mapped_column(sa.Text)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))

    endpoint: so.Mapped[Endpoint | None] = so.relationship()
    bridge: so.Mapped[Bridge | None] = so.relationship()
    job: so.Mapped[Job | None] = so.relationship()

    __table_args__ = (
        sa.CheckConstraint("(endpoint_id IS NULL) <> (bridge_id IS NULL)", name="one_device"),
    )
