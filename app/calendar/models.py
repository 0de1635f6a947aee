"""Deliveries of invitations (one row per recipient and send-out) and the secret tokens of the ICS feeds."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow
from app.meetings.models import Meeting
from app.sites.models import Site


class DeliveryKind(enum.StrEnum):
    REQUEST = "request"  # an invitation or an update (METHOD:REQUEST)
    CANCEL = "cancel"  # a cancellation (METHOD:CANCEL)


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class Delivery(Base):
    """One mail to one contact of a participating site, as part of one send-out (a batch)."""

    __tablename__ = "deliveries"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    # One send-out (one outbox message): a retry of the queue finds its rows and sends only the unsent ones.
    batch: so.Mapped[str] = so.mapped_column(sa.String(32), index=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"))
    kind: so.Mapped[DeliveryKind] = so.mapped_column(stored_enum(DeliveryKind, "delivery_kind"))
    occurrence_ids: so.Mapped[list[int] | None] = so.mapped_column(sa.JSON)  # None: the whole meeting
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="SET NULL"), index=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254))
    name: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    technical: so.Mapped[bool] = so.mapped_column(default=False)  # also gets the setup (test call) time
    subject: so.Mapped[str] = so.mapped_column(sa.String(400), default="")
    status: so.Mapped[DeliveryStatus] = so.mapped_column(
        stored_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.QUEUED)
    reply: so.Mapped[str] = so.mapped_column(sa.Text, default="")  # the server's reply when it failed
    # A 5xx reply will not change on a retry (RFC 5321 4.2.1), so such a delivery is not tried again.
    permanent: so.Mapped[bool] = so.mapped_column(default=False)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    # Committed just before the end of the mail's data (the final "."), cleared when the server's reply is
    # recorded: a row still holding it in a later run was maybe delivered (app/calendar/invitations.py).
    handed_at: so.Mapped[dt.datetime | None]
    # What changed, as the send-out said it (shown in the mail): a resend writes the same mail again.
    note: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    last_attempt_at: so.Mapped[dt.datetime | None]
    sent_at: so.Mapped[dt.datetime | None]

    meeting: so.Mapped[Meeting] = so.relationship()
    site: so.Mapped[Site | None] = so.relationship()

    __table_args__ = (sa.Index("ix_deliveries_meeting_created", "meeting_id", "created_at"),)

    @property
    def pending(self) -> bool:
        return self.status is not DeliveryStatus.SENT and not self.permanent

    @property
    def failed_for_good(self) -> bool:
        """Given up (a 5xx, out of attempts, or maybe delivered by a worker that stopped): a person must resend."""
        return self.status is DeliveryStatus.FAILED and self.permanent

    @property
    def maybe_sent(self) -> bool:
        """Given up because a worker stopped between the end of the data and the server's reply."""
        return self.failed_for_good and self.handed_at is not None


@audited
class FeedToken(Base):
    """A revocable secret that opens the ICS feed of one site, or of the whole province (no site)."""

    __tablename__ = "feed_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    prefix: so.Mapped[str] = so.mapped_column(sa.String(16))  # shown in lists to tell tokens apart
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)  # SHA-256; the secret is shown once
    created_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[dt.datetime | None]

    site: so.Mapped[Site | None] = so.relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None
