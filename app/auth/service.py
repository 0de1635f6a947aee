"""Users, passwords (argon2) and API tokens (random secrets, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from app.auth import audit
from app.auth.models import ApiToken, Role, User
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "vco_"  # noqa: S105 - a marker that lets secret scanners spot leaked tokens
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        # The reason comes from email_validator, in English only.
        raise Invalid(_("Invalid email address: %(reason)s", reason=str(exc)), {"email": [str(exc)]}) from exc


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(_("The password must have at least %(n)s characters.", n=MIN_PASSWORD_LENGTH),
                      {"password": [_("at least %(n)s characters", n=MIN_PASSWORD_LENGTH)]})
    return _hasher.hash(password)


def create_user(session: so.Session, email: str, role: Role | str, password: str, name: str = "",
                site_code: str | None = None, *, must_change_password: bool = False) -> User:
    """A new user; `must_change_password` when the password was generated or chosen by someone else (they set
    their own at the first login)."""
    email = normalise_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        raise Invalid(_("Unknown role '%(role)s'; choose one of %(roles)s.", role=role,
                        roles=", ".join(r.value for r in Role)), {"role": [_("unknown role")]}) from exc
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict(_("A user with email %(email)s already exists.", email=email), {"email": [_("already taken")]},
                       code="duplicate")
    site = None
    if role is Role.SITE_STAFF:
        if not site_code:
            raise Invalid(_("A site staff user must belong to a site."), {"site": [_("required for site staff")]})
        site = session.scalar(sa.select(_site_model()).where(_site_model().code == site_code))
        if site is None:
            raise NotFound(_("No site with code '%(code)s'.", code=site_code), {"site": [_("no such site")]})
    user = User(email=email, role=role, name=name, password_hash=hash_password(password), site=site,
                must_change_password=must_change_password)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)


def generated_password() -> str:
    """A password for someone to replace at their first login (the demo admin, a user made without one)."""
    return secrets.token_urlsafe(12)


def end_sessions(session: so.Session, user: User, reason: str) -> None:
    """End every session of the user, on every browser: each carries the version it was opened under, and
    app.auth.access logs out one whose version is older. API tokens are not sessions and keep working."""
    user.session_version = (user.session_version or 0) + 1
    audit.record(session, "sessions_end", "User", str(user.id), f"{user.email}: {reason}")


def authenticate(session: so.Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (without telling which was wrong)."""
    try:
        email = normalise_email(email)
    except Invalid:
        return None
    user = session.scalar(sa.select(User).where(User.email == email))
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: so.Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new token and its secret; the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, prefix=secret[: len(TOKEN_PREFIX) + 6], token_hash=_digest(secret))
    session.add(token)
    session.flush()
    audit.record(session, "token_create", "ApiToken", str(token.id), f"{user.email} {token.prefix}…")
    return token, secret


def user_for_token(session: so.Session, secret: str) -> User | None:
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    return token.user


def revoke_token(session: so.Session, token_id: int, owner: User | None = None) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound(_("No API token %(id)s.", id=token_id))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def get_user(session: so.Session, email: str) -> User:
    user = session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(_("No user with email %(email)s.", email=email))
    return user


# ---------------------------------------------------------------- users admin and own account


@dataclass(frozen=True)
class UserFilter:
    q: str = ""  # part of the email or the name
    role: str = ""


def user_query(f: UserFilter) -> sa.Select[tuple[User]]:
    stmt = sa.select(User).order_by(User.email)
    if f.q.strip():
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(User.email.ilike(like), User.name.ilike(like)))
    if f.role:
        try:
            stmt = stmt.where(User.role == Role(f.role))
        except ValueError as exc:
            raise Invalid(_("Unknown role %(role)s.", role=f.role), {"role": [_("unknown role")]}) from exc
    return stmt


