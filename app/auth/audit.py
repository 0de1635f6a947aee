"""The audit log: every flushed change to an audited model (marked `@audited` by its domain) is written with
who, when, before and after.

It hooks the session's flush, so no service can forget it, and it writes in the same transaction as
the change, so a rolled-back change leaves no entry.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.auth.models import User


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str


SYSTEM = Actor(None, "system")
_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=SYSTEM)

# Columns never copied into the log: secrets and hashes of secrets, and derived columns (a site's path).
_SECRET_COLUMNS = {"password_hash", "token_hash", "path", "totp_secret", "code_hash"}
# Columns whose changes alone are not worth an entry (every login would otherwise log an update); ended sessions
# are recorded as events of their own (sessions_end), with the reason.
_QUIET_COLUMNS = {"last_login_at", "session_version", "totp_last_step"}
_AUDITED: set[type] = set()


def set_actor(actor: Actor) -> contextvars.Token[Actor]:
    return _actor.set(actor)


def reset_actor(token: contextvars.Token[Actor]) -> None:
    _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get()


@contextmanager
def acting_as(label: str) -> Iterator[Actor]:
    """Changes made inside are recorded as done by this process (a console command, the probe agent)."""
    actor = Actor(None, label)
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def audited(cls: type) -> type:
    """Mark a model whose every change is logged; each domain marks its own (no list of them here)."""
    _AUDITED.add(cls)
    return cls


class AuditEntry(Base):
    """Who changed what, when, with the values before and after."""

    __tablename__ = "audit_log"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow, index=True)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor: so.Mapped[str] = so.mapped_column(sa.String(254))  # the user's email, or "cli", "worker"
    action: so.Mapped[str] = so.mapped_column(sa.String(20))  # create / update / delete, or a verb like login
    object_type: so.Mapped[str] = so.mapped_column(sa.String(50), index=True)
    object_id: so.Mapped[str] = so.mapped_column(sa.String(50), default="")
    summary: so.Mapped[str] = so.mapped_column(sa.String(300), default="")
    before: so.Mapped[dict[str, Any] | None] = so.mapped_column(sa.JSON)
    after: so.Mapped[dict[str, Any] | None] = so.mapped_column(sa.JSON)

    user: so.Mapped[User | None] = so.relationship("User")

    __table_args__ = (sa.Index("ix_audit_log_object", "object_type", "object_id"),)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat()  # the log speaks UTC, as the database does
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _snapshot(obj: Any, *, before: bool) -> dict[str, Any]:
    state = sa.inspect(obj)
    values: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        if attr.key in _SECRET_COLUMNS:
            continue
        if before:
            hist = state.attrs[attr.key].history
            value = hist.deleted[0] if hist.deleted else (hist.unchanged[0] if hist.unchanged else None)
        else:
            value = state.attrs[attr.key].value
        values[attr.key] = _plain(value)
    return values


def _summary(obj: Any) -> str:
    for name in ("code", "name", "email", "room_name", "reason"):
        value = getattr(obj, name, None)
        if value:
            return str(value)[:300]
    return ""


def _after_flush(session: so.Session, _ctx: Any) -> None:
    actor = current_actor()
    rows: list[dict[str, Any]] = []
    now = utcnow()

    def add(obj: Any, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        rows.append({
            "at": now, "user_id": actor.user_id, "actor": actor.label, "action": action,
            "object_type": type(obj).__name__,
            "object_id": "/".join(str(v) for v in sa.inspect(obj).mapper.primary_key_from_instance(obj)),
            "summary": _summary(obj), "before": before, "after": after,
        })

    for obj in session.new:
        if type(obj) in _AUDITED:
            add(obj, "create", None, _snapshot(obj, before=False))
    for obj in session.dirty:
        if type(obj) in _AUDITED and session.is_modified(obj, include_collections=False):
            before, after = _snapshot(obj, before=True), _snapshot(obj, before=False)
            changed = {k for k in after if before.get(k) != after.get(k)} - _QUIET_COLUMNS
            if changed:
                add(obj, "update", {k: before[k] for k in changed}, {k: after[k] for k in changed})
    for obj in session.deleted:
        if type(obj) in _AUDITED:
            add(obj, "delete", _snapshot(obj, before=True), None)
    if rows:
        # Written straight on the flush's connection: adding ORM objects during a flush is not allowed.
        session.connection().execute(sa.insert(AuditEntry), rows)


def record(session: so.Session, action: str, object_type: str, object_id: str = "", summary: str = "",
           after: dict[str, Any] | None = None) -> None:
    """Record an event that is not a row change (a login, a token shown, an override)."""
    actor = current_actor()
    session.add(AuditEntry(user_id=actor.user_id, actor=actor.label, action=action, object_type=object_type,
                           object_id=object_id, summary=summary[:300], after=after))


def install(sessionmaker: so.sessionmaker[so.Session]) -> None:
    if not sa.event.contains(sessionmaker, "after_flush", _after_flush):
        sa.event.listen(sessionmaker, "after_flush", _after_flush)


# ---------------------------------------------------------------- browsing the log

# Shown nowhere even if a caller of record() passed one: the log is read by people, not only machines.
_HIDDEN_KEYS = _SECRET_COLUMNS | {"password", "secret", "token"}


@dataclass(frozen=True)
class AuditFilter:
    object_type: str = ""
    actor: str = ""  # part of the actor's label (an email, "cli", "worker")
    action: str = ""
    object_id: str = ""
    since: dt.datetime | None = None  # aware; entries at or after
    until: dt.datetime | None = None  # aware; entries strictly before


def audit_query(f: AuditFilter) -> sa.Select[tuple[AuditEntry]]:
    """The entries matching the filter, newest first."""
    stmt = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if f.object_type:
        stmt = stmt.where(AuditEntry.object_type == f.object_type)
    if f.actor.strip():
        stmt = stmt.where(AuditEntry.actor.ilike(f"%{f.actor.strip()}%"))
    if f.action:
        stmt = stmt.where(AuditEntry.action == f.action)
    if f.object_id.strip():
        stmt = stmt.where(AuditEntry.object_id == f.object_id.strip())
    if f.since is not None:
        stmt = stmt.where(AuditEntry.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEntry.at < f.until)
    return stmt


def known_values(session: so.Session) -> tuple[list[str], list[str]]:
    """The object types and actions present in the log, for the filter's choices."""
    types = session.scalars(sa.select(AuditEntry.object_type).distinct().order_by(AuditEntry.object_type)).all()
    actions = session.scalars(sa.select(AuditEntry.action).distinct().order_by(AuditEntry.action)).all()
    return list(types), list(actions)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


def changes_of(entry: AuditEntry) -> list[FieldChange]:
    """The entry's fields with their values before and after, secrets left out."""
    before, after = entry.before or {}, entry.after or {}
    keys = sorted((set(before) | set(after)) - _HIDDEN_KEYS)
    return [FieldChange(k, before.get(k), after.get(k)) for k in keys]
