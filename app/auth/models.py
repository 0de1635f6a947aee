"""Users with a role, and their API tokens (the audit log is app.auth.audit's)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.audit import audited
from app.db import Base, stored_enum, utcnow

if TYPE_CHECKING:
    from app.sites.models import Site


class Role(enum.StrEnum):
    ADMIN = "admin"
    SECRETARIAT = "secretariat"
    TECHNICIAN = "technician"
    OPERATOR = "operator"
    VIEWER = "viewer"
    SITE_STAFF = "site_staff"  # belongs to one site: confirms its attendance, reads its meetings' documents


@audited
class User(Base):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    role: so.Mapped[Role] = so.mapped_column(stored_enum(Role, "user_role"))
    site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)
    language: so.Mapped[str] = so.mapped_column(sa.String(8), default="")
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    last_login_at: so.Mapped[dt.datetime | None]

    # By name: sites sit above auth, which imports no other domain.
    site: so.Mapped[Site | None] = so.relationship("Site")

    __table_args__ = (
        sa.CheckConstraint("role <> 'site_staff' OR site_id IS NOT NULL", name="site_staff_has_site"),
    )

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


@audited
class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the secret is shown once."""

    __tablename__ = "api_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    prefix: so.Mapped[str] = so.mapped_column(sa.String(16))  # shown in lists to tell tokens apart
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[dt.datetime | None]

    user: so.Mapped[User] = so.relationship()
