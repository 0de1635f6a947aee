"""Shared layer: the checked file storage of uploads, for the domains that keep files beside their rows (agenda
documents, firmware images). It imports no domain; each domain says where its folder is and which row names
which file.

Checking (`store`): an upload is streamed into a temporary file beside its final place while its size is
counted and its SHA-256 computed; its kind is then read from the content (content sniffing: PDF, DOCX, XLSX,
PPTX, ODT — never the name or the browser's content type; a ZIP-based document is also unpacked, into
nothing, to check that it unpacks to at most MAX_UNPACKED_BYTES and is not compressed beyond any real
document: a ZIP bomb), and only an accepted file is renamed to a generated name, so nothing half-written is
ever visible. Downloads offer the name with `content_disposition`.

Files follow the transaction (`written`, `drop_after_commit`, whatever wrote the file): a file written for a
transaction that rolls back is removed, and a file whose last row was deleted is removed only after the commit.
`remove_orphan_files` sweeps what a crash left between the two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
import unicodedata
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.errors import Invalid

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
}
# Office Open XML: the part that makes the package a document of that kind, and the content type that
# [Content_Types].xml must give it (a macro-enabled or template variant declares another one).
OOXML_PARTS = {
    "docx": ("word/document.xml", b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"),
    "xlsx": ("xl/workbook.xml", b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
    "pptx": ("ppt/presentation.xml",
             b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"),
}
ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"

# Limits on what a ZIP-based document (DOCX, XLSX, PPTX, ODT) may hold inside. Every site's mail program and
# office suite unpacks an attached document whole: a 0.9 MB file that unpacks to 900 MB is a ZIP bomb mailed
# to the whole province. Real agendas, reports and spreadsheets unpack to a few tens of MB and compress their
# XML about 5 to 30 to 1; deflate cannot shrink data more than about 1032 to 1, so a member claiming more is
# lying. The members' sizes are summed as declared, then checked as they really unpack (a forged header).
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
MAX_DEFLATE_RATIO = 1100
# The whole archive's unpacked size over its size on disk; only above RATIO_FLOOR_BYTES unpacked, since a tiny
# document of repeated blank cells may compress far better without harming anyone.
MAX_ARCHIVE_RATIO = 100
RATIO_FLOOR_BYTES = 10 * 1024 * 1024
MAX_CONTENT_TYPES_BYTES = 1024 * 1024
CHUNK = 1024 * 1024
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class StoredFile:
    """An accepted upload, already in its final place under its generated name."""

    storage_name: str
    filename: str  # the uploader's name, sanitised, with the extension of what the content really is
    kind: str
    content_type: str
    size: int
    sha256: str


# ---------------------------------------------------------------- reading what a file is

def identify(path: Path, shown_name: str) -> str:
    """The kind of the file in `path` (pdf, docx, xlsx, pptx, odt), read from its content, or Invalid."""
    with path.open("rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _identify_zip(path, shown_name)
    raise Invalid(_refusal(head, shown_name), {"file": [_("not an accepted document type")]}, code="file_type")


def _refusal(head: bytes, name: str) -> str:
    """Say what the refused file looks like, so the uploader knows what went wrong."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"\x7fELF", b"MZ")) or head.startswith(b"#!"):
        return _("“%(name)s” is a program, not a document. Only PDF, DOCX, XLSX, PPTX and ODT files are accepted "
                 "(the type is read from the content, not the name).", name=name)
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")) or b"<html" in text:
        return _("“%(name)s” is a web page (HTML), not a document. Only PDF, DOCX, XLSX, PPTX and ODT files are "
                 "accepted (the type is read from the content, not the name).", name=name)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _("“%(name)s” is an old-format Office file (DOC, XLS or PPT). Save it as DOCX, XLSX, PPTX or PDF "
                 "and upload it again.", name=name)
    return _("“%(name)s” is not a PDF, DOCX, XLSX, PPTX or ODT document (the type is read from the content, "
             "not the name).", name=name)


def _zip_refused(message: str) -> Invalid:
    return Invalid(message, {"file": [_("not an accepted document type")]}, code="file_type")


