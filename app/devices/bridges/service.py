"""Opening a bridge of the inventory, and fetching its certificate for a technician to accept.

A bridge's management address is `host`, `host:port` or `https://host:port` (Bridge.mgmt_address); its login
comes from a source set from outside (`set_bridge_credential_source`), as for endpoints: devices sit below
provisioning and do not import its credential store, so the factory hands it `credential_for_device`.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _

from app.db import get_or_raise
from app.devices import certificates
from app.devices.bridges.base import (
    BridgeClient,
    BridgeError,
    BridgeNotSupported,
    BridgeTarget,
    BridgeTiming,
    CertificatePolicy,
)
from app.devices.bridges.registry import client_class
from app.devices.bridges.tls import presented_certificate
from app.devices.models import BridgeCertificate
from app.devices.profile import Login
from app.errors import Invalid
from app.sites.models import Bridge, Status

BridgeCredentialSource = Callable[[so.Session, Bridge], Login]
_credential_source: BridgeCredentialSource | None = None


def set_bridge_credential_source(source: BridgeCredentialSource | None) -> BridgeCredentialSource | None:
    """Use `source(session, bridge)` for bridge logins (None: every login is refused); returns the previous one."""
    global _credential_source
    previous, _credential_source = _credential_source, source
    return previous


def credential_for(session: so.Session, bridge: Bridge) -> Login:
    if _credential_source is None:
        raise BridgeError(_("No credential store is available to log in to the MCU %(bridge)s.", bridge=bridge.name))
    return _credential_source(session, bridge)


def bridge_timing() -> BridgeTiming:
    config = current_app.config
    return BridgeTiming(connect_timeout=float(config["BRIDGE_CONNECT_TIMEOUT"]),
                        read_timeout=float(config["BRIDGE_READ_TIMEOUT"]))


def target_of(bridge: Bridge) -> BridgeTarget:
    """The bridge's HTTPS address from its management address (port 443 unless it names one)."""
    raw = bridge.mgmt_address.strip()
    if not raw:
        raise Invalid(_("The MCU %(bridge)s has no management address.", bridge=bridge.name),
                      fields={"mgmt_address": [_("A management address is needed to reach the bridge.")]})
    parts = urlsplit(raw if "//" in raw else f"//{raw}")
    try:
        port = parts.port or 443
    except ValueError:
        port = 0
    if not parts.hostname or not 0 < port < 65536 or parts.scheme not in ("", "https"):
        raise Invalid(_("The management address of the MCU %(bridge)s is not host[:port]: “%(address)s”.",
                        bridge=bridge.name, address=raw),
                      fields={"mgmt_address": [_("Write it as host or host:port.")]})
    return BridgeTarget(parts.hostname, port, label=bridge.name)


def get_bridge(session: so.Session, bridge_id: int) -> Bridge:
    return get_or_raise(session, Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))


def check_manageable(bridge: Bridge) -> None:
    """Refuse, with the reason, a bridge VCOps cannot talk to."""
    if bridge.status == Status.RETIRED:
        raise Invalid(_("The MCU %(bridge)s is retired.", bridge=bridge.name))
    target_of(bridge)
    try:
        client_class(bridge.vendor)
    except BridgeNotSupported as exc:
        raise Invalid(exc.message, fields={"vendor": [exc.message]}) from exc


def open_bridge(session: so.Session, bridge: Bridge, policy: CertificatePolicy | None = None,
                timing: BridgeTiming | None = None) -> BridgeClient:
    """The bridge's client, ready to connect on its first request (use it in a `with` block, with no transaction
    of your own open: the certificate check commits on its own)."""
    check_manageable(bridge)
    cls = client_class(bridge.vendor)
    return cls(target_of(bridge), credential_for(session, bridge), policy or certificates.DatabaseCertificates(),
               timing or bridge_timing())


def fetch_certificate(session: so.Session, bridge: Bridge) -> BridgeCertificate:
    """Connect to the bridge, read the certificate it presents (a TLS handshake, nothing sent) and record it:
    pending when new, for a technician to compare and accept."""
    check_manageable(bridge)
    target = target_of(bridge)
    presented = presented_certificate(target, bridge_timing().connect_timeout)
    return certificates.record_contact(session, target.address, target.port, presented)