def get_user_by_id(session: so.Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(_("No user with id %(id)s.", id=user_id))
    return user


def _site_model() -> Any:
    """The model a user's site is (app.sites.models.Site), reached through the relationship: sites sit above
    auth, which imports no other domain."""
    return sa.inspect(User).relationships["site"].mapper.class_


def _site_by_code(session: so.Session, site_code: str) -> Any:
    site_model = _site_model()
    site = session.scalar(sa.select(site_model).where(site_model.code == site_code.strip()))
    if site is None:
        raise Invalid(_("No site with code %(code)s.", code=site_code), {"site": [_("no such site")]})
    return site


def scope_choices(session: so.Session) -> list[tuple[str, str]]:
    """The sites a user can be confined to (by code), highest first; "" is the whole tree."""
    site_model = _site_model()
    sites = session.scalars(sa.select(site_model).order_by(site_model.path))
    return [("", _("The whole tree")), *((s.code, f"{s.code} · {s.name}") for s in sites)]


def set_scope(session: so.Session, user: User, site_code: str | None) -> User:
    """Confine the user to a site's subtree (app.sites.scope), or give them the whole tree (empty); audited with
    the user's other changes."""
    site = _site_by_code(session, site_code) if site_code and site_code.strip() else None
    user.scope_site_id = site.id if site is not None else None
    session.flush()
    return user


def update_user(session: so.Session, user: User, *, name: str, role: Role | str, site_code: str | None,
                active: bool, by: User | None) -> User:
    """Change a user's name, role, site and active flag, as `by` (None: the command line).

    An admin may not demote or deactivate themself (they would lock themselves out mid-session), and
    the last active admin may not be demoted or deactivated by anyone (nobody could manage users).
    """
    try:
        role = Role(role)
    except ValueError as exc:
        raise Invalid(_("Unknown role %(role)s.", role=role), {"role": [_("unknown role")]}) from exc
    site = _site_by_code(session, site_code) if site_code and site_code.strip() else None
    if role is Role.SITE_STAFF and site is None:
        raise Invalid(_("A site staff user must belong to a site."), {"site": [_("required for site staff")]})
    deactivated = user.active and not active
    loses_admin = user.role is Role.ADMIN and user.active and (role is not Role.ADMIN or not active)
    if loses_admin and by is not None and by.id == user.id:
        fields = {}
        if role is not Role.ADMIN:
            fields["role"] = [_("you cannot demote yourself")]
        if not active:
            fields["active"] = [_("you cannot deactivate yourself")]
        raise Invalid(_("You cannot demote or deactivate yourself; ask another admin."), fields, code="self")
    if loses_admin:
        # Lock the active admins' rows so that two admins demoting each other at once cannot both succeed.
        others = session.scalars(sa.select(User.id).where(
            User.role == Role.ADMIN, User.active.is_(True), User.id != user.id).with_for_update()).all()
        if not others:
            raise Conflict(_("%(email)s is the last active admin; make another user admin first.",
                             email=user.email),
                           {"role" if role is not Role.ADMIN else "active": [_("last active admin")]},
                           code="last_admin")
    user.name = name.strip()
    user.role = role
    user.site = site
    user.active = active
    if deactivated:
        end_sessions(session, user, "deactivated")
    session.flush()
    return user


def change_own_password(session: so.Session, user: User, current: str, new: str) -> None:
    """A user changes their own password; the current one proves it is them at the keyboard."""
    try:
        _hasher.verify(user.password_hash or _DUMMY_HASH, current)
    except (VerificationError, InvalidHashError) as exc:
        raise Invalid(_("The current password is wrong."),
                      {"current_password": [_("wrong password")]}) from exc
    _set_password_recorded(session, user, new, "password_change", "new_password")
    user.must_change_password = False
    # Whoever else held a session (a copied cookie, a forgotten browser) is logged out; the caller re-stamps
    # the session of the user at the keyboard.
    end_sessions(session, user, "password_change")


def replace_given_password(session: so.Session, user: User, new: str) -> None:
    """A user told to choose their own password (theirs was generated or set by an admin) does so; the one they
    were given is refused, since someone else knows it."""
    try:
        _hasher.verify(user.password_hash or _DUMMY_HASH, new)
    except (VerificationError, InvalidHashError):
        pass
    else:
        raise Invalid(_("Choose a password other than the one you were given."),
                      {"new_password": [_("the same as the given password")]})
    _set_password_recorded(session, user, new, "password_change", "new_password")
    user.must_change_password = False
    end_sessions(session, user, "password_change")


def reset_password(session: so.Session, user: User, new: str) -> None:
    """An admin sets a new password for a user (who forgot theirs): the user's sessions end, and they choose a
    password of their own at the next login (the admin knows this one)."""
    _set_password_recorded(session, user, new, "password_reset", "password")
    user.must_change_password = True
    end_sessions(session, user, "password_reset")


def _set_password_recorded(session: so.Session, user: User, new: str, action: str, field: str) -> None:
    if len(new) < MIN_PASSWORD_LENGTH:
        raise Invalid(_("The password must have at least %(n)s characters.", n=MIN_PASSWORD_LENGTH),
                      {field: [_("at least %(n)s characters", n=MIN_PASSWORD_LENGTH)]})
    set_password(user, new)
    # The hash is never logged, so the change would leave no trace without this entry.
    audit.record(session, action, "User", str(user.id), user.email)


def tokens_of(session: so.Session, user: User) -> list[ApiToken]:
    return list(session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc(),
                                                                         ApiToken.id.desc())))
