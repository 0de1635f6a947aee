"""A meeting's agenda: the draft the secretariat edits, the versions it published, and their documents.

Rows whose `version_id` is NULL are the draft; publishing copies them into rows of a new AgendaVersion,
which are never changed afterwards (what was sent to the sites stays readable as it was sent). A copy
keeps the `key` of the draft row it came from, so two versions can be compared item by item and
document by document. Documents of several versions share one stored file (the content never
changes; replacing a document uploads a new file under a new name).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from app.auth.audit import audited
from app.db import Base, utcnow
from app.meetings.models import Meeting

DOCUMENTS_FOLDER = "documents"  # under INSTANCE_PATH


@audited
class AgendaVersion(Base):
    """One publication of a meeting's agenda: number 1, 2, … and what changed since the one before."""

    __tablename__ = "agenda_versions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    number: so.Mapped[int]
    published_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    published_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # What changed, as data ({"kind": "item_added", ...}), so each reader sees it in their own language.
    changes: so.Mapped[list[dict[str, Any]]] = so.mapped_column(sa.JSON, default=list)
    # The same, as the text sent to the sites (in the interface's default language).
    note: so.Mapped[str] = so.mapped_column(sa.Text, default="")

    meeting: so.Mapped[Meeting] = so.relationship()
    items: so.Mapped[list[AgendaItem]] = so.relationship(
        back_populates="version", order_by="AgendaItem.position", passive_deletes=True)
    documents: so.Mapped[list[Document]] = so.relationship(
        back_populates="version", order_by="Document.id", passive_deletes=True)

    __table_args__ = (
        sa.UniqueConstraint("meeting_id", "number", name="uq_agenda_versions_meeting_number"),
        sa.CheckConstraint("number >= 1", name="number_positive"),
    )


@audited
class AgendaItem(Base):
    """A point of the agenda, in the draft (version_id NULL) or frozen in a published version."""

    __tablename__ = "agenda_items"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"))
    version_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("agenda_versions.id", ondelete="CASCADE"), index=True)
    key: so.Mapped[str] = so.mapped_column(sa.String(32))  # the same in the draft and in every copy
    position: so.Mapped[int]  # 1, 2, 3 … without gaps within the draft or a version
    title: so.Mapped[str] = so.mapped_column(sa.String(300))
    presenter: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    minutes: so.Mapped[int] = so.mapped_column(default=0)

    version: so.Mapped[AgendaVersion | None] = so.relationship(back_populates="items")
    documents: so.Mapped[list[Document]] = so.relationship(
        back_populates="item", order_by="Document.id", passive_deletes=True)

    __table_args__ = (
        sa.CheckConstraint("position >= 1", name="position_positive"),
        sa.CheckConstraint("minutes >= 0 AND minutes <= 600", name="minutes_range"),
        sa.Index("ix_agenda_items_meeting_version", "meeting_id", "version_id", "position"),
    )


@audited
class Document(Base):
    """A file attached to a meeting or to one of its agenda items; the content type was read from the content."""

    __tablename__ = "documents"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    meeting_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("meetings.id", ondelete="CASCADE"))
    version_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("agenda_versions.id", ondelete="CASCADE"), index=True)
    item_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("agenda_items.id", ondelete="CASCADE"), index=True)
    key: so.Mapped[str] = so.mapped_column(sa.String(32))  # kept when the document is replaced or published
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))  # the uploader's name, sanitised; never on disk
    kind: so.Mapped[str] = so.mapped_column(sa.String(8))  # pdf, docx, xlsx, pptx, odt
    content_type: so.Mapped[str] = so.mapped_column(sa.String(100))
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    storage_name: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)  # generated; file under documents/
    uploaded_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    meeting: so.Mapped[Meeting] = so.relationship()
    version: so.Mapped[AgendaVersion | None] = so.relationship(back_populates="documents")
    item: so.Mapped[AgendaItem | None] = so.relationship(back_populates="documents")

    __table_args__ = (
        sa.Index("ix_documents_meeting_version", "meeting_id", "version_id"),
        sa.CheckConstraint("size > 0", name="size_positive"),
    )

    @property
    def path(self) -> Path:
        return documents_folder() / self.storage_name

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def documents_folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / DOCUMENTS_FOLDER
