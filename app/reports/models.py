"""Reports room: the reports kept for download, and the travel assumptions the province sets per site and meeting.

The travel assumptions live here rather than on the sites and meetings tables: they serve only the savings
figures, and the reports domain (the highest) owns them, so the inventory and booking stay as they are.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow
from app.meetings.models import Meeting
from app.sites.models import Site

REPORTS_FOLDER = "reports"  # under INSTANCE_PATH: one sub-folder per stored report


class ReportKind(enum.StrEnum):
    MONTHLY = "monthly"  # produced on the first working day of a month, mailed to REPORT_RECIPIENTS
    ON_DEMAND = "on_demand"  # asked for on the page or through the API, for any period


class ReportStatus(enum.StrEnum):
    QUEUED = "queued"  # a long period: built by a worker
    READY = "ready"
    FAILED = "failed"


@audited
class SiteTravel(Base):
    """What the province knows better than the map: the road distance and travel time from a site to the
    province's seat, used instead of the straight line (times the road factor) from the coordinates."""

    __tablename__ = "site_travel"

    site_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    distance_km: so.Mapped[float | None]
    travel_minutes: so.Mapped[int | None]

    site: so.Mapped[Site] = so.relationship()

    __table_args__ = (
        sa.CheckConstraint("distance_km IS NULL OR distance_km >= 0", name="distance_not_negative"),
        sa.CheckConstraint("travel_minutes IS NULL OR travel_minutes >= 0", name="minutes_not_negative"),
    )


@audited
class MeetingHeadcount(Base):
    """People per site who would have travelled to this meeting, instead of REPORT_PEOPLE_PER_SITE."""

    __tablename__ = "meeting_headcounts"

    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"),
                                                  primary_key=True)
    people_per_site: so.Mapped[int]

    meeting: so.Mapped[Meeting] = so.relationship()

    __table_args__ = (sa.CheckConstraint("people_per_site >= 0 AND people_per_site <= 1000",
                                         name="people_range"),)


class StoredReport(Base):
    """A report produced once and kept: its period, its subtree, its files, and to whom it was mailed."""

    __tablename__ = "stored_reports"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # "monthly-2026-11" for the monthly report of the province (one per month, whichever worker gets there),
    # a random key for the others.
    key: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    kind: so.Mapped[ReportKind] = so.mapped_column(stored_enum(ReportKind, "report_kind"))
    status: so.Mapped[ReportStatus] = so.mapped_column(stored_enum(ReportStatus, "report_status"),
                                                       default=ReportStatus.QUEUED)
    period_start: so.Mapped[dt.datetime]
    period_end: so.Mapped[dt.datetime]
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="SET NULL"))
    title: so.Mapped[str] = so.mapped_column(sa.String(300), default="")
    folder: so.Mapped[str] = so.mapped_column(sa.String(64), default="")  # under INSTANCE_PATH/reports/
    files: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)  # "report.pdf", "report.xlsx", ...
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    # Mail: the addresses already sent to (a retry sends only to the others) and the last refusal.
    mailed_to: so.Mapped[list[str]] = so.mapped_column(sa.JSON, default=list)
    mail_reply: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    mail_attempts: so.Mapped[int] = so.mapped_column(default=0)
    requested_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    finished_at: so.Mapped[dt.datetime | None]

    site: so.Mapped[Site | None] = so.relationship()

    __table_args__ = (
        sa.CheckConstraint("period_end > period_start", name="period_positive"),
        sa.Index("ix_stored_reports_created", "created_at"),
    )
