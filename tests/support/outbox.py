"""Draining the outbox in a test or a benchmark, as a worker would: every message not done yet, oldest first."""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from app.db import db
from app.queue import outbox
from app.queue.models import OutboxMessage


def drain_outbox(app: Any = None, *, keep_going: bool = False) -> list[Exception]:
    """Deliver the outbox messages waiting now (not those their handlers add), each in a session of its own, in
    `app`'s context (or the current one). A handler's error is raised, or with keep_going collected and returned
    while the others are delivered all the same."""
    errors: list[Exception] = []
    with app.app_context() if app is not None else contextlib.nullcontext():
        ids = list(db.session.scalars(sa.select(OutboxMessage.id).where(OutboxMessage.done_at.is_(None))
                                      .order_by(OutboxMessage.id)))
        db.session.remove()
        for message_id in ids:
            try:
                outbox.deliver(message_id)
            except Exception as exc:
                if not keep_going:
                    raise
                errors.append(exc)
            finally:
                db.session.remove()
    return errors
