"""The firmware store: technicians upload software images, VCOps records their size and SHA-256, and the
firmware upgrade playbook hands the devices a download link signed for one image.

An upload streams into a temporary file beside the store, hashed chunk by chunk as the form parser writes it
(IncomingImage: never whole in memory, written once), up to FIRMWARE_MAX_MB; it is renamed to a generated
name only when it is whole and its fields are valid, and removed otherwise; a transaction that rolls back
removes the stored file again.
The signed link names the image and its checksum: a link to an image that was replaced or removed fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.auth.models import User
from app.db import get_or_raise
from app.errors import Conflict, Invalid, NotFound
from app.provisioning.firmware.models import FIRMWARE_FOLDER, FirmwareImage
from app.storage import drop_after_commit, written

CHUNK = 1024 * 1024
MB = 1024 * 1024
TOKEN_SALT = "firmware"  # noqa: S105 (a salt that separates these links from others, not a secret)
# Long enough for a night's upgrade window across the province, short enough that a leaked link dies.
TOKEN_MAX_AGE_SECONDS = 3 * 24 * 3600
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,79}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._\-]{0,79}$")


def folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / FIRMWARE_FOLDER


def image_path(image: FirmwareImage) -> Path:
    return folder() / image.storage_name


def list_images(session: so.Session) -> list[FirmwareImage]:
    return list(session.scalars(sa.select(FirmwareImage).options(so.joinedload(FirmwareImage.uploaded_by))
                                .order_by(FirmwareImage.vendor, FirmwareImage.model,
                                          FirmwareImage.uploaded_at.desc())))


def get_image(session: so.Session, image_id: int) -> FirmwareImage:
    return get_or_raise(session, FirmwareImage, image_id, _("There is no firmware image %(id)s.", id=image_id))


def clean_filename(name: str) -> str:
    """The uploader's name of the file without a path or control characters (devices may care about it)."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if c.isprintable() and c not in '"<>|*?:')
    return base.strip(" .")[:200] or "firmware.img"


