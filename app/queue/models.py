"""Outbox rows (work asked for in a transaction) and worker check-ins (for /healthz)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow


class OutboxMessage(Base):
    """Work to hand to the task queue once the transaction that asked for it has committed."""

    __tablename__ = "outbox"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    task: so.Mapped[str] = so.mapped_column(sa.String(100))
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    dispatched_at: so.Mapped[dt.datetime | None]
    # Set when its work is done, not when a worker takes it: a worker that stops mid-way leaves it to the sweep.
    done_at: so.Mapped[dt.datetime | None] = so.mapped_column(index=True)
    # The lease of the worker running it (app/queue/outbox.py): renewed while the handler runs; once it has
    # passed with done_at still empty, that worker is gone and the sweep hands the message over again.
    claimed_until: so.Mapped[dt.datetime | None]
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    last_error: so.Mapped[str] = so.mapped_column(sa.Text, default="")


class WorkerCheckin(Base):
    __tablename__ = "worker_checkins"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)  # host:pid
    started_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    seen_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow, index=True)