def _identify_zip(path: Path, name: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_declared_sizes(members, name, path.stat().st_size)
            names = {m.filename for m in members}
            if members and members[0].filename == "mimetype":
                with archive.open(members[0]) as fh:
                    mimetype = fh.read(len(ODT_MIMETYPE) + 1).strip()
                if mimetype == ODT_MIMETYPE:
                    _check_real_sizes(archive, members, name)
                    return "odt"
            if "[Content_Types].xml" in names:
                with archive.open("[Content_Types].xml") as fh:
                    content_types = fh.read(MAX_CONTENT_TYPES_BYTES)
                if any(n.lower().endswith("vbaproject.bin") for n in names) or b"macroenabled" in content_types.lower():
                    raise _zip_refused(_("“%(name)s” contains macros. Save it as an ordinary DOCX, XLSX or PPTX "
                                         "(without macros) and upload it again.", name=name))
                for kind, (part, main_type) in OOXML_PARTS.items():
                    if part in names and main_type in content_types:
                        _check_real_sizes(archive, members, name)
                        return kind
    except Invalid:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        log.info("refused a damaged ZIP upload %r: %s", name, exc)
        raise _zip_refused(_("“%(name)s” looks like an Office document but is damaged and cannot be read.",
                             name=name)) from exc
    raise _zip_refused(_("“%(name)s” is a ZIP archive, not a DOCX, XLSX, PPTX or ODT document.", name=name))


def _bomb(name: str, members: int, unpacked: int) -> Invalid:
    return Invalid(_("“%(name)s” unpacks to %(megabytes)s MB (%(members)s parts); an office document may unpack "
                     "to at most %(limit)s MB, so it is refused as a possible ZIP bomb. Save it again (or as PDF) "
                     "and upload it again.", name=name, megabytes=unpacked // (1024 * 1024), members=members,
                     limit=MAX_UNPACKED_BYTES // (1024 * 1024)),
                   {"file": [_("unpacks to more than %(limit)s MB", limit=MAX_UNPACKED_BYTES // (1024 * 1024))]},
                   code="file_type")


def _check_declared_sizes(members: list[zipfile.ZipInfo], name: str, packed_size: int | None = None) -> None:
    """Refuse an archive whose members claim absurd sizes (a ZIP bomb, or a forged header) before reading any:
    the sum of the members' unpacked sizes over MAX_UNPACKED_BYTES, or the whole archive compressed more than
    MAX_ARCHIVE_RATIO to 1."""
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED_BYTES:
        raise _bomb(name, len(members), total)
    packed = packed_size if packed_size is not None else sum(m.compress_size for m in members)
    if total > RATIO_FLOOR_BYTES and total > MAX_ARCHIVE_RATIO * max(packed, 1):
        raise Invalid(_("“%(name)s” unpacks to %(megabytes)s MB from %(kilobytes)s KB, more than %(ratio)s times "
                        "its size, which no real office document does; it is refused as a possible ZIP bomb.",
                        name=name, megabytes=total // (1024 * 1024), kilobytes=max(packed // 1024, 1),
                        ratio=MAX_ARCHIVE_RATIO),
                      {"file": [_("compressed more than %(ratio)s to 1", ratio=MAX_ARCHIVE_RATIO)]},
                      code="file_type")
    absurd = len(members) > MAX_MEMBERS
    for member in members:
        if member.compress_type == zipfile.ZIP_STORED:
            absurd = absurd or member.file_size != member.compress_size
        elif member.compress_type == zipfile.ZIP_DEFLATED:
            absurd = absurd or member.file_size > MAX_DEFLATE_RATIO * max(member.compress_size, 1)
        else:
            raise _zip_refused(_("“%(name)s” uses a compression method that office documents do not use.",
                                 name=name))
    if absurd:
        raise _zip_refused(_("“%(name)s” declares absurd sizes inside (%(members)s parts, %(megabytes)s MB "
                             "unpacked); it is refused as a possible ZIP bomb.", name=name, members=len(members),
                             megabytes=total // (1024 * 1024)))


def _check_real_sizes(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], name: str) -> None:
    """Unpack every member (into nothing) and refuse the archive if they really hold more than allowed: the
    declared sizes are only the sender's word. zipfile stops each member at its declared size and checks its
    CRC there, so a member hiding more data than it declares fails as damaged; the count is the belt to those
    braces. At most MAX_UNPACKED_BYTES are unpacked, a fraction of a second."""
    total = 0
    for member in members:
        if member.is_dir():
            continue
        with archive.open(member) as fh:
            while chunk := fh.read(CHUNK):
                total += len(chunk)
                if total > MAX_UNPACKED_BYTES:
                    raise _bomb(name, len(members), total)


# ---------------------------------------------------------------- names

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|]+')
_SPACES = re.compile(r"\s+")


def _base_name(name: str) -> str:
    """The uploader's file name without any folder, control or reserved characters."""
    base = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    return _SPACES.sub(" ", _UNSAFE.sub("_", base)).strip(" ._")


def clean_filename(name: str, kind: str) -> str:
    """The name to show and to offer on download: no path, no control or reserved characters, the true extension."""
    base = _base_name(name)
    stem, dot, ext = base.rpartition(".")
    if not dot or ext.lower() not in CONTENT_TYPES:
        stem = base  # "Kế hoạch v2.1" keeps its whole name
    # A real PDF named .docx is offered as .pdf, so that the reader's computer opens it with the right program.
    stem = stem[:200].rstrip(" .") or "document"
    return f"{stem}.{kind}"


def _ascii_fallback(name: str) -> str:
    # Vietnamese đ/Đ have no decomposition; everything else loses its accents (Báo cáo → Bao cao).
    plain = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    plain = plain.encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r'[\x00-\x1f\x7f"\\%;]', "_", plain).strip()
    return plain if plain.strip(" ._") else "document" + Path(name).suffix.encode("ascii", "ignore").decode()


def content_disposition(filename: str) -> str:
    """`attachment` with the name as plain ASCII for old clients and exactly, in UTF-8, as RFC 6266 filename*."""
    return (f'attachment; filename="{_ascii_fallback(filename)}"; '
            f"filename*=UTF-8''{quote(filename, safe='!#$&+^`|~')}")


# ---------------------------------------------------------------- storing

def store(stream: IO[bytes], filename: str, folder: Path, max_bytes: int) -> StoredFile:
    """Check an upload and put it in `folder` under a generated name; refused uploads leave nothing behind."""
    shown = _base_name(filename)[:200] or "document"  # the name as the uploader knows it, for messages
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=PART_SUFFIX)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise Invalid(_("“%(name)s” is larger than %(limit)s MB.", name=shown,
                                    limit=max_bytes // (1024 * 1024)),
                                  {"file": [_("too large")]}, code="file_too_large")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise Invalid(_("“%(name)s” is empty.", name=shown), {"file": [_("empty")]}, code="file_empty")
        kind = identify(tmp, shown)
        storage_name = f"{uuid.uuid4().hex}.{kind}"
        os.replace(tmp, folder / storage_name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return StoredFile(storage_name=storage_name, filename=clean_filename(filename, kind), kind=kind,
                      content_type=CONTENT_TYPES[kind], size=size, sha256=digest.hexdigest())


# ---------------------------------------------------------------- files follow the transaction
#
# Why session hooks rather than the outbox: removing a file is a local, instant step that needs no retries
# and no worker, and the rollback side (a file written for rows that were never committed) can only be
# handled by the session anyway. A caller that drops a file checks, before the commit, that no other row
# uses it, and must make that hold after the commit too (by locking the row that owns the files). The one gap,
# a crash between the commit and the unlink (or between writing a file and committing its row), leaves an
# unreferenced file that nobody can reach; `remove_orphan_files` sweeps those.

_INFO_KEY = "vcops_stored_files"


def _files(session: so.Session) -> dict[str, Any]:
    _install(session)
    return session.info.setdefault(_INFO_KEY, {"written": [], "dropped": []})


def written(session: so.Session, path: Path) -> None:
    """A file was written for rows of this transaction: remove it if the transaction rolls back."""
    _files(session)["written"].append(path)


def drop_after_commit(session: so.Session, path: Path) -> None:
    """No row will use this file once the transaction commits: remove it then (keep it on rollback)."""
    _files(session)["dropped"].append(path)


def _after_commit(session: so.Session) -> None:
    files = session.info.pop(_INFO_KEY, None)
    for path in (files or {}).get("dropped", []):
        _unlink(path)


def _after_soft_rollback(session: so.Session, previous: so.SessionTransaction) -> None:
    if previous.parent is not None:
        return  # a savepoint: the outer transaction may still commit what was written before it
    files = session.info.pop(_INFO_KEY, None)
    for path in (files or {}).get("written", []):
        _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.exception("could not remove stored file %s", path)


def _install(session: so.Session) -> None:
    # Listeners on the session itself: only sessions that handled files pay for them.
    for name, fn in (("after_commit", _after_commit), ("after_soft_rollback", _after_soft_rollback)):
        if not sa.event.contains(session, name, fn):
            sa.event.listen(session, name, fn)


def remove_orphan_files(folder: Path, referenced: Iterable[str], older_than: dt.timedelta) -> list[str]:
    """Remove files (and interrupted uploads) that no row names, left by a crash; recent ones may be in flight."""
    keep = set(referenced)
    cutoff = dt.datetime.now(dt.UTC).timestamp() - older_than.total_seconds()
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep and path.stat().st_mtime < cutoff:
            _unlink(path)
            removed.append(path.name)
    return removed
