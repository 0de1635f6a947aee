"""Pinned SSH host keys: trust is given by a technician, never assumed.

The first contact with an address records its key as pending and refuses the connection; once a technician
has accepted it (after comparing the fingerprint with the one the device shows), connections go through. A
key other than the accepted one is refused with both fingerprints named, and recorded as pending next to the
pinned one: accepting it (a device was replaced) replaces the pin, in the audit log like every acceptance.
"""

from __future__ import annotations

import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import User
from app.db import commit_scope, get_or_raise
from app.devices import pins
from app.devices.models import HostKey
from app.devices.profile import HostKeyChanged, HostKeyPending, Target


def keys_of(session: so.Session, address: str, port: int) -> list[HostKey]:
    return pins.pins_of(session, HostKey, address, port)


def pinned_key(session: so.Session, address: str, port: int) -> HostKey | None:
    return pins.pinned(session, HostKey, address, port)


def record_contact(session: so.Session, address: str, port: int, key_type: str, fingerprint: str) -> HostKey:
    """The row of the key this address offered now, recorded as pending when it is new."""
    return pins.record_contact(session, HostKey, address, port, fingerprint, key_type=key_type)


def get_key(session: so.Session, key_id: int) -> HostKey:
    return get_or_raise(session, HostKey, key_id, _("No host key with id %(id)s.", id=key_id))


def accept(session: so.Session, key: HostKey, user: User | None) -> HostKey:
    """Trust this key for its address and port; a key accepted before for them is removed (replaced)."""
    return pins.accept(session, key, user)


forget = pins.forget


def pending_keys(session: so.Session) -> list[tuple[HostKey, HostKey | None]]:
    """Keys waiting for a technician, each with the key pinned for the same address (when it changed)."""
    return pins.pending(session, HostKey)


def accepted_keys(session: so.Session) -> list[HostKey]:
    return pins.accepted(session, HostKey)


class DatabasePins:
    """The host-key policy of the device layer in the app. Each look-up runs in a short transaction of its own,
    committed at once, so a first contact stays recorded although the connection is refused: call it with no
    transaction of your own open (the quick actions talk to devices between two transactions)."""

    def pinned_type(self, address: str, port: int) -> str | None:
        with commit_scope() as session:
            key = pinned_key(session, address, port)
            return key.key_type if key is not None else None

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        accepted, pinned_fingerprint = pins.contact(
            HostKey, address, port, lambda session: record_contact(session, address, port, key_type, fingerprint))
        host = Target(address, port).name
        if accepted:
            return
        if pinned_fingerprint is not None:
            raise HostKeyChanged(host, pinned_fingerprint, fingerprint)
        raise HostKeyPending(host, fingerprint)
