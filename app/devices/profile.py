"""What VCOps asks of an endpoint, whatever its vendor: the DeviceProfile interface, its errors, and the registry.

A vendor is one DeviceProfile subclass in a module of app/devices/vendors/, registered with `@register`;
`profile_class("Cisco")` finds it by the endpoint's vendor (case and spaces ignored). A second vendor is a
new module there, and nothing else changes: the quick actions, the probes and the Ansible module all go
through this interface.

Configuration is described with the common settings below (vendor-neutral names, so a playbook's variables do
not depend on the vendor); a profile may also accept its own native paths for what they do not cover.
This module and the vendor modules use no Flask request or database: they run in the worker, in the probes
and in an Ansible module alike.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from flask_babel import gettext as _

# The vendor-neutral settings every profile understands (apply_config's keys).
COMMON_SETTINGS: dict[str, str] = {
    "system_name": "The endpoint's own name (the room).",
    "display_name": "The name the far end sees (the site's name).",
    "sip_uri": "The SIP address the endpoint registers.",
    "sip_proxy": "The SIP proxy (registrar) it registers with.",
    "ntp_servers": "Up to three NTP servers (a list); an empty list leaves time to the network (DHCP).",
    "timezone": "An IANA time zone, e.g. Asia/Ho_Chi_Minh.",
    "call_rate_kbps": "The default call bitrate in kbit/s.",
    "video_dscp": "DSCP marking of video packets (34 = AF41).",
    "audio_dscp": "DSCP marking of audio packets (46 = EF).",
}


class DeviceError(Exception):
    """Talking to a device failed; `message` says why in words a technician can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DeviceUnreachable(DeviceError):
    """No SSH connection (refused, no answer, the session dropped)."""


class DeviceTimeout(DeviceError):
    """Connected, but the device did not finish its answer in time."""


class AuthenticationFailed(DeviceError):
    pass


class DeviceRefused(DeviceError):
    """The device answered ERROR: `reason` is the device's own words, `request` what it refused."""

    def __init__(self, request: str, reason: str) -> None:
        super().__init__(_("The device refused “%(request)s”: %(reason)s", request=request, reason=reason))
        self.request = request
        self.reason = reason


class NotSupported(DeviceError):
    """A vendor without a profile, or a setting the profile does not know."""


class HostKeyPending(DeviceError):
    """First contact: the host key is recorded and waits for a technician to accept it."""

    def __init__(self, host: str, fingerprint: str) -> None:
        super().__init__(_("First contact with %(host)s: fingerprint %(fingerprint)s awaits a technician's "
                           "acceptance.", host=host, fingerprint=fingerprint))
        self.host = host
        self.fingerprint = fingerprint


class HostKeyChanged(DeviceError):
    """The host offers a key other than the pinned one: refused, never replaced silently."""

    def __init__(self, host: str, pinned: str, offered: str) -> None:
        super().__init__(_("The host key of %(host)s has changed: pinned %(pinned)s, offered %(offered)s. The "
                           "connection was refused; if the device was replaced, a technician must accept the new "
                           "key.", host=host, pinned=pinned, offered=offered))
        self.host = host
        self.pinned = pinned
        self.offered = offered


class Login(Protocol):
    """What logs in to a device (the credential store's Credential has these attributes)."""

    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str | None: ...
    @property
    def private_key(self) -> str | None: ...


@dataclass(frozen=True)
class DeviceLogin:
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # OpenSSH or PEM text


class HostKeyPolicy(Protocol):
    """Decides whether a host key may be trusted (app.devices.hostkeys keeps the pins in the database)."""

    def pinned_type(self, address: str, port: int) -> str | None:
        """The key type of the accepted key, to ask the host for that one; None when nothing is pinned."""

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        """Return when the key is the accepted one; raise HostKeyPending or HostKeyChanged otherwise."""


@dataclass(frozen=True)
class PinnedFingerprint:
    """A host-key policy for one device whose accepted key is known beforehand (an Ansible module given the
    fingerprint the inventory holds, a script): anything else is refused."""

    key_type: str
    fingerprint: str

    def pinned_type(self, address: str, port: int) -> str | None:
        return self.key_type

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise HostKeyChanged(Target(address, port).name, self.fingerprint, fingerprint)


@dataclass(frozen=True)
class Target:
    address: str
    port: int = 22
    label: str = ""  # how messages name it (the room), the address when empty

    @property
    def name(self) -> str:
        where = f"{self.address}:{self.port}" if self.port != 22 else self.address
        return f"{self.label} ({where})" if self.label else where


@dataclass(frozen=True)
class Timing:
    connect_timeout: float = 10.0  # TCP connect, SSH handshake and login, each
    command_timeout: float = 30.0  # one request and its whole answer
    keepalive: int = 15  # seconds between SSH keepalives on an idle connection


