"""Two-factor sign-in: TOTP (RFC 6238, pyotp) codes from an authenticator app, and one-time recovery codes.

The TOTP secret is stored as a Fernet token under the same keys as the device credentials (CREDENTIAL_KEYS, or in
the embedded mode the instance's credential_keys file): provisioning owns those keys but sits above auth, so the
few lines that find them are repeated here rather than imported upwards. A secret is re-encrypted under the
newest key at each use, so a rotated-out key stops mattering once everyone has logged in. Nothing here logs a
secret or a code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import pyotp
import segno
import sqlalchemy as sa
import sqlalchemy.orm as so
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from flask_babel import gettext as _

from app.auth import audit
from app.auth.models import RecoveryCode, Role, User
from app.db import utcnow
from app.errors import Conflict, Invalid

ISSUER = "VCOps"
RECOVERY_CODES = 10
KEY_FILE = "credential_keys"  # the file app.provisioning.credentials generates in the embedded mode
# One step either side: a phone whose clock is half a minute off still signs in.
VALID_WINDOW = 1


# ---------------------------------------------------------------- the secret, encrypted at rest

def _keys(config: dict[str, Any]) -> list[str]:
    raw = [k.strip() for k in str(config.get("CREDENTIAL_KEYS") or "").split(",") if k.strip()]
    if raw:
        return raw
    if config.get("REDIS_URL"):
        raise RuntimeError("VCOPS_CREDENTIAL_KEYS must be set when the task queue runs on Redis (it encrypts the "
                           "two-factor secrets too); `vcops credentials new-key` prints one.")
    path = Path(config["INSTANCE_PATH"]) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made before, by this domain or by provisioning
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in _keys(dict(current_app.config))])


def _open(user: User) -> str:
    try:
        return _fernet().decrypt((user.totp_secret or "").encode()).decode()
    except InvalidToken:
        raise RuntimeError(f"no configured credential key opens the two-factor secret of user {user.id}") from None


# ---------------------------------------------------------------- who needs it

def required_roles(config: dict[str, Any]) -> set[str]:
    return {r.strip() for r in str(config.get("TWO_FACTOR_REQUIRED_ROLES") or "").split(",") if r.strip()}


def must_enrol(user: User, config: dict[str, Any]) -> bool:
    """Whether the user's role needs a second factor that they have not set up yet."""
    return user.totp_enabled_at is None and Role(user.role).value in required_roles(config)


# ---------------------------------------------------------------- enrolment

def pending_secret(session: so.Session, user: User) -> str:
    """The secret being enrolled (made at the first visit of the page, kept until confirmed, so that reloading the
    page does not change the code the user has already scanned)."""
    if user.totp_enabled_at is not None:
        raise Conflict(_("Two-factor sign-in is already on."), code="enrolled")
    if not user.totp_secret:
        user.totp_secret = _fernet().encrypt(pyotp.random_base32().encode()).decode()
        session.flush()
    return _open(user)


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg_data_uri(uri: str) -> str:
    """The otpauth:// address as a QR code, an SVG data URI (the page's policy allows data: images only)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def confirm_enrolment(session: so.Session, user: User, code: str, now: dt.datetime | None = None) -> list[str]:
    """Turn two-factor sign-in on once the user proved their app shows the right codes; the new recovery codes
    are returned, once (only their hashes are kept)."""
    secret = pending_secret(session, user)
    step = _matching_step(secret, code, now or utcnow(), after=None)
    if step is None:
        raise Invalid(_("That code is not the one the app shows; check the phone's clock and try again."),
                      {"code": [_("wrong code")]})
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    audit.record(session, "2fa_enable", "User", str(user.id), user.email)
    return _new_recovery_codes(session, user)


def replace_recovery_codes(session: so.Session, user: User) -> list[str]:
    """Ten new one-time codes for a user who used or lost theirs; the older ones stop working."""
    if user.totp_enabled_at is None:
        raise Conflict(_("Two-factor sign-in is off."), code="not_enrolled")
    audit.record(session, "2fa_new_codes", "User", str(user.id), user.email)
    return _new_recovery_codes(session, user)


def _new_recovery_codes(session: so.Session, user: User) -> list[str]:
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_readable_code() for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(code)) for code in codes)
    session.flush()
    return codes


def turn_off(session: so.Session, user: User) -> None:
    """Forget the user's second factor (a lost phone and lost codes: an admin's or the console's decision)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record(session, "2fa_disable", "User", str(user.id), user.email)
    session.flush()


# ---------------------------------------------------------------- at login

def verify(session: so.Session, user: User, code: str, now: dt.datetime | None = None) -> bool:
    """Whether the code (from the app, or a recovery code) lets the user in; each code works once."""
    code = "".join(code.split())
    if user.totp_enabled_at is None:
        return False
    if code.isdigit() and len(code) == 6:
        secret = _open(user)
        step = _matching_step(secret, code, now or utcnow(), after=user.totp_last_step)
        if step is None:
            return False
        user.totp_last_step = step
        user.totp_secret = _fernet().rotate((user.totp_secret or "").encode()).decode()
        return True
    row = session.scalar(sa.select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _digest(code), RecoveryCode.used_at.is_(None))
        .with_for_update())
    if row is None:
        return False
    row.used_at = utcnow()
    left = session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None), RecoveryCode.id != row.id))
    audit.record(session, "recovery_code_use", "User", str(user.id), f"{user.email}: {left} left")
    return True


def recovery_codes_left(session: so.Session, user: User) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def _matching_step(secret: str, code: str, now: dt.datetime, after: int | None) -> int | None:
    """The time step whose code this is (within the window), if later than the last one used."""
    code = "".join(code.split())
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt


def _readable_code() -> str:
    # Two groups of five (about 49 bits): easy to read and to type, and too many to guess under the rate limit.
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _digest(code: str) -> str:
    # Recovery codes are random (50 bits): a fast hash suffices, as for API tokens.
    normalised = "".join(code.lower().split()).replace("-", "")
    return hashlib.sha256(normalised.encode()).hexdigest()
