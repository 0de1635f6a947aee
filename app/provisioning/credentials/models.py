"""Typed models of the credential vault: SSH keys and device passwords (kept only encrypted), and which
credential logs in to which equipment (a default per kind, or an override for a site or one device)."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, stored_enum, utcnow


class CredentialKind(enum.StrEnum):
    SSH_KEY = "ssh_key"
    PASSWORD = "password"  # noqa: S105 (the kind's name, not a password)


class EquipmentKind(enum.StrEnum):
    """What a credential is assigned to: the inventory's kinds of managed equipment."""

    ENDPOINT = "endpoint"
    BRIDGE = "bridge"
    LINK_ROUTER = "link_router"
    MEDIA_SERVER = "media_server"
    RECORDING_SERVER = "recording_server"


class Credential(Base):
    """An SSH key or a device password; the secret is kept only encrypted (app.provisioning.credentials.service)."""

    __tablename__ = "credentials"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)
    kind: so.Mapped[CredentialKind] = so.mapped_column(stored_enum(CredentialKind, "credential_kind"))
    username: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    # A Fernet token (MultiFernet under VCOPS_CREDENTIAL_KEYS); never the secret itself.
    secret_encrypted: so.Mapped[str] = so.mapped_column(sa.Text)
    description: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    rotated_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)  # when the secret itself last changed

    assignments: so.Mapped[list[CredentialAssignment]] = so.relationship(
        back_populates="credential", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Credential {self.name}>"


class CredentialAssignment(Base):
    """Which credential logs in to which equipment: a default per kind, or an override for a site (and the
    sites below it) or for one device. The most specific assignment wins."""

    __tablename__ = "credential_assignments"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    credential_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("credentials.id", ondelete="CASCADE"), index=True)
    equipment_kind: so.Mapped[EquipmentKind] = so.mapped_column(stored_enum(EquipmentKind, "equipment_kind"))
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    endpoint_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id", ondelete="CASCADE"), index=True)
    host_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("managed_hosts.id", ondelete="CASCADE"), index=True)
    # "endpoint", "endpoint/site/4", "endpoint/device/17": one assignment per scope (NULLs are never equal in
    # a unique constraint, so the scope is spelt out).
    scope_key: so.Mapped[str] = so.mapped_column(sa.String(80), unique=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    credential: so.Mapped[Credential] = so.relationship(back_populates="assignments")

    __table_args__ = (
        sa.CheckConstraint(
            "(CASE WHEN site_id IS NULL THEN 0 ELSE 1 END + CASE WHEN endpoint_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN bridge_id IS NULL THEN 0 ELSE 1 END + CASE WHEN host_id IS NULL THEN 0 ELSE 1 END) <= 1",
            name="one_scope"),
    )