@dataclass(frozen=True)
class Health:
    """What the probes read of an endpoint each step, in common terms; None where the device does not tell."""

    registered: bool | None  # registered with its SIP registrar (or call manager)
    in_call: bool | None
    call_loss_ratio: float | None = None  # 0..1, packets lost on the incoming media of the current call
    call_jitter: float | None = None  # seconds, the worst incoming media channel's jitter
    registration: str = ""  # the device's own word for the registration state ("Registered", "Failed" ...)


@dataclass(frozen=True)
class Change:
    """What apply_config changed (or would change, in check mode): before and after of the changed keys only,
    in the shape Ansible shows as a diff."""

    diff: dict[str, dict[str, Any]]
    changed: bool


class DeviceProfile(ABC):
    """One use of one device: the first request opens one SSH connection, close() ends it."""

    vendor: ClassVar[str]

    def __init__(self, target: Target, login: Login, host_keys: HostKeyPolicy, timing: Timing | None = None) -> None:
        self.target = target
        self.login = login
        self.host_keys = host_keys
        self.timing = timing or Timing()

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """The device's state in common terms: software_version, uptime_seconds, sip_registration ("Registered"
        when registered), active_calls, calls, ntp_status, product, serial."""

    def health(self) -> Health:
        """Registration, call and the call's media quality, as cheaply as the device allows. This default reads
        status(); a profile whose device reports its media statistics overrides it to add the call's loss and
        jitter."""
        status = self.status()
        word = str(status.get("sip_registration") or "")
        return Health(registered=word == "Registered" if word not in ("", "Unknown") else None,
                      in_call=int(status.get("active_calls") or 0) > 0, registration=word)

    @abstractmethod
    def get_config(self, path: str = "") -> dict[str, str]:
        """The configuration (under a native path, or all of it) as {native path: value}."""

    @abstractmethod
    def apply_config(self, desired: dict[str, Any], check: bool = False) -> Change:
        """Make the configuration match `desired` (common settings or native paths); in check mode, only tell
        what would change."""

    @abstractmethod
    def command(self, name: str, **params: Any) -> dict[str, Any]:
        """Run one of the device's own commands; return its result fields."""

    @abstractmethod
    def reboot(self) -> None:
        """Restart the device; the session drops."""

    @abstractmethod
    def upgrade_software(self, url: str, checksum: str = "") -> None:
        """Have the device install the software at `url` (checked against `checksum`); it reboots."""

    @abstractmethod
    def close(self) -> None: ...

    def wait_until_back(self, timeout: float = 300.0, interval: float = 1.0) -> dict[str, Any]:
        """After a reboot: the status once the device answers again (refused connections are waited out)."""
        deadline = time.monotonic() + timeout
        last: DeviceError | None = None
        while time.monotonic() < deadline:
            try:
                return self.status()
            except (DeviceUnreachable, DeviceTimeout) as exc:
                last = exc
                self.close()
                time.sleep(interval)
        raise DeviceUnreachable(_("%(host)s did not come back within %(seconds)s s: %(error)s",
                                  host=self.target.name, seconds=seconds_text(timeout), error=last))

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def seconds_text(value: float) -> str:
    """2.0 -> "2", 2.5 -> "2.5": how messages write a duration."""
    return f"{value:g}"


P = TypeVar("P", bound=DeviceProfile)
_REGISTRY: dict[str, type[DeviceProfile]] = {}
_vendors_loaded = False


def _vendor_key(vendor: str) -> str:
    return "".join(vendor.split()).lower()


def register(cls: type[P]) -> type[P]:
    """Class decorator: the profile of `cls.vendor`'s endpoints."""
    _REGISTRY[_vendor_key(cls.vendor)] = cls
    return cls


def _load_vendors() -> None:
    """Import every module of app/devices/vendors/ once: each registers its profile."""
    global _vendors_loaded
    if _vendors_loaded:
        return
    from app.devices import vendors

    for module in pkgutil.iter_modules(vendors.__path__):
        importlib.import_module(f"{vendors.__name__}.{module.name}")
    _vendors_loaded = True


def profile_class(vendor: str) -> type[DeviceProfile]:
    _load_vendors()
    cls = _REGISTRY.get(_vendor_key(vendor or ""))
    if cls is None:
        known = ", ".join(sorted(c.vendor for c in _REGISTRY.values()))
        raise NotSupported(_("VCOps cannot talk to %(vendor)s equipment yet (profiles exist for: %(known)s).",
                             vendor=vendor or "?", known=known))
    return cls


def supported_vendors() -> list[str]:
    _load_vendors()
    return sorted(c.vendor for c in _REGISTRY.values())