def _check_fields(vendor: str, model: str, version: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not NAME.match(vendor):
        problems["vendor"] = [_("Letters, digits, spaces, dots, dashes or underscores; at most 80.")]
    if model and not NAME.match(model):
        problems["model"] = [_("Letters, digits, spaces, dots, dashes or underscores; at most 80.")]
    if not VERSION.match(version):
        problems["version"] = [_("A version such as ce11.14.2.3: letters, digits, dots, dashes; at most 80.")]
    return problems


def upload_limit() -> int:
    """The largest image accepted, in bytes (FIRMWARE_MAX_MB)."""
    return int(current_app.config["FIRMWARE_MAX_MB"]) * MB


def too_large_message() -> str:
    return _("The image is larger than %(limit)s MB.", limit=upload_limit() // MB)


class _HashingFile:
    """The file part as the form parser writes it: into the store's temporary file, hashed as it goes."""

    def __init__(self, incoming: IncomingImage, fh: IO[bytes]) -> None:
        self._incoming = incoming
        self._fh = fh

    def write(self, data: bytes) -> int:
        self._incoming.size += len(data)
        self._incoming.digest.update(data)
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class IncomingImage:
    """An image on its way into the store. `stream_factory` is Werkzeug's hook for where an uploaded file is
    written (Request._get_file_stream): the first file part goes to a temporary file in the store's folder,
    hashed chunk by chunk; store_upload() renames it into place; discard() removes it unless it was stored
    (call it whatever happened)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self._file: IO[bytes] | None = None
        self.stored = False

    def stream_factory(self, total_content_length: int | None, content_type: str | None, filename: str | None,
                       content_length: int | None = None) -> IO[bytes]:
        if self._file is not None:  # another file part than the image: kept aside, thrown away
            return tempfile.TemporaryFile()  # (Werkzeug closes it with the request)
        target = folder()
        target.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target, prefix=".upload-", suffix=".part")
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        return _HashingFile(self, self._file)  # type: ignore[return-value]

    def copy_from(self, stream: IO[bytes], limit: int) -> None:
        """Take the image from a stream (a script, a test), in chunks, stopping past `limit` bytes."""
        out = self.stream_factory(None, None, None)
        while chunk := stream.read(CHUNK):
            out.write(chunk)
            if self.size > limit:
                break

    def keep(self, target: Path) -> None:
        assert self._file is not None and self.path is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        os.replace(self.path, target)
        self.stored = True

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.path is not None and not self.stored:
            self.path.unlink(missing_ok=True)


def store_image(session: so.Session, stream: IO[bytes], filename: str, vendor: str, model: str, version: str,
                user: User | None, max_bytes: int | None = None) -> FirmwareImage:
    """Store an image read from a stream; see store_upload()."""
    incoming = IncomingImage()
    try:
        incoming.copy_from(stream, max_bytes or upload_limit())
        return store_upload(session, incoming, filename, vendor, model, version, user, max_bytes)
    finally:
        incoming.discard()


def store_upload(session: so.Session, incoming: IncomingImage, filename: str, vendor: str, model: str,
                 version: str, user: User | None, max_bytes: int | None = None) -> FirmwareImage:
    """Store an uploaded image with its size and SHA-256; Invalid for bad fields, an empty or too large file,
    Conflict when the vendor's model already has an image of that version. The caller discards `incoming`
    afterwards: nothing is left behind on refusal."""
    vendor, model, version = vendor.strip().lower(), model.strip(), version.strip()
    problems = _check_fields(vendor, model, version)
    if not filename or incoming.path is None:
        problems["file"] = [_("Choose the image file.")]
    if problems:
        raise Invalid(_("The firmware image cannot be stored as it is."), problems)
    clash = session.scalar(sa.select(FirmwareImage.id).where(
        FirmwareImage.vendor == vendor, FirmwareImage.model == model, FirmwareImage.version == version))
    if clash is not None:
        raise Conflict(_("An image of %(vendor)s %(model)s version %(version)s is stored already.",
                         vendor=vendor, model=model or "*", version=version),
                       {"version": [_("Already stored.")]}, code="duplicate")
    limit = max_bytes or upload_limit()
    if incoming.size > limit:
        raise Invalid(_("The image is larger than %(limit)s MB.", limit=limit // MB),
                      {"file": [_("too large")]}, code="file_too_large")
    if incoming.size == 0:
        raise Invalid(_("The image file is empty."), {"file": [_("empty")]}, code="file_empty")
    storage_name = f"{uuid.uuid4().hex}.img"
    target = folder() / storage_name
    incoming.keep(target)
    written(session, target)  # removed again if the transaction rolls back
    image = FirmwareImage(vendor=vendor, model=model, version=version, storage_name=storage_name,
                          size=incoming.size, filename=clean_filename(filename),
                          sha256=incoming.digest.hexdigest(), uploaded_by_id=user.id if user else None)
    session.add(image)
    session.flush()
    return image


def remove_image(session: so.Session, image: FirmwareImage) -> None:
    drop_after_commit(session, image_path(image))
    session.delete(image)
    session.flush()


# ---------------------------------------------------------------- the devices' download link

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


# The link names the image and the start of its checksum (64 bits: enough to tell a replaced image): devices
# take URLs of at most 255 characters (Cisco's SoftwareUpgrade URL), so the token stays short.
TOKEN_SHA256_CHARS = 16


def download_token(image: FirmwareImage) -> str:
    return _serializer().dumps([image.id, image.sha256[:TOKEN_SHA256_CHARS]])


def image_for_token(session: so.Session, token: str) -> FirmwareImage:
    """The image a signed link names; NotFound for a bad, expired or stale link (never says which)."""
    try:
        data = _serializer().loads(token, max_age=TOKEN_MAX_AGE_SECONDS)
    except (BadSignature, SignatureExpired):
        raise NotFound(_("This firmware link is not valid or has expired.")) from None
    if isinstance(data, dict):  # links signed before the token was shortened
        data = [data.get("id"), str(data.get("sha256") or "")[:TOKEN_SHA256_CHARS]]
    image = None
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], int) and isinstance(data[1], str):
        image = session.get(FirmwareImage, data[0])
    if image is None or len(data[1]) != TOKEN_SHA256_CHARS or image.sha256[:TOKEN_SHA256_CHARS] != data[1]:
        raise NotFound(_("This firmware link is not valid or has expired."))
    return image


PLAYBOOK = "firmware_upgrade.yml"  # the playbook whose launch form offers the images


def image_label(image: FirmwareImage) -> str:
    return f"{image.vendor} {image.model or '*'} {image.version} ({image.filename})"


def launch_vars(image: FirmwareImage, url: str) -> dict[str, Any]:
    """The extra variables firmware_upgrade.yml takes for this image (`url`: the signed download link)."""
    return {"firmware_url": url, "firmware_sha256": image.sha256, "firmware_version": image.version,
            "firmware_vendor": image.vendor, "firmware_model": image.model}
