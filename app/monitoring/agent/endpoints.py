"""Monitoring room, probe agent: checking the endpoints each step: their SIP and management ports, and over the
management interface (the device layer, pinned host keys only) whether they are registered, in a call, and how
the call's media fares.

The ports are asked with plain TCP connects on the agent's event loop. The device layer blocks (paramiko), so
its requests run in a small thread pool, and only for endpoints whose management port answered. A session is
kept open from one step to the next: a new SSH session per endpoint and step cost about 5 ms of the agent's CPU
and 0.25 s of wall time here (a reading over a kept one: 0.4 ms), several times what the step's echoes cost, and
a login per minute on every device. It is opened again when the endpoint's address, vendor, login or pinned key
changed, or when the device dropped it.

Host keys: only a key a technician accepted is trusted. The pins are read once per step (one query, not two
transactions per device); a key that is not pinned, or differs from the pin, is refused before any credential
is sent, reported as the endpoint's error, and recorded as pending for the technicians, never accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask
from flask_babel import gettext as _

from app.devices.hostkeys import record_contact
from app.devices.models import HostKey, HostKeyState
from app.devices.profile import (
    DeviceError,
    DeviceProfile,
    DeviceUnreachable,
    Health,
    HostKeyChanged,
    HostKeyPending,
    Target,
    Timing,
)
from app.devices.service import open_device
from app.errors import DomainError
from app.monitoring.agent.icmp import EchoResult
from app.monitoring.topology import EndpointTarget
from app.sites.models import Endpoint

log = logging.getLogger(__name__)

# Rows fetched per query when the step loads its endpoints (a bounded IN list, whatever the database).
CHUNK = 900


@dataclass
class EndpointMeasurement:
    """What one step found of an endpoint; None where it could not be told."""

    target: EndpointTarget
    icmp_up: bool = False
    rtt: float | None = None
    sip_port_open: bool | None = None
    mgmt_port_open: bool | None = None
    registered: bool | None = None
    in_call: bool | None = None
    call_loss_ratio: float | None = None
    call_jitter: float | None = None
    error: str = ""

    @property
    def up(self) -> bool:
        """Reachable: it answers echoes, or its management port (a firewall may drop the echoes)."""
        return self.icmp_up or bool(self.mgmt_port_open)

    def add_echoes(self, echo: EchoResult | None) -> None:
        if echo is not None:
            self.icmp_up = echo.received > 0
            self.rtt = echo.median

    def add_health(self, health: Health) -> None:
        self.registered = health.registered
        self.in_call = health.in_call
        self.call_loss_ratio = health.call_loss_ratio
        self.call_jitter = health.call_jitter

    def row(self) -> dict[str, Any]:
        """The columns of EndpointState / EndpointSample."""
        return {"endpoint_id": self.target.endpoint_id, "up": self.up, "icmp_up": self.icmp_up, "rtt": self.rtt,
                "sip_port_open": self.sip_port_open, "mgmt_port_open": self.mgmt_port_open,
                "registered": self.registered, "in_call": self.in_call, "call_loss_ratio": self.call_loss_ratio,
                "call_jitter": self.call_jitter, "error": self.error[:500]}


# ---------------------------------------------------------------- host keys

@dataclass(frozen=True)
class Contact:
    """A host key offered by an endpoint and refused (not pinned, or not the pinned one)."""

    address: str
    port: int
    key_type: str
    fingerprint: str


class PinnedKeys:
    """The probes' host-key policy: the accepted keys, read once per step with `load()`. Anything else is refused
    (HostKeyPending or HostKeyChanged, as the device layer's own policy refuses it) and kept in `contacts` for
    the step to record as pending; nothing is ever accepted here."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._contacts: list[Contact] = []

    def load(self, session: so.Session) -> None:
        rows = session.execute(sa.select(HostKey.address, HostKey.port, HostKey.key_type, HostKey.fingerprint)
                               .where(HostKey.state == HostKeyState.ACCEPTED))
        self._pins = {(r.address, r.port): (r.key_type, r.fingerprint) for r in rows}

    def fingerprint(self, address: str, port: int) -> str | None:
        pinned = self._pins.get((address, port))
        return pinned[1] if pinned else None

    def pinned_type(self, address: str, port: int) -> str | None:
        pinned = self._pins.get((address, port))
        return pinned[0] if pinned else None

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        pinned = self._pins.get((address, port))
        if pinned is not None and pinned[1] == fingerprint:
            return
        with self._lock:
            self._contacts.append(Contact(address, port, key_type, fingerprint))
        host = Target(address, port).name
        if pinned is not None:
            raise HostKeyChanged(host, pinned[1], fingerprint)
        raise HostKeyPending(host, fingerprint)

    def take_contacts(self) -> list[Contact]:
        with self._lock:
            contacts, self._contacts = self._contacts, []
        return contacts


def record_contacts(session: so.Session, contacts: Iterable[Contact]) -> None:
    """Record refused keys as pending (once per key), so that technicians see them on the host-keys page."""
    for contact in {c: None for c in contacts}:
        record_contact(session, contact.address, contact.port, contact.key_type, contact.fingerprint)


# ---------------------------------------------------------------- device sessions

def _signature(profile: DeviceProfile, pin: str | None) -> str:
    """What, when it changes, means the open session must not be used any more (kept in memory only)."""
    login = profile.login
    digest = hashlib.sha256()
    for part in (profile.vendor, profile.target.address, str(profile.target.port), login.username,
                 login.password or "", login.private_key or "", pin or ""):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


class DeviceSessions:
    """The endpoints' device profiles, kept with their open session from one step to the next."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[str, DeviceProfile]] = {}

    def use(self, endpoint_id: int, profile: DeviceProfile, pin: str | None) -> DeviceProfile:
        """The kept profile when nothing changed (its connection is reused), else `profile` (which connects on
        its first request), the old one being closed."""
        signature = _signature(profile, pin)
        kept = self._kept.get(endpoint_id)
        if kept is not None:
            if kept[0] == signature:
                profile.close()
                return kept[1]
            kept[1].close()
        self._kept[endpoint_id] = (signature, profile)
        return profile

    def keep_only(self, endpoint_ids: Iterable[int]) -> None:
        wanted = set(endpoint_ids)
        for endpoint_id in [i for i in self._kept if i not in wanted]:
            self._kept.pop(endpoint_id)[1].close()

    def close(self) -> None:
        self.keep_only(())


def _load_endpoints(session: so.Session, ids: Sequence[int]) -> dict[int, Endpoint]:
    found: dict[int, Endpoint] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for endpoint in session.scalars(sa.select(Endpoint).where(Endpoint.id.in_(chunk))
                                        .options(so.selectinload(Endpoint.site))):
            found[endpoint.id] = endpoint
    return found


def prepare_devices(session: so.Session, targets: Sequence[EndpointTarget], pins: PinnedKeys,
                    sessions: DeviceSessions, timing: Timing) -> dict[int, DeviceProfile | str]:
    """For each endpoint, its device profile (its login opened from the credential store), or the reason why
    VCOps cannot read it (no credential, a vendor without a profile)."""
    endpoints = _load_endpoints(session, [t.endpoint_id for t in targets])
    prepared: dict[int, DeviceProfile | str] = {}
    for target in targets:
        endpoint = endpoints.get(target.endpoint_id)
        if endpoint is None:  # retired between the two queries
            continue
        try:
            profile = open_device(session, endpoint, host_keys=pins, timing=timing)
        except (DomainError, DeviceError) as exc:
            prepared[target.endpoint_id] = exc.message
            continue
        except Exception as exc:  # the credential store cannot open the secret: say so, probe the others
            log.exception("the device of endpoint %s cannot be prepared", target.endpoint_id)
            prepared[target.endpoint_id] = f"{type(exc).__name__}: {exc}"
            continue
        pin = pins.fingerprint(target.address, target.mgmt_port)
        prepared[target.endpoint_id] = sessions.use(target.endpoint_id, profile, pin)
    sessions.keep_only(i for i, p in prepared.items() if not isinstance(p, str))
    return prepared


def read_health(app: Flask, profile: DeviceProfile) -> tuple[Health | None, str]:
    """In a pool thread: the endpoint's health, or the error (in the operators' language) that prevented it."""
    with app.app_context():
        try:
            return _health(profile), ""
        except DeviceError as exc:
            profile.close()
            return None, exc.message
        except Exception as exc:  # a bug or an unexpected answer: on the endpoint and in the log
            log.exception("reading the health of %s failed", profile.target.name)
            profile.close()
            return None, f"{type(exc).__name__}: {exc}"


def _health(profile: DeviceProfile) -> Health:
    try:
        return profile.health()
    except DeviceUnreachable:
        # A session kept since the last step may have been dropped by the device meanwhile: one fresh try.
        profile.close()
        return profile.health()


# ---------------------------------------------------------------- the checks

async def port_open(address: str, port: int, timeout: float) -> bool:
    """Does a TCP connection to address:port succeed within `timeout` seconds?"""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError, UnicodeError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@dataclass
class EndpointChecks:
    """The checks of one step, sharing its bounds: `concurrency` endpoints at once on the loop, and the pool
    (its size bounds the device sessions in flight)."""

    app: Flask
    timeout: float
    concurrency: int
    executor: Executor
    _semaphore: asyncio.Semaphore | None = field(default=None, repr=False)

    async def run(self, targets: Sequence[EndpointTarget],
                  prepared: dict[int, DeviceProfile | str]) -> list[EndpointMeasurement]:
        self._semaphore = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self.check(t, prepared.get(t.endpoint_id)) for t in targets)))

    async def check(self, target: EndpointTarget, device: DeviceProfile | str | None) -> EndpointMeasurement:
        measured = EndpointMeasurement(target)
        assert self._semaphore is not None
        async with self._semaphore:
            measured.sip_port_open, measured.mgmt_port_open = await asyncio.gather(
                port_open(target.address, target.sip_port, self.timeout),
                port_open(target.address, target.mgmt_port, self.timeout))
        loop = asyncio.get_running_loop()
        if not measured.mgmt_port_open:
            measured.error = _("The management port %(port)s does not answer.", port=target.mgmt_port)
            if device is not None and not isinstance(device, str):
                # The device went away: its kept session is dead, connect anew once it answers again (closing
                # a transport may wait on its thread: in the pool, not on the loop).
                await loop.run_in_executor(self.executor, device.close)
        elif isinstance(device, str):
            measured.error = device
        elif device is not None:
            health, error = await loop.run_in_executor(self.executor, read_health, self.app, device)
            if health is not None:
                measured.add_health(health)
            measured.error = error
        return measured
