"""Pinned SSH host keys and bridge certificates of the equipment, and the quick actions technicians ask of an
endpoint."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow
from app.devices.pins import Pin

if TYPE_CHECKING:
    from app.auth.models import User
    from app.sites.models import Endpoint


class HostKeyState(enum.StrEnum):
    PENDING = "pending"  # seen, not trusted: connections are refused until a technician accepts it
    ACCEPTED = "accepted"  # the pinned key: the only one a connection to this address and port accepts


@audited
class HostKey(Pin, Base):
    """A host key an address offered (fingerprint SHA256:<base64>, as ssh-keygen -l prints). At most one per
    address and port is accepted (app.devices.pins); the others wait, so a changed key is shown next to the
    pinned one and never replaces it by itself."""

    __tablename__ = "host_keys"
    states = HostKeyState

    key_type: so.Mapped[str] = so.mapped_column(sa.String(50))
    state: so.Mapped[HostKeyState] = so.mapped_column(stored_enum(HostKeyState, "host_key_state"),
                                                      default=HostKeyState.PENDING)

    __table_args__ = (
        sa.UniqueConstraint("address", "port", "fingerprint", name="uq_host_keys_address_port_fingerprint"),
        sa.CheckConstraint("port > 0 AND port < 65536", name="port_range"),
        sa.Index("ix_host_keys_address_port", "address", "port"),
    )

    @property
    def where(self) -> str:
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


class CertificateState(enum.StrEnum):
    PENDING = "pending"  # presented, not trusted: connections are refused until a technician accepts it
    ACCEPTED = "accepted"  # the pinned certificate: the only one a connection to this address and port accepts


@audited
class BridgeCertificate(Pin, Base):
    """A TLS certificate a bridge's management address presented (fingerprint SHA-256, AB:CD:... as openssl
    prints it). At most one per address and port is accepted (app.devices.pins); a changed one waits beside it
    and never replaces it by itself."""

    __tablename__ = "bridge_certificates"
    states = CertificateState

    subject: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    not_before: so.Mapped[dt.datetime | None]
    not_after: so.Mapped[dt.datetime | None]
    state: so.Mapped[CertificateState] = so.mapped_column(stored_enum(CertificateState, "bridge_certificate_state"),
                                                          default=CertificateState.PENDING)

    __table_args__ = (
        sa.UniqueConstraint("address", "port", "fingerprint", name="uq_bridge_certificates_address_port_fingerprint"),
        sa.CheckConstraint("port > 0 AND port < 65536", name="port_range"),
        sa.Index("ix_bridge_certificates_address_port", "address", "port"),
    )

    @property
    def where(self) -> str:
        return self.address if self.port == 443 else f"{self.address}:{self.port}"


class ActionKind(enum.StrEnum):
    STATUS = "status"
    FETCH_CONFIG = "fetch_config"


class ActionState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (ActionState.SUCCEEDED, ActionState.FAILED)


class DeviceAction(Base):
    """A short task on one endpoint (its status, its configuration), run by the queue; the page polls it."""

    __tablename__ = "device_actions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    endpoint_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    action: so.Mapped[ActionKind] = so.mapped_column(stored_enum(ActionKind, "device_action_kind"))
    state: so.Mapped[ActionState] = so.mapped_column(stored_enum(ActionState, "device_action_state"),
                                                     default=ActionState.QUEUED)
    result: so.Mapped[dict[str, Any] | None] = so.mapped_column(sa.JSON)
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    requested_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    started_at: so.Mapped[dt.datetime | None]
    finished_at: so.Mapped[dt.datetime | None]

    endpoint: so.Mapped[Endpoint] = so.relationship("Endpoint")
    requested_by: so.Mapped[User | None] = so.relationship("User")

    @property
    def finished(self) -> bool:
        return self.state.finished
