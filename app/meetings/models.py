"""A meeting (a series, or a single meeting) and its occurrences, each holding its own reservations.

Indico's lesson: bookings and their occurrences are separate tables, so one occurrence can be moved
or cancelled. Every occurrence reserves, from its setup start (the technicians' test call) to its end:
one room per participating site, one bridge port per room, and bandwidth on every link on the path
from each site up to the host site (kept as LinkReservation rows, so clash checks are index lookups).
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow
from app.sites.models import Bridge, Endpoint, Link, Site


class Classification(enum.StrEnum):
    NORMAL = "normal"
    RESTRICTED = "restricted"  # documents are never attached to email; site staff read them after login


class OccurrenceStatus(enum.StrEnum):
    DRAFT = "draft"  # holds no resources and sends nothing
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# Occurrences in these states hold their room, port and bandwidth.
HOLDING = (OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS)


@audited
class Meeting(Base):
    """What the secretariat booked: one meeting, or a recurring series of occurrences."""

    __tablename__ = "meetings"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    uid: so.Mapped[str] = so.mapped_column(sa.String(100), unique=True)  # iCalendar UID of the series
    title: so.Mapped[str] = so.mapped_column(sa.String(300))
    chair: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    host_site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    classification: so.Mapped[Classification] = so.mapped_column(
        stored_enum(Classification, "meeting_classification"), default=Classification.NORMAL)
    notes: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    setup_minutes: so.Mapped[int] = so.mapped_column(default=60)
    bitrate_kbps: so.Mapped[int] = so.mapped_column(default=2000)  # per site, before overhead
    rrule: so.Mapped[str] = so.mapped_column(sa.String(300), default="")  # RFC 5545 RRULE, empty when single
    sequence: so.Mapped[int] = so.mapped_column(default=0)  # SEQUENCE of the series' master event
    conference_number: so.Mapped[str] = so.mapped_column(sa.String(20), default="", index=True)
    pin: so.Mapped[str] = so.mapped_column(sa.String(20), default="")
    split_from_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("meetings.id"))
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    host_site: so.Mapped[Site] = so.relationship()
    occurrences: so.Mapped[list[Occurrence]] = so.relationship(
        back_populates="meeting", order_by="Occurrence.starts_at", cascade="all, delete-orphan")

    __table_args__ = (
        sa.CheckConstraint("setup_minutes >= 0 AND setup_minutes <= 480", name="setup_minutes_range"),
        sa.CheckConstraint("bitrate_kbps > 0", name="bitrate_positive"),
    )


@audited
class Occurrence(Base):
    __tablename__ = "occurrences"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    # iCalendar RECURRENCE-ID: the start this occurrence had in the series' rule (None for a single meeting).
    recurrence_id: so.Mapped[dt.datetime | None]
    starts_at: so.Mapped[dt.datetime]
    ends_at: so.Mapped[dt.datetime]
    setup_starts_at: so.Mapped[dt.datetime]  # starts_at less the setup buffer: when reservations begin
    status: so.Mapped[OccurrenceStatus] = so.mapped_column(
        stored_enum(OccurrenceStatus, "occurrence_status"), default=OccurrenceStatus.SCHEDULED)
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id"))
    ports: so.Mapped[int] = so.mapped_column(default=0)  # bridge ports held: one per room (kept for clash checks)
    sequence: so.Mapped[int] = so.mapped_column(default=0)  # iCalendar SEQUENCE, raised on every change

    meeting: so.Mapped[Meeting] = so.relationship(back_populates="occurrences")
    bridge: so.Mapped[Bridge | None] = so.relationship()
    participations: so.Mapped[list[Participation]] = so.relationship(
        back_populates="occurrence", cascade="all, delete-orphan", order_by="Participation.id")
    link_reservations: so.Mapped[list[LinkReservation]] = so.relationship(
        back_populates="occurrence", cascade="all, delete-orphan")

    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("setup_starts_at <= starts_at", name="setup_before_start"),
        sa.Index("ix_occurrences_bridge_period", "bridge_id", "setup_starts_at", "ends_at"),
        sa.Index("ix_occurrences_period", "setup_starts_at", "ends_at"),
    )

    @property
    def holds_resources(self) -> bool:
        return self.status in HOLDING


class Participation(Base):
    """A site taking part in an occurrence, in one of its rooms; its attendance confirmation."""

    __tablename__ = "participations"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    occurrence_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("occurrences.id", ondelete="CASCADE"))
    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    # A draft may leave the room to be chosen when it is scheduled.
    endpoint_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("endpoints.id"))
    confirmed_at: so.Mapped[dt.datetime | None]
    confirmed_by: so.Mapped[str] = so.mapped_column(sa.String(254), default="")

    occurrence: so.Mapped[Occurrence] = so.relationship(back_populates="participations")
    site: so.Mapped[Site] = so.relationship()
    endpoint: so.Mapped[Endpoint | None] = so.relationship()

    __table_args__ = (
        sa.UniqueConstraint("occurrence_id", "site_id", name="uq_participations_occurrence_site"),
        sa.Index("ix_participations_endpoint", "endpoint_id", "occurrence_id"),
    )


class LinkReservation(Base):
    """Bandwidth an occurrence takes on one link, over its reserved period (copied for index lookups)."""

    __tablename__ = "link_reservations"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    occurrence_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    link_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("links.id"))
    kbps: so.Mapped[int]
    starts_at: so.Mapped[dt.datetime]
    ends_at: so.Mapped[dt.datetime]

    occurrence: so.Mapped[Occurrence] = so.relationship(back_populates="link_reservations")
    link: so.Mapped[Link] = so.relationship()

    __table_args__ = (sa.Index("ix_link_reservations_link_period", "link_id", "starts_at", "ends_at"),)
