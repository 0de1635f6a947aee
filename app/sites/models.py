"""Typed models of the inventory. Levels are rows, so the tree serves three levels or two alike."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow

if TYPE_CHECKING:
    from app.auth.models import User


class Status(enum.StrEnum):
    """Lifecycle of a piece of equipment or a link; retired rows are kept for history."""

    PLANNED = "planned"
    ACTIVE = "active"
    RETIRED = "retired"


class EndpointKind(enum.StrEnum):
    ROOM_SYSTEM = "room_system"
    SOFTWARE_CLIENT = "software_client"


class HostKind(enum.StrEnum):
    LINK_ROUTER = "link_router"
    MEDIA_SERVER = "media_server"
    RECORDING_SERVER = "recording_server"


class LinkMedium(enum.StrEnum):
    DEDICATED = "dedicated"  # the State's dedicated data network (mạng truyền số liệu chuyên dùng)
    INTERNET = "internet"
    MOBILE_BACKUP = "mobile_backup"


class ContactRole(enum.StrEnum):
    LEADER = "leader"
    SECRETARY = "secretary"
    TECHNICAL = "technical"


@audited
class Level(Base):
    """An administrative level; a lower rank is a higher level (province 1, district 2, commune 3)."""

    __tablename__ = "levels"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100))
    rank: so.Mapped[int] = so.mapped_column(unique=True)

    def __repr__(self) -> str:
        return f"<Level {self.code}>"


@audited
class Site(Base):
    __tablename__ = "sites"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    level_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("levels.id"), index=True)
    parent_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    # Materialised path of ids ("/1/4/17/"): subtree and ancestor-at-level queries without recursion.
    path: so.Mapped[str] = so.mapped_column(sa.String(400), index=True, default="/")
    address: so.Mapped[str] = so.mapped_column(sa.String(300), default="")
    latitude: so.Mapped[float | None]
    longitude: so.Mapped[float | None]
    is_sample: so.Mapped[bool] = so.mapped_column(default=False)
    status: so.Mapped[Status] = so.mapped_column(stored_enum(Status, "site_status"), default=Status.ACTIVE)
    notes: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    # On a top-level site (a province): whether its scoped staff may invite sites outside their scope.
    invites_outside_scope: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    level: so.Mapped[Level] = so.relationship(lazy="joined")
    parent: so.Mapped[Site | None] = so.relationship(remote_side=[id], back_populates="children")
    children: so.Mapped[list[Site]] = so.relationship(back_populates="parent", order_by="Site.code")
    contacts: so.Mapped[list[Contact]] = so.relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="Contact.id")
    endpoints: so.Mapped[list[Endpoint]] = so.relationship(back_populates="site", order_by="Endpoint.room_name")
    hosts: so.Mapped[list[ManagedHost]] = so.relationship(back_populates="site", order_by="ManagedHost.name")

    __table_args__ = (
        sa.CheckConstraint("latitude IS NULL OR (latitude >= -90 AND latitude <= 90)", name="latitude_range"),
        sa.CheckConstraint("longitude IS NULL OR (longitude >= -180 AND longitude <= 180)", name="longitude_range"),
    )

    @property
    def ancestor_ids(self) -> list[int]:
        return [int(p) for p in self.path.strip("/").split("/") if p][:-1]

    def __repr__(self) -> str:
        return f"<Site {self.code}>"


@audited
class Contact(Base):
    """A person at a site who receives invitations (leader, secretary, technical contact)."""

    __tablename__ = "contacts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    role: so.Mapped[ContactRole] = so.mapped_column(stored_enum(ContactRole, "contact_role"))
    email: so.Mapped[str] = so.mapped_column(sa.String(254), default="")
    phone: so.Mapped[str] = so.mapped_column(sa.String(40), default="")

    site: so.Mapped[Site] = so.relationship(back_populates="contacts")


@audited
class Endpoint(Base):
    """A room that can join a meeting: a room system or a software client at a site."""

    __tablename__ = "endpoints"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    room_name: so.Mapped[str] = so.mapped_column(sa.String(200))
    vendor: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    model: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    kind: so.Mapped[EndpointKind] = so.mapped_column(
        stored_enum(EndpointKind, "endpoint_kind"), default=EndpointKind.ROOM_SYSTEM)
    mgmt_address: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    mgmt_port: so.Mapped[int] = so.mapped_column(default=22)
    sip_uri: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    h323_alias: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    serial: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    firmware_version: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    status: so.Mapped[Status] = so.mapped_column(stored_enum(Status, "endpoint_status"), default=Status.ACTIVE)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    site: so.Mapped[Site] = so.relationship(back_populates="endpoints")

    __table_args__ = (
        sa.UniqueConstraint("site_id", "room_name", name="uq_endpoints_site_room"),
        sa.CheckConstraint("mgmt_port > 0 AND mgmt_port < 65536", name="mgmt_port_range"),
    )

    def __repr__(self) -> str:
        return f"<Endpoint {self.room_name}>"


@audited
class Bridge(Base):
    """A multipoint control unit (MCU): each connected room takes one of its video ports."""

    __tablename__ = "bridges"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)
    vendor: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    model: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    mgmt_address: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    sip_address: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    total_ports: so.Mapped[int]
    status: so.Mapped[Status] = so.mapped_column(stored_enum(Status, "bridge_status"), default=Status.ACTIVE)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    site: so.Mapped[Site | None] = so.relationship()

    __table_args__ = (sa.CheckConstraint("total_ports > 0", name="total_ports_positive"),)


@audited
class ManagedHost(Base):
    """Other equipment at a site managed by VCOps: link routers, media and recording servers."""

    __tablename__ = "managed_hosts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)
    kind: so.Mapped[HostKind] = so.mapped_column(stored_enum(HostKind, "host_kind"))
    mgmt_address: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    status: so.Mapped[Status] = so.mapped_column(stored_enum(Status, "host_status"), default=Status.ACTIVE)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    site: so.Mapped[Site] = so.relationship(back_populates="hosts")


@audited
class Link(Base):
    """A network link with two ends; each end has the address to probe."""

    __tablename__ = "links"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    site_a_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    address_a: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    site_b_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    address_b: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    provider: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    medium: so.Mapped[LinkMedium] = so.mapped_column(stored_enum(LinkMedium, "link_medium"),
                                                     default=LinkMedium.DEDICATED)
    bandwidth_kbps: so.Mapped[int]
    status: so.Mapped[Status] = so.mapped_column(stored_enum(Status, "link_status"), default=Status.ACTIVE)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    site_a: so.Mapped[Site] = so.relationship(foreign_keys=[site_a_id])
    site_b: so.Mapped[Site] = so.relationship(foreign_keys=[site_b_id])

    __table_args__ = (
        sa.CheckConstraint("site_a_id <> site_b_id", name="two_different_ends"),
        sa.CheckConstraint("bandwidth_kbps > 0", name="bandwidth_positive"),
    )


@audited
class MaintenanceWindow(Base):
    """Planned work on exactly one of a site, an endpoint, a bridge or a link."""

    __tablename__ = "maintenance_windows"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    endpoint_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("endpoints.id"), index=True)
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id"), index=True)
    link_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("links.id"), index=True)
    starts_at: so.Mapped[dt.datetime]
    ends_at: so.Mapped[dt.datetime]
    reason: so.Mapped[str] = so.mapped_column(sa.String(500))
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    site: so.Mapped[Site | None] = so.relationship()
    created_by: so.Mapped[User | None] = so.relationship("User")
    endpoint: so.Mapped[Endpoint | None] = so.relationship()
    bridge: so.Mapped[Bridge | None] = so.relationship()
    link: so.Mapped[Link | None] = so.relationship()

    __table_args__ = (
        sa.CheckConstraint(
            "(CASE WHEN site_id IS NULL THEN 0 ELSE 1 END + CASE WHEN endpoint_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN bridge_id IS NULL THEN 0 ELSE 1 END + CASE WHEN link_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="exactly_one_target"),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.Index("ix_maintenance_windows_period", "starts_at", "ends_at"),
    )

    @property
    def target(self) -> Site | Endpoint | Bridge | Link | None:
        return self.site or self.endpoint or self.bridge or self.link
