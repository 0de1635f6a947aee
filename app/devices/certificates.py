"""Pinned bridge certificates: trust is given by a technician, never assumed (as for SSH host keys).

The first contact with a bridge's management address records the certificate it presents (SHA-256
fingerprint, subject, validity) as pending and refuses the connection; once a technician has accepted it
(after comparing the fingerprint with the one the bridge's own administration shows), connections go through.
A certificate other than the accepted one is refused before any request is sent, with both fingerprints
named, and recorded as pending next to the pinned one: accepting it (a renewed certificate) replaces the pin,
in the audit log like every acceptance.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import User
from app.db import commit_scope, get_or_raise, utcnow
from app.devices.bridges.base import (
    BridgeCertificateChanged,
    BridgeCertificatePending,
    BridgeTarget,
    PresentedCertificate,
)
from app.devices.models import BridgeCertificate, CertificateState


def certificates_of(session: so.Session, address: str, port: int) -> list[BridgeCertificate]:
    return list(session.scalars(sa.select(BridgeCertificate)
                                .where(BridgeCertificate.address == address, BridgeCertificate.port == port)
                                .order_by(BridgeCertificate.id)))


def pinned_certificate(session: so.Session, address: str, port: int) -> BridgeCertificate | None:
    return session.scalar(sa.select(BridgeCertificate).where(
        BridgeCertificate.address == address, BridgeCertificate.port == port,
        BridgeCertificate.state == CertificateState.ACCEPTED))


def record_contact(session: so.Session, address: str, port: int, presented: PresentedCertificate
                   ) -> BridgeCertificate:
    """The row of the certificate this address presented now, recorded as pending when it is new."""
    row = session.scalar(sa.select(BridgeCertificate).where(
        BridgeCertificate.address == address, BridgeCertificate.port == port,
        BridgeCertificate.fingerprint == presented.fingerprint))
    if row is None:
        row = BridgeCertificate(address=address, port=port, fingerprint=presented.fingerprint,
                                subject=presented.subject[:500], not_before=presented.not_before,
                                not_after=presented.not_after)
        session.add(row)
        session.flush()
    else:
        # Straight to the table: a contact is not a change worth an audit entry.
        session.execute(sa.update(BridgeCertificate).where(BridgeCertificate.id == row.id)
                        .values(last_seen_at=utcnow()))
    return row


def get_certificate(session: so.Session, certificate_id: int) -> BridgeCertificate:
    return get_or_raise(session, BridgeCertificate, certificate_id,
                        _("No bridge certificate with id %(id)s.", id=certificate_id))


def accept(session: so.Session, certificate: BridgeCertificate, user: User | None) -> BridgeCertificate:
    """Trust this certificate for its address and port; one accepted before for them is removed (replaced)."""
    if certificate.state == CertificateState.ACCEPTED:
        return certificate
    for old in certificates_of(session, certificate.address, certificate.port):
        if old.state == CertificateState.ACCEPTED:
            session.delete(old)
    session.flush()  # the old pin is gone before the new one exists
    certificate.state = CertificateState.ACCEPTED
    certificate.accepted_by_id = user.id if user is not None else None
    certificate.accepted_at = utcnow()
    session.flush()
    return certificate


def forget(session: so.Session, certificate: BridgeCertificate) -> None:
    """Drop a certificate (a pending one nobody will accept, or a pin to learn again at the next contact)."""
    session.delete(certificate)
    session.flush()


def pending_certificates(session: so.Session) -> list[tuple[BridgeCertificate, BridgeCertificate | None]]:
    """Certificates waiting for a technician, each with the one pinned for the same address (when it changed)."""
    pending = list(session.scalars(sa.select(BridgeCertificate)
                                   .where(BridgeCertificate.state == CertificateState.PENDING)
                                   .order_by(BridgeCertificate.first_seen_at.desc(), BridgeCertificate.id.desc())))
    return [(row, pinned_certificate(session, row.address, row.port)) for row in pending]


def accepted_certificates(session: so.Session) -> list[BridgeCertificate]:
    return list(session.scalars(sa.select(BridgeCertificate)
                                .where(BridgeCertificate.state == CertificateState.ACCEPTED)
                                .order_by(BridgeCertificate.address, BridgeCertificate.port)))


class DatabaseCertificates:
    """The certificate policy of the bridge layer in the app. Each check runs in a short transaction of its own,
    committed at once, so a first contact or a changed certificate stays recorded although the connection is
    refused: call it with no transaction of your own open (talk to bridges between two transactions)."""

    def check(self, target: BridgeTarget, presented: PresentedCertificate) -> str:
        for attempt in range(2):
            try:
                with commit_scope() as session:
                    row = record_contact(session, target.address, target.port, presented)
                    state = row.state
                    pinned = pinned_certificate(session, target.address, target.port)
                    pinned_fingerprint = pinned.fingerprint if pinned is not None else None
                break
            except sa.exc.IntegrityError:
                if attempt:  # another worker recorded the same first contact meanwhile: read it again once
                    raise
        if state == CertificateState.ACCEPTED:
            return presented.fingerprint
        if pinned_fingerprint is not None:
            raise BridgeCertificateChanged(target.name, pinned_fingerprint, presented.fingerprint)
        raise BridgeCertificatePending(target.name, presented.fingerprint)
