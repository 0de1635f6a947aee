"""Configuration backups of endpoints and bridges: stored from a backup job's results (a new version only when
the text changed), listed per device, and compared as a unified diff.

A backup reaches VCOps as a task result carrying `vcops_backup: {endpoint_id | bridge_id, content}`: the
vcops_xapi module returns it for an endpoint; a bridge's play (a Linux server) reads the media service's
configuration file and sets it as a fact (playbooks/backup_config.yml).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.db import get_or_raise
from app.errors import Invalid
from app.provisioning.backups.models import ConfigBackup
from app.sites.models import Bridge, Endpoint

Device = Endpoint | Bridge


def _column(device: Device | type[Device]) -> Any:
    kind = device if isinstance(device, type) else type(device)
    return ConfigBackup.endpoint_id if kind is Endpoint else ConfigBackup.bridge_id


def store_backup(session: so.Session, device: Device, content: str, job_id: int | None = None) -> ConfigBackup | None:
    """Keep `content` as the device's newest version; None (nothing stored) when it equals the last one."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    column = _column(device)
    last = session.scalar(sa.select(ConfigBackup.sha256).where(column == device.id)
                          .order_by(ConfigBackup.id.desc()).limit(1))
    if last == digest:
        return None
    backup = ConfigBackup(job_id=job_id, content=content, sha256=digest,
                          **{column.key: device.id})
    session.add(backup)
    session.flush()
    return backup


def _found_backup(res: Any) -> dict[str, Any] | None:
    """`vcops_backup` of a task's result: at the top (a module's own result) or among the facts it set."""
    if not isinstance(res, dict):
        return None
    found = res.get("vcops_backup")
    if found is None and isinstance(res.get("ansible_facts"), dict):
        found = res["ansible_facts"].get("vcops_backup")
    return found if isinstance(found, dict) and isinstance(found.get("content"), str) else None


def backup_from_event(session: so.Session, job_id: int, event: dict[str, Any],
                      scrub: Callable[[str], str] = str) -> ConfigBackup | None:
    """The job runner's hook: a successful result carrying `vcops_backup` is stored (with the run's secrets
    scrubbed, like everything else a run leaves) as a version of the endpoint or bridge it names."""
    if event.get("event") != "runner_on_ok":
        return None
    found = _found_backup((event.get("event_data") or {}).get("res"))
    if found is None:
        return None
    for key, model in (("endpoint_id", Endpoint), ("bridge_id", Bridge)):
        if found.get(key) in (None, ""):
            continue
        try:
            device = session.get(model, int(found[key]))
        except (TypeError, ValueError):
            return None
        return None if device is None else store_backup(session, device, scrub(found["content"]), job_id)
    return None


def versions(session: so.Session, device: Device) -> list[ConfigBackup]:
    """The device's versions, newest first."""
    return list(session.scalars(sa.select(ConfigBackup).where(_column(device) == device.id)
                                .order_by(ConfigBackup.id.desc())))


def get_backup(session: so.Session, backup_id: int) -> ConfigBackup:
    return get_or_raise(session, ConfigBackup, backup_id, _("No configuration backup with id %(id)s.", id=backup_id))


def get_device(session: so.Session, kind: type[Device], device_id: int) -> Device:
    return get_or_raise(session, kind, device_id, _("No endpoint with id %(id)s.", id=device_id) if kind is Endpoint
                        else _("No bridge with id %(id)s.", id=device_id))


def versions_to_compare(session: so.Session, device: Device, from_id: str | None, to_id: str | None,
                        newest: list[ConfigBackup]) -> tuple[ConfigBackup | None, ConfigBackup | None]:
    """The two versions of the device to compare: the ones asked for, else the two newest (None, None with
    fewer than two). Versions of another device are refused."""
    if not from_id or not to_id:
        return (newest[1], newest[0]) if len(newest) >= 2 else (None, None)
    try:
        old, new = get_backup(session, int(from_id)), get_backup(session, int(to_id))
    except ValueError:
        raise Invalid(_("Choose two versions to compare."), {"from": [_("Not a version.")]}) from None
    key = _column(device).key
    if getattr(old, key) != device.id or getattr(new, key) != device.id:
        raise Invalid(_("Both versions must belong to this device."), {"from": [_("Not a version.")]})
    return old, new


def unified_diff(old: ConfigBackup, new: ConfigBackup) -> str:
    """What changed from `old` to `new`, as `diff -u` shows it."""
    return "".join(difflib.unified_diff(old.content.splitlines(keepends=True), new.content.splitlines(keepends=True),
                                        fromfile=f"#{old.id}", tofile=f"#{new.id}"))


@dataclass(frozen=True)
class BackedUpDevice:
    """A line of the backups' index: a device with how many versions it has and when the newest came."""

    device: Device
    versions: int
    latest_id: int
    latest_at: Any

    @property
    def is_bridge(self) -> bool:
        return isinstance(self.device, Bridge)


def backed_up_devices(session: so.Session) -> list[BackedUpDevice]:
    """Every endpoint and bridge with at least one version: endpoints by site, then bridges by name."""
    found: list[BackedUpDevice] = []
    for model, column, order in ((Endpoint, ConfigBackup.endpoint_id, (Endpoint.site_id, Endpoint.room_name)),
                                 (Bridge, ConfigBackup.bridge_id, (Bridge.name,))):
        summary = (sa.select(column.label("device_id"), sa.func.count().label("n"),
                             sa.func.max(ConfigBackup.id).label("latest_id"))
                   .where(column.is_not(None)).group_by(column).subquery())
        rows = session.execute(sa.select(model, summary.c.n, summary.c.latest_id, ConfigBackup.fetched_at)
                               .join(summary, summary.c.device_id == model.id)
                               .join(ConfigBackup, ConfigBackup.id == summary.c.latest_id)
                               .order_by(*order)).all()
        found.extend(BackedUpDevice(device, n, latest_id, fetched_at) for device, n, latest_id, fetched_at in rows)
    return found
