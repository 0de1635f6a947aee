"""Pinned bridge certificates: trust is given by a technician, never assumed (as for SSH host keys).

The first contact with a bridge's management address records the certificate it presents (SHA-256
fingerprint, subject, validity) as pending and refuses the connection; once a technician has accepted it
(after comparing the fingerprint with the one the bridge's own administration shows), connections go through.
A certificate other than the accepted one is refused before any request is sent, with both fingerprints
named, and recorded as pending next to the pinned one: accepting it (a renewed certificate) replaces the pin,
in the audit log like every acceptance.
"""

from __future__ import annotations

import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import User
from app.db import get_or_raise
from app.devices import pins
from app.devices.bridges.base import (
    BridgeCertificateChanged,
    BridgeCertificatePending,
    BridgeTarget,
    PresentedCertificate,
)
from app.devices.models import BridgeCertificate


def certificates_of(session: so.Session, address: str, port: int) -> list[BridgeCertificate]:
    return pins.pins_of(session, BridgeCertificate, address, port)


def pinned_certificate(session: so.Session, address: str, port: int) -> BridgeCertificate | None:
    return pins.pinned(session, BridgeCertificate, address, port)


def record_contact(session: so.Session, address: str, port: int, presented: PresentedCertificate
                   ) -> BridgeCertificate:
    """The row of the certificate this address presented now, recorded as pending when it is new."""
    return pins.record_contact(session, BridgeCertificate, address, port, presented.fingerprint,
                               subject=presented.subject[:500], not_before=presented.not_before,
                               not_after=presented.not_after)


def get_certificate(session: so.Session, certificate_id: int) -> BridgeCertificate:
    return get_or_raise(session, BridgeCertificate, certificate_id,
                        _("No bridge certificate with id %(id)s.", id=certificate_id))


def accept(session: so.Session, certificate: BridgeCertificate, user: User | None) -> BridgeCertificate:
    """Trust this certificate for its address and port; one accepted before for them is removed (replaced)."""
    return pins.accept(session, certificate, user)


forget = pins.forget


def pending_certificates(session: so.Session) -> list[tuple[BridgeCertificate, BridgeCertificate | None]]:
    """Certificates waiting for a technician, each with the one pinned for the same address (when it changed)."""
    return pins.pending(session, BridgeCertificate)


def accepted_certificates(session: so.Session) -> list[BridgeCertificate]:
    return pins.accepted(session, BridgeCertificate)


class DatabaseCertificates:
    """The certificate policy of the bridge layer in the app. Each check runs in a short transaction of its own,
    committed at once, so a first contact or a changed certificate stays recorded although the connection is
    refused: call it with no transaction of your own open (talk to bridges between two transactions)."""

    def check(self, target: BridgeTarget, presented: PresentedCertificate) -> str:
        accepted, pinned_fingerprint = pins.contact(
            BridgeCertificate, target.address, target.port,
            lambda session: record_contact(session, target.address, target.port, presented))
        if accepted:
            return presented.fingerprint
        if pinned_fingerprint is not None:
            raise BridgeCertificateChanged(target.name, pinned_fingerprint, presented.fingerprint)
        raise BridgeCertificatePending(target.name, presented.fingerprint)
