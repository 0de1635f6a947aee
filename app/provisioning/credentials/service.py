"""Device credentials (SSH keys and passwords), encrypted at rest under keys of their own.

The keys come from VCOPS_CREDENTIAL_KEYS (Fernet keys, newest first) and never from the session secret; in
the embedded mode (no Redis, so every worker shares the instance folder) an empty setting means one key
generated once into INSTANCE_PATH/credential_keys. Every key listed decrypts; new secrets are encrypted
under the newest, and `vcops credentials rotate` re-encrypts every stored secret under it, after which
the older keys can be dropped.

A credential is assigned by a default per kind of equipment, with optional overrides for a site (and the
sites below it) or one device; `credential_for_endpoint()` and `credentials_for()` give the decrypted
login for the device layer and the job runner. Nothing here logs or returns a secret in a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask_babel import gettext as _

from app.auth import audit
from app.db import get_or_raise, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.provisioning.credentials.models import Credential, CredentialAssignment, CredentialKind, EquipmentKind
from app.sites.models import Bridge, Endpoint, HostKind, ManagedHost, Site

KEY_FILE = "credential_keys"
MAX_SECRET = 16_384
_NAME = re.compile(r"^[\w .@:/+-]{1,100}$")


class CredentialKeyError(RuntimeError):
    """The configured keys cannot be used, or none of them opens a stored secret."""


# ---------------------------------------------------------------- keys and encryption

def configured_keys(config: dict[str, Any]) -> list[str]:
    """The keys, newest first: from CREDENTIAL_KEYS, else (embedded mode only) the instance's key file."""
    raw = [k.strip() for k in str(config.get("CREDENTIAL_KEYS") or "").split(",") if k.strip()]
    if raw:
        return raw
    if config.get("REDIS_URL"):
        # Workers on other machines would each generate a key of their own and could not read each other's.
        raise CredentialKeyError("VCOPS_CREDENTIAL_KEYS must be set when the task queue runs on Redis "
                                 "(every web and worker process needs the same keys); "
                                 "`vcops credentials new-key` prints one.")
    return _instance_keys(Path(config["INSTANCE_PATH"]) / KEY_FILE)


def _instance_keys(path: Path) -> list[str]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made before, or by another process at the same moment
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise CredentialKeyError(f"{path} holds no key")
    return keys


class Vault:
    """Encrypts under the newest key, decrypts under any."""

    def __init__(self, keys: list[str]) -> None:
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                # Never echo the key itself: say which one, and what a key looks like.
                raise CredentialKeyError(f"credential key number {position} is not a Fernet key (32 url-safe "
                                         "base64-encoded bytes); `vcops credentials new-key` prints one") from None
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CredentialKeyError("no configured credential key opens this secret: was a key removed "
                                     "before `vcops credentials rotate` ran?") from None

    def rotate(self, token: str) -> str:
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialKeyError("no configured credential key opens this secret") from None

    def is_current(self, token: str) -> bool:
        """Whether the newest key alone opens the token (it needs no rotation)."""
        try:
            self._newest.decrypt(token.encode())
        except InvalidToken:
            return False
        return True


_vaults: dict[tuple[str, ...], Vault] = {}


def vault(config: dict[str, Any] | None = None) -> Vault:
    keys = tuple(configured_keys(dict(config if config is not None else current_app.config)))
    if keys not in _vaults:
        _vaults.clear()  # keep only the current set: a rotated-out key should not linger in memory
        _vaults[keys] = Vault(list(keys))
    return _vaults[keys]


# ---------------------------------------------------------------- the decrypted login

@dataclass(frozen=True)
class DeviceLogin:
    """A credential opened for one use. Its repr never shows the secret."""

    credential_id: int
    name: str
    kind: CredentialKind
    username: str
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)

    @property
    def secret(self) -> str:
        return self.private_key if self.kind is CredentialKind.SSH_KEY else self.password


def open_credential(credential: Credential) -> DeviceLogin:
    secret = vault().decrypt(credential.secret_encrypted)
    if credential.kind is CredentialKind.SSH_KEY:
        return DeviceLogin(credential.id, credential.name, credential.kind, credential.username, private_key=secret)
    return DeviceLogin(credential.id, credential.name, credential.kind, credential.username, password=secret)


# ---------------------------------------------------------------- credentials

