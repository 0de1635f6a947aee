"""Conference room: the conference a booked meeting has on its bridge, each attempt to make it so, and the
conferences found on a bridge that VCOps does not know.

One `Conference` per conference number, not per occurrence: a CMS coSpace (a Pexip VMR, a Janus room) is a
standing virtual room, so a series dials the same room every week, and the number and PIN the invitations
gave the sites (Meeting.conference_number, Meeting.pin) stay true for every occurrence. A series split in two
(a move of "this and following") keeps its number, so the two meetings share the one conference; `meeting_id`
is the first of them. The PIN is not copied here: the meeting holds it already, in clear, because the
invitations and the meeting page show it to the sites (a low-grade secret, like a room's door code); VCOps never
writes it to a log or to an attempt's record.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, stored_enum, utcnow
from app.meetings.models import Meeting
from app.sites.models import Bridge


class Desired(enum.StrEnum):
    PRESENT = "present"  # a holding occurrence is still to end
    ABSENT = "absent"  # cancelled, or its last occurrence ended


class ConferenceState(enum.StrEnum):
    PENDING = "pending"  # not made yet (waits for its first attempt, or for its lead time)
    READY = "ready"  # on the bridge as booked
    FAILED = "failed"  # the last attempt failed: retried at next_attempt_at
    DELETED = "deleted"  # gone from the bridge, as it should be


class Conference(Base):
    __tablename__ = "conferences"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    number: so.Mapped[str] = so.mapped_column(sa.String(20), unique=True)  # what the rooms dial
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id"), index=True)
    bridge_conference_id: so.Mapped[str] = so.mapped_column(sa.String(100), default="")  # the bridge's own id
    desired: so.Mapped[Desired] = so.mapped_column(stored_enum(Desired, "conference_desired"),
                                                   default=Desired.PRESENT)
    state: so.Mapped[ConferenceState] = so.mapped_column(stored_enum(ConferenceState, "conference_state"),
                                                         default=ConferenceState.PENDING)
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    failures: so.Mapped[int] = so.mapped_column(default=0)  # in a row, for the backoff
    last_error: so.Mapped[str] = so.mapped_column(sa.Text, default="")  # in the technician's words
    next_attempt_at: so.Mapped[dt.datetime | None] = so.mapped_column(index=True)
    # Held by the one sync talking to the bridge now; another finding it held leaves the conference alone.
    claimed_until: so.Mapped[dt.datetime | None]
    ready_at: so.Mapped[dt.datetime | None]
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    meeting: so.Mapped[Meeting] = so.relationship()
    bridge: so.Mapped[Bridge | None] = so.relationship()
    attempt_rows: so.Mapped[list[ConferenceAttempt]] = so.relationship(
        back_populates="conference", cascade="all, delete-orphan", order_by="ConferenceAttempt.id")


class ConferenceAttempt(Base):
    """One conversation with the bridge about one conference: what VCOps did and how it went."""

    __tablename__ = "conference_attempts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    conference_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("conferences.id", ondelete="CASCADE"),
                                                     index=True)
    at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    bridge_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("bridges.id"))
    action: so.Mapped[str] = so.mapped_column(sa.String(20))  # create / update / check / delete
    ok: so.Mapped[bool] = so.mapped_column(default=False)
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")

    conference: so.Mapped[Conference] = so.relationship(back_populates="attempt_rows")


class UnknownConference(Base):
    """A conference on a bridge that no booking explains (made by hand on the bridge, or left over): shown to the
    technicians, never deleted by VCOps."""

    __tablename__ = "unknown_conferences"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    bridge_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("bridges.id", ondelete="CASCADE"))
    bridge_conference_id: so.Mapped[str] = so.mapped_column(sa.String(100))
    name: so.Mapped[str] = so.mapped_column(sa.String(300), default="")
    number: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    first_seen_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    last_seen_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    bridge: so.Mapped[Bridge] = so.relationship()

    __table_args__ = (sa.UniqueConstraint("bridge_id", "bridge_conference_id",
                                          name="uq_unknown_conferences_bridge_conference"),)
