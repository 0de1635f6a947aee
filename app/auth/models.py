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
    # Raised to end every session of the user at once (logout, a new password, deactivation): a session carries
    # the number it was opened under (get_id below), and one with an older number is no longer logged in.
    session_version: so.Mapped[int] = so.mapped_column(default=0)
    # A password someone else chose or generated (the demo admin, an admin's reset): replaced at the next login.
    must_change_password: so.Mapped[bool] = so.mapped_column(default=False)
    # Two-factor sign-in: the TOTP secret as a Fernet token (app.auth.two_factor), never in clear; set at
    # enrolment, in use once confirmed (totp_enabled_at). The last time step used makes each code work once.
    totp_secret: so.Mapped[str | None] = so.mapped_column(sa.Text)
    totp_enabled_at: so.Mapped[dt.datetime | None]
    totp_last_step: so.Mapped[int | None]
    # The site whose subtree the user sees and changes (app.sites.scope); None: the whole tree.
    scope_site_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("sites.id"), index=True)

    # By name: sites sit above auth, which imports no other domain.
    site: so.Mapped[Site | None] = so.relationship("Site", foreign_keys=[site_id])
    scope_site: so.Mapped[Site | None] = so.relationship("Site", foreign_keys=[scope_site_id])

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
        # What the session stores: the id and the session version, so that raising the version ends the session.
        return f"{self.id}:{self.session_version}"

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


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app (a lost phone); only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    used_at: so.Mapped[dt.datetime | None]