def _check_fields(name: str, username: str, description: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not _NAME.match(name):
        problems["name"] = [_("A name of 1 to 100 letters, digits, spaces and . _ - @ : / +.")]
    if len(username) > 100 or any(c.isspace() for c in username):
        problems["username"] = [_("At most 100 characters, without spaces.")]
    if len(description) > 500:
        problems["description"] = [_("At most 500 characters.")]
    return problems


def _normalise_secret(kind: CredentialKind, secret: str) -> str:
    """The secret as it will be stored; a private key must be a usable key without a passphrase."""
    if not secret or len(secret) > MAX_SECRET:
        raise Invalid(_("The secret is missing or too long."), {"secret": [_("Required, at most 16384 characters.")]})
    if kind is CredentialKind.PASSWORD:
        if "\n" in secret or "\r" in secret:
            raise Invalid(_("A password cannot contain line breaks."), {"secret": [_("One line only.")]})
        return secret
    key = secret.replace("\r\n", "\n").strip() + "\n"  # OpenSSH refuses a key file without its final newline
    try:
        if "BEGIN OPENSSH PRIVATE KEY" in key:
            serialization.load_ssh_private_key(key.encode(), password=None)
        else:
            serialization.load_pem_private_key(key.encode(), password=None)
    except TypeError:
        raise Invalid(_("The private key is protected by a passphrase; store it without one."),
                      {"secret": [_("Passphrase-protected keys are not supported.")]}) from None
    except Exception:  # ValueError, UnsupportedAlgorithm: not a key we can use
        raise Invalid(_("The secret is not a private key in OpenSSH or PEM format."),
                      {"secret": [_("Paste the whole private key, from its BEGIN line to its END line.")]}) from None
    return key


def list_credentials(session: so.Session) -> list[Credential]:
    return list(session.scalars(sa.select(Credential).options(so.selectinload(Credential.assignments))
                                .order_by(Credential.name)))


def get_credential(session: so.Session, credential_id: int) -> Credential:
    return get_or_raise(session, Credential, credential_id, _("No credential with id %(id)s.", id=credential_id))


def create_credential(session: so.Session, name: str, kind: CredentialKind | str, username: str, secret: str,
                      description: str = "") -> Credential:
    name, username, description = name.strip(), username.strip(), description.strip()
    try:
        kind = CredentialKind(kind)
    except ValueError:
        raise Invalid(_("Unknown kind of credential."), {"kind": [_("ssh_key or password.")]}) from None
    problems = _check_fields(name, username, description)
    if problems:
        raise Invalid(_("The credential cannot be saved as it is."), problems)
    if session.scalar(sa.select(Credential.id).where(Credential.name == name)) is not None:
        raise Conflict(_("A credential named %(name)s exists already.", name=name), {"name": [_("Already taken.")]},
                       code="duplicate")
    credential = Credential(name=name, kind=kind, username=username, description=description,
                            secret_encrypted=vault().encrypt(_normalise_secret(kind, secret)))
    session.add(credential)
    session.flush()
    audit.record(session, "create", "Credential", str(credential.id), credential.name,
                 after={"name": name, "kind": kind.value, "username": username})
    return credential


def update_credential(session: so.Session, credential: Credential, name: str, username: str,
                      description: str = "") -> Credential:
    name, username, description = name.strip(), username.strip(), description.strip()
    problems = _check_fields(name, username, description)
    if problems:
        raise Invalid(_("The credential cannot be saved as it is."), problems)
    taken = session.scalar(sa.select(Credential.id).where(Credential.name == name, Credential.id != credential.id))
    if taken is not None:
        raise Conflict(_("A credential named %(name)s exists already.", name=name), {"name": [_("Already taken.")]},
                       code="duplicate")
    credential.name, credential.username, credential.description = name, username, description
    session.flush()
    audit.record(session, "update", "Credential", str(credential.id), credential.name,
                 after={"name": name, "username": username})
    return credential


def replace_secret(session: so.Session, credential: Credential, secret: str) -> Credential:
    """Store a new password or key for the credential (the device's own secret was changed)."""
    credential.secret_encrypted = vault().encrypt(_normalise_secret(credential.kind, secret))
    credential.rotated_at = utcnow()
    session.flush()
    audit.record(session, "rotate", "Credential", str(credential.id), credential.name)
    return credential


def delete_credential(session: so.Session, credential: Credential) -> None:
    """Delete the credential and its assignments; templates that used it fall back to the assignments."""
    audit.record(session, "delete", "Credential", str(credential.id), credential.name)
    session.delete(credential)
    session.flush()


def rotate_all(session: so.Session) -> tuple[int, int]:
    """Re-encrypt every secret under the newest key: (re-encrypted, already current)."""
    box = vault()
    done = current = 0
    for credential in session.scalars(sa.select(Credential).order_by(Credential.id).with_for_update()):
        if box.is_current(credential.secret_encrypted):
            current += 1
            continue
        credential.secret_encrypted = box.rotate(credential.secret_encrypted)
        done += 1
    session.flush()
    if done:
        audit.record(session, "rotate-keys", "Credential", summary=f"{done} secrets re-encrypted")
    return done, current


# ---------------------------------------------------------------- assignments

_HOST_KINDS = {HostKind.LINK_ROUTER: EquipmentKind.LINK_ROUTER, HostKind.MEDIA_SERVER: EquipmentKind.MEDIA_SERVER,
               HostKind.RECORDING_SERVER: EquipmentKind.RECORDING_SERVER}


def equipment_kind_of(device: Endpoint | Bridge | ManagedHost) -> EquipmentKind:
    if isinstance(device, Endpoint):
        return EquipmentKind.ENDPOINT
    if isinstance(device, Bridge):
        return EquipmentKind.BRIDGE
    return _HOST_KINDS[device.kind]


def _scope_key(kind: EquipmentKind, site_id: int | None = None, device_id: int | None = None) -> str:
    if device_id is not None:
        return f"{kind.value}/device/{device_id}"
    if site_id is not None:
        return f"{kind.value}/site/{site_id}"
    return kind.value


def assign_credential(session: so.Session, credential: Credential, kind: EquipmentKind | str,
                      site: Site | None = None, device: Endpoint | Bridge | ManagedHost | None = None
                      ) -> CredentialAssignment:
    """Assign the credential to a kind of equipment: everywhere, at a site (and below it), or on one device.
    An earlier assignment of the same scope is replaced."""
    try:
        kind = EquipmentKind(kind)
    except ValueError:
        raise Invalid(_("Unknown kind of equipment."), {"equipment_kind": [_("Not a kind of equipment.")]}) from None
    if site is not None and device is not None:
        raise Invalid(_("Assign to a site or to a device, not both."), {"site_id": [_("Leave one empty.")]})
    assignment = CredentialAssignment(credential_id=credential.id, equipment_kind=kind)
    if device is not None:
        if equipment_kind_of(device) is not kind:
            raise Invalid(_("The device is not of the kind chosen."), {"device_id": [_("Another kind of device.")]})
        if isinstance(device, Endpoint):
            assignment.endpoint_id = device.id
        elif isinstance(device, Bridge):
            assignment.bridge_id = device.id
        else:
            assignment.host_id = device.id
    elif site is not None:
        assignment.site_id = site.id
    assignment.scope_key = _scope_key(kind, site.id if site else None, device.id if device else None)
    previous = session.scalar(sa.select(CredentialAssignment)
                              .where(CredentialAssignment.scope_key == assignment.scope_key))
    if previous is not None:
        session.delete(previous)
        session.flush()
    session.add(assignment)
    session.flush()
    audit.record(session, "assign", "Credential", str(credential.id), credential.name,
                 after={"scope": assignment.scope_key})
    return assignment


def remove_assignment(session: so.Session, assignment: CredentialAssignment) -> None:
    audit.record(session, "unassign", "Credential", str(assignment.credential_id), assignment.scope_key)
    session.delete(assignment)
    session.flush()


def list_assignments(session: so.Session) -> list[CredentialAssignment]:
    return list(session.scalars(sa.select(CredentialAssignment)
                                .options(so.joinedload(CredentialAssignment.credential))
                                .order_by(CredentialAssignment.equipment_kind, CredentialAssignment.scope_key)))


class AssignmentResolver:
    """Finds the assigned credential of many devices with one query: device, then its site and the sites
    above it (nearest first), then the kind's default."""

    def __init__(self, session: so.Session) -> None:
        rows = session.execute(sa.select(CredentialAssignment.scope_key, CredentialAssignment.credential_id))
        self._by_scope: dict[str, int] = {scope: credential_id for scope, credential_id in rows}

    def credential_id(self, device: Endpoint | Bridge | ManagedHost) -> int | None:
        kind = equipment_kind_of(device)
        scopes = [_scope_key(kind, device_id=device.id)]
        site = device.site
        if site is not None:
            scopes += [_scope_key(kind, site_id=int(s)) for s in reversed(site.path.strip("/").split("/")) if s]
        scopes.append(_scope_key(kind))
        return next((self._by_scope[s] for s in scopes if s in self._by_scope), None)


def credentials_for(session: so.Session, credential_ids: Iterable[int]) -> dict[int, DeviceLogin]:
    """Open the given credentials (for one run or one device session)."""
    ids = sorted(set(credential_ids))
    if not ids:
        return {}
    found = session.scalars(sa.select(Credential).where(Credential.id.in_(ids)))
    return {c.id: open_credential(c) for c in found}


def credential_for_device(session: so.Session, device: Endpoint | Bridge | ManagedHost) -> DeviceLogin:
    """The decrypted login of a device; NotFound names the device when nothing is assigned to it."""
    credential_id = AssignmentResolver(session).credential_id(device)
    if credential_id is None:
        label = device.room_name if isinstance(device, Endpoint) else device.name
        raise NotFound(_("No credential is assigned to %(device)s; assign one on the credentials page.",
                         device=label), code="no_credential")
    return credentials_for(session, [credential_id])[credential_id]


def credential_for_endpoint(session: so.Session, endpoint: Endpoint) -> DeviceLogin:
    """The username and password or private key with which the device layer logs in to an endpoint."""
    return credential_for_device(session, endpoint)
