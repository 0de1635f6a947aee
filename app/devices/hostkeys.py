"""Pinned SSH host keys: trust is given by a technician, never assumed.

The first contact with an address records its key as pending and refuses the connection; once a technician
has accepted it (after comparing the fingerprint with the one the device shows), connections go through. A
key other than the accepted one is refused with both fingerprints named, and recorded as pending next to the
pinned one: accepting it (a device was replaced) replaces the pin, in the audit log like every acceptance.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import User
from app.db import commit_scope, get_or_raise, utcnow
from app.devices.models import HostKey, HostKeyState
from app.devices.profile import HostKeyChanged, HostKeyPending, Target


def keys_of(session: so.Session, address: str, port: int) -> list[HostKey]:
    return list(session.scalars(sa.select(HostKey).where(HostKey.address == address, HostKey.port == port)
                                .order_by(HostKey.id)))


def pinned_key(session: so.Session, address: str, port: int) -> HostKey | None:
    return session.scalar(sa.select(HostKey).where(HostKey.address == address, HostKey.port == port,
                                                   HostKey.state == HostKeyState.ACCEPTED))


def record_contact(session: so.Session, address: str, port: int, key_type: str, fingerprint: str) -> HostKey:
    """The row of the key this address offered now, recorded as pending when it is new."""
    key = session.scalar(sa.select(HostKey).where(HostKey.address == address, HostKey.port == port,
                                                  HostKey.fingerprint == fingerprint))
    if key is None:
        key = HostKey(address=address, port=port, key_type=key_type, fingerprint=fingerprint)
        session.add(key)
        session.flush()
    else:
        # Straight to the table: a contact is not a change worth an audit entry.
        session.execute(sa.update(HostKey).where(HostKey.id == key.id).values(last_seen_at=utcnow()))
    return key


def get_key(session: so.Session, key_id: int) -> HostKey:
    return get_or_raise(session, HostKey, key_id, _("No host key with id %(id)s.", id=key_id))


def accept(session: so.Session, key: HostKey, user: User | None) -> HostKey:
    """Trust this key for its address and port; a key accepted before for them is removed (replaced)."""
    if key.state == HostKeyState.ACCEPTED:
        return key
    for old in keys_of(session, key.address, key.port):
        if old.state == HostKeyState.ACCEPTED:
            session.delete(old)
    session.flush()  # the old pin is gone before the new one exists
    key.state = HostKeyState.ACCEPTED
    key.accepted_by_id = user.id if user is not None else None
    key.accepted_at = utcnow()
    session.flush()
    return key


def forget(session: so.Session, key: HostKey) -> None:
    """Drop a key (a pending one nobody will accept, or a pin to learn again at the next contact)."""
    session.delete(key)
    session.flush()


def pending_keys(session: so.Session) -> list[tuple[HostKey, HostKey | None]]:
    """Keys waiting for a technician, each with the key pinned for the same address (when it changed)."""
    pending = list(session.scalars(sa.select(HostKey).where(HostKey.state == HostKeyState.PENDING)
                                   .order_by(HostKey.first_seen_at.desc(), HostKey.id.desc())))
    return [(key, pinned_key(session, key.address, key.port)) for key in pending]


def accepted_keys(session: so.Session) -> list[HostKey]:
    return list(session.scalars(sa.select(HostKey).where(HostKey.state == HostKeyState.ACCEPTED)
                                .order_by(HostKey.address, HostKey.port)))


class DatabasePins:
    """The host-key policy of the device layer in the app. Each look-up runs in a short transaction of its own,
    committed at once, so a first contact stays recorded although the connection is refused: call it with no
    transaction of your own open (the quick actions talk to devices between two transactions)."""

    def pinned_type(self, address: str, port: int) -> str | None:
        with commit_scope() as session:
            key = pinned_key(session, address, port)
            return key.key_type if key is not None else None

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        for attempt in range(2):
            try:
                with commit_scope() as session:
                    key = record_contact(session, address, port, key_type, fingerprint)
                    state = key.state
                    pinned = pinned_key(session, address, port)
                    pinned_fingerprint = pinned.fingerprint if pinned is not None else None
                break
            except sa.exc.IntegrityError:
                if attempt:  # another worker recorded the same first contact meanwhile: read it again once
                    raise
        host = Target(address, port).name
        if state == HostKeyState.ACCEPTED:
            return
        if pinned_fingerprint is not None:
            raise HostKeyChanged(host, pinned_fingerprint, fingerprint)
        raise HostKeyPending(host, fingerprint)
