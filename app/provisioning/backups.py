"""Configuration backups: stored from a backup job's results (a new version only when the text changed), listed
per endpoint, and compared as a unified diff."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.errors import NotFound
from app.provisioning.backup_models import ConfigBackup
from app.sites.models import Endpoint


def store_backup(session: so.Session, endpoint_id: int, content: str, job_id: int | None = None) -> ConfigBackup | None:
    """Keep `content` as the endpoint's newest version; None (nothing stored) when it equals the last one."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    last = session.scalar(sa.select(ConfigBackup.sha256).where(ConfigBackup.endpoint_id == endpoint_id)
                          .order_by(ConfigBackup.id.desc()).limit(1))
    if last == digest:
        return None
    backup = ConfigBackup(endpoint_id=endpoint_id, job_id=job_id, content=content, sha256=digest)
    session.add(backup)
    session.flush()
    return backup


def backup_from_event(session: so.Session, job_id: int, event: dict[str, Any],
                      scrub: Callable[[str], str] = str) -> ConfigBackup | None:
    """The job runner's hook: a successful vcops_xapi `backup` result carries `vcops_backup`; store it (with the
    run's secrets scrubbed, like everything else a run leaves)."""
    if event.get("event") != "runner_on_ok":
        return None
    res = (event.get("event_data") or {}).get("res")
    found = res.get("vcops_backup") if isinstance(res, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("content"), str):
        return None
    try:
        endpoint_id = int(found.get("endpoint_id"))
    except (TypeError, ValueError):
        return None
    if session.get(Endpoint, endpoint_id) is None:
        return None
    return store_backup(session, endpoint_id, scrub(found["content"]), job_id)


def versions(session: so.Session, endpoint: Endpoint) -> list[ConfigBackup]:
    """The endpoint's versions, newest first."""
    return list(session.scalars(sa.select(ConfigBackup).where(ConfigBackup.endpoint_id == endpoint.id)
                                .order_by(ConfigBackup.id.desc())))


def get_backup(session: so.Session, backup_id: int) -> ConfigBackup:
    backup = session.get(ConfigBackup, backup_id)
    if backup is None:
        raise NotFound(_("No configuration backup with id %(id)s.", id=backup_id))
    return backup


def unified_diff(old: ConfigBackup, new: ConfigBackup) -> str:
    """What changed from `old` to `new`, as `diff -u` shows it."""
    return "".join(difflib.unified_diff(old.content.splitlines(keepends=True), new.content.splitlines(keepends=True),
                                        fromfile=f"#{old.id}", tofile=f"#{new.id}"))
