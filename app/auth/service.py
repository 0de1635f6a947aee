"""Users, passwords (argon2) and API tokens (random secrets, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
import sqlalchemy.orm as so
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from app.auth import audit
from app.auth.models import ApiToken, Role, User
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.sites.models import Site

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "vco_"  # noqa: S105 - a marker that lets secret scanners spot leaked tokens
# Verifying against this keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid(f"Invalid email address: {exc}", {"email": [str(exc)]}) from exc


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
                      {"password": [f"at least {MIN_PASSWORD_LENGTH} characters"]})
    return _hasher.hash(password)


def create_user(session: so.Session, email: str, role: Role | str, password: str, name: str = "",
                site_code: str | None = None) -> User:
    email = normalise_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        raise Invalid(f"Unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}.",
                      {"role": ["unknown role"]}) from exc
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"A user with email {email} already exists.", {"email": ["already taken"]}, code="duplicate")
    site = None
    if role is Role.SITE_STAFF:
        if not site_code:
            raise Invalid("A site staff user must belong to a site.", {"site": ["required for site staff"]})
        site = session.scalar(sa.select(Site).where(Site.code == site_code))
        if site is None:
            raise NotFound(f"No site with code {site_code!r}.", {"site": ["no such site"]})
    user = User(email=email, role=role, name=name, password_hash=hash_password(password), site=site)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)


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
        raise NotFound(f"No API token {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def get_user(session: so.Session, email: str) -> User:
    user = session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No user with email {email}.")
    return user
