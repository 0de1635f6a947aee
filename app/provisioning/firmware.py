"""The firmware store: technicians upload software images, VCOps records their size and SHA-256, and the
firmware upgrade playbook hands the devices a download link signed for one image.

An upload streams into a temporary file beside the store (hashing as it goes) and is renamed to a generated
name only when it is whole and its fields are valid; a transaction that rolls back removes the file again.
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
from app.errors import Conflict, Invalid, NotFound
from app.meetings.documents import drop_after_commit, written
from app.provisioning.firmware_models import FIRMWARE_FOLDER, FirmwareImage

CHUNK = 1024 * 1024
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
    image = session.get(FirmwareImage, image_id)
    if image is None:
        raise NotFound(_("There is no firmware image %(id)s.", id=image_id))
    return image


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


def store_image(session: so.Session, stream: IO[bytes], filename: str, vendor: str, model: str, version: str,
                user: User | None, max_bytes: int | None = None) -> FirmwareImage:
    """Store an uploaded image with its size and SHA-256; Invalid for bad fields, an empty or too large file,
    Conflict when the vendor's model already has an image of that version. Nothing is left behind on refusal."""
    vendor, model, version = vendor.strip().lower(), model.strip(), version.strip()
    problems = _check_fields(vendor, model, version)
    if not filename:
        problems["file"] = [_("Choose the image file.")]
    if problems:
        raise Invalid(_("The firmware image cannot be stored as it is."), problems)
    clash = session.scalar(sa.select(FirmwareImage.id).where(
        FirmwareImage.vendor == vendor, FirmwareImage.model == model, FirmwareImage.version == version))
    if clash is not None:
        raise Conflict(_("An image of %(vendor)s %(model)s version %(version)s is stored already.",
                         vendor=vendor, model=model or "*", version=version),
                       {"version": [_("Already stored.")]}, code="duplicate")
    limit = max_bytes or int(current_app.config.get("MAX_CONTENT_LENGTH") or 0) or 2**40
    target_folder = folder()
    target_folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target_folder, prefix=".upload-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise Invalid(_("The image is larger than %(limit)s MB.", limit=limit // (1024 * 1024)),
                                  {"file": [_("too large")]}, code="file_too_large")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise Invalid(_("The image file is empty."), {"file": [_("empty")]}, code="file_empty")
        storage_name = f"{uuid.uuid4().hex}.img"
        os.replace(tmp, target_folder / storage_name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    written(session, target_folder / storage_name)  # removed again if the transaction rolls back
    image = FirmwareImage(vendor=vendor, model=model, version=version, storage_name=storage_name, size=size,
                          filename=clean_filename(filename),
                          sha256=digest.hexdigest(), uploaded_by_id=user.id if user else None)
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


def download_token(image: FirmwareImage) -> str:
    return _serializer().dumps({"id": image.id, "sha256": image.sha256})


def image_for_token(session: so.Session, token: str) -> FirmwareImage:
    """The image a signed link names; NotFound for a bad, expired or stale link (never says which)."""
    try:
        data = _serializer().loads(token, max_age=TOKEN_MAX_AGE_SECONDS)
    except (BadSignature, SignatureExpired):
        raise NotFound(_("This firmware link is not valid or has expired.")) from None
    image = session.get(FirmwareImage, int(data.get("id", 0))) if isinstance(data, dict) else None
    if image is None or image.sha256 != data.get("sha256"):
        raise NotFound(_("This firmware link is not valid or has expired."))
    return image


def launch_vars(image: FirmwareImage, url: str) -> dict[str, Any]:
    """The extra variables firmware_upgrade.yml takes for this image (`url`: the signed download link)."""
    return {"firmware_url": url, "firmware_sha256": image.sha256, "firmware_version": image.version,
            "firmware_vendor": image.vendor, "firmware_model": image.model}
