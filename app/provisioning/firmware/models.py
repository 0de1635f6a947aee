"""The firmware store: software images uploaded by technicians, with their SHA-256, for firmware_upgrade.yml.

The file lives under INSTANCE_PATH/firmware/ with a generated name; the row keeps what the uploader called it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.auth.models import User

FIRMWARE_FOLDER = "firmware"  # under INSTANCE_PATH


class FirmwareImage(Base):
    __tablename__ = "firmware_images"
    __table_args__ = (
        sa.UniqueConstraint("vendor", "model", "version"),
        sa.CheckConstraint("size > 0", name="firmware_size_positive"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    vendor: so.Mapped[str] = so.mapped_column(sa.String(40))
    model: so.Mapped[str] = so.mapped_column(sa.String(80))  # "" means every model of the vendor
    version: so.Mapped[str] = so.mapped_column(sa.String(80))
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))  # as uploaded
    storage_name: so.Mapped[str] = so.mapped_column(sa.String(80), unique=True)  # generated, in FIRMWARE_FOLDER
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    uploaded_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    uploaded_by: so.Mapped[User | None] = so.relationship()
