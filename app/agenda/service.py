"""A meeting's agenda: the secretariat edits a draft, publishes it as numbered versions, the sites hear what changed.

Plain functions on a session; the caller's commit point commits. Changes to the draft and publishing lock
the meeting's row, so two secretaries publishing at once get versions 1 and 2, never two 1s, and a
document being removed is never copied into a version at the same moment.

Who may read: staff whose role holds meetings.view (restricted meetings included), and site staff for the
meetings their site takes part in (the published agenda and its documents only). Documents also reach
the sites through signed, expiring links in the invitation, except a restricted meeting's, which need a
login.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import storage
from app.agenda.models import AgendaItem, AgendaVersion, Document, documents_folder
from app.auth.models import Role, User
from app.auth.permissions import role_can
from app.db import utcnow
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.meetings import signals
from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus, Participation
from app.meetings.queries import seen_from
from app.sites.scope import scope_of
from app.web.schemas import single_line_problem

ITEM_FIELDS = {"title": 300, "presenter": 200}
MAX_MINUTES = 600
SIGNED_LINK_SALT = "document"


class LinkExpired(DomainError):
    status = 410
    code = "link_expired"


@dataclass
class Upload:
    """A file as received: its bytes and the name the uploader gave it (used for display only)."""

    stream: IO[bytes]
    filename: str


# ---------------------------------------------------------------- who may read

def can_read(session: so.Session, user: User, meeting: Meeting) -> bool:
    """Staff with meetings.view read every meeting (that their scope sees); site staff those their site takes
    part in."""
    if not seen_from(session, scope_of(session, user), meeting):
        return False
    if user.role is Role.SITE_STAFF:
        if user.site_id is None:
            return False
        return bool(session.scalar(sa.select(sa.exists().where(
            Participation.site_id == user.site_id, Participation.occurrence_id == Occurrence.id,
            Occurrence.meeting_id == meeting.id))))
    return role_can(user.role, "meetings.view")


def can_edit(user: User) -> bool:
    return role_can(user.role, "meetings.book")


def readable_meeting(session: so.Session, user: User, meeting_id: int) -> Meeting:
    """The meeting, if this user may read it; otherwise 404, so that its existence is not revealed."""
    meeting = session.get(Meeting, meeting_id)
    if meeting is None or not can_read(session, user, meeting):
        raise NotFound(_("No meeting with id %(id)s.", id=meeting_id))
    return meeting


def readable_document(session: so.Session, user: User, meeting: Meeting, document_id: int) -> Document:
    """A document of a meeting the user may read; site staff reach only published ones."""
    document = session.get(Document, document_id)
    if document is None or document.meeting_id != meeting.id or (
            document.version_id is None and user.role is Role.SITE_STAFF):
        raise NotFound(_("No document with id %(id)s in this meeting.", id=document_id))
    return document


def _lock(session: so.Session, meeting: Meeting) -> None:
    # On PostgreSQL a row lock serialises agenda changes per meeting; SQLite writers are serialised already.
    session.execute(sa.select(Meeting.id).where(Meeting.id == meeting.id).with_for_update())


# ---------------------------------------------------------------- reading

def draft_items(session: so.Session, meeting: Meeting) -> list[AgendaItem]:
    return list(session.scalars(sa.select(AgendaItem).where(
        AgendaItem.meeting_id == meeting.id, AgendaItem.version_id.is_(None)).order_by(AgendaItem.position)))


def draft_documents(session: so.Session, meeting: Meeting) -> list[Document]:
    return _ordered(session.scalars(sa.select(Document).where(
        Document.meeting_id == meeting.id, Document.version_id.is_(None))))


def _ordered(docs: Any) -> list[Document]:
    # The meeting's own documents first, then each item's in agenda order.
    return sorted(docs, key=lambda d: (d.item.position if d.item else 0, d.id))


def versions(session: so.Session, meeting: Meeting) -> list[AgendaVersion]:
    return list(session.scalars(sa.select(AgendaVersion).where(AgendaVersion.meeting_id == meeting.id)
                                .order_by(AgendaVersion.number.desc())))


def latest_version(session: so.Session, meeting: Meeting) -> AgendaVersion | None:
    return session.scalar(sa.select(AgendaVersion).where(AgendaVersion.meeting_id == meeting.id)
                          .order_by(AgendaVersion.number.desc()).limit(1))


def get_version(session: so.Session, meeting: Meeting, number: int) -> AgendaVersion:
    version = session.scalar(sa.select(AgendaVersion).where(
        AgendaVersion.meeting_id == meeting.id, AgendaVersion.number == number))
    if version is None:
        raise NotFound(_("This meeting has no agenda version %(number)s.", number=number))
    return version


def version_documents(version: AgendaVersion) -> list[Document]:
    return _ordered(version.documents)


def current_items(session: so.Session, meeting: Meeting) -> list[AgendaItem]:
    """The items of the latest published version (what the sites were sent), in order."""
    version = latest_version(session, meeting)
    return list(version.items) if version else []


# The most one invitation carries as attachments, in bytes before base64 (which adds a third): every site's
# mail server must take the mail, and many refuse more than 10 to 25 MB. A larger agenda goes as signed links
# (signed_download_url), which every invitation lists anyway.
MAIL_ATTACHMENTS_MAX_BYTES = 10 * 1024 * 1024


def mail_split(session: so.Session, meeting: Meeting,
               max_bytes: int | None = None) -> tuple[list[Document], list[Document]]:
    """The latest published version's documents as (attached, linked only): in agenda order, each is attached
    while the attachments stay within `max_bytes`, and the others go as links (a smaller one further down may
    still be attached). A restricted meeting's are neither: its readers log in."""
    if meeting.classification is Classification.RESTRICTED:
        return [], []
    limit = MAIL_ATTACHMENTS_MAX_BYTES if max_bytes is None else max_bytes
    version = latest_version(session, meeting)
    attached: list[Document] = []
    linked: list[Document] = []
    total = 0
    for document in version_documents(version) if version else []:
        if total + document.size <= limit:
            attached.append(document)
            total += document.size
        else:
            linked.append(document)
    return attached, linked


def mail_documents(session: so.Session, meeting: Meeting) -> list[Document]:
    """The documents to attach to the invitation: the latest published version's, at most
    MAIL_ATTACHMENTS_MAX_BYTES of them together; none for a restricted meeting."""
    return mail_split(session, meeting)[0]


def linked_documents(session: so.Session, meeting: Meeting) -> list[Document]:
    """The published documents too large to attach: the invitation gives their signed links instead."""
    return mail_split(session, meeting)[1]


def get_draft_item(session: so.Session, meeting: Meeting, item_id: int) -> AgendaItem:
    item = session.get(AgendaItem, item_id)
    if item is None or item.meeting_id != meeting.id:
        raise NotFound(_("No agenda item with id %(id)s in this meeting.", id=item_id))
    if item.version_id is not None:
        raise Conflict(_("This item belongs to a published version, which cannot be changed; edit the draft."),
                       code="published")
    return item


def get_draft_document(session: so.Session, meeting: Meeting, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None or document.meeting_id != meeting.id:
        raise NotFound(_("No document with id %(id)s in this meeting.", id=document_id))
    if document.version_id is not None:
        raise Conflict(_("This document belongs to a published version, which cannot be changed; change the "
                         "draft's copy."), code="published")
    return document


# ---------------------------------------------------------------- the draft's items

def _item_values(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    unknown = set(data) - {"title", "presenter", "minutes"}
    if unknown:
        raise Invalid(_("Unknown field(s): %(names)s.", names=", ".join(sorted(unknown))),
                      {name: [_("unknown field")] for name in unknown})
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, limit in ITEM_FIELDS.items():
        if name in data:
            raw = str(data[name] or "")
            # One line, as every title and name (app.web.schemas): refused, not folded, so that what was
            # typed is what the sites receive.
            if problem := single_line_problem(raw):
                errors[name] = [problem]
                continue
            text = " ".join(raw.split())
            if len(text) > limit:
                errors[name] = [_("at most %(limit)s characters", limit=limit)]
            values[name] = text
    if ("title" in values or not partial) and not values.get("title") and "title" not in errors:
        errors["title"] = [_("required")]
    if "minutes" in data or not partial:
        minutes = data.get("minutes", 0)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_MINUTES:
            errors["minutes"] = [_("a whole number of minutes from 0 to %(max)s", max=MAX_MINUTES)]
        values["minutes"] = minutes
    if errors:
        raise Invalid(_("The agenda item is not valid: %(problems)s", problems="; ".join(
            f"{name}: {', '.join(problems)}" for name, problems in errors.items())), errors)
    return values


def add_item(session: so.Session, meeting: Meeting, data: Mapping[str, Any]) -> AgendaItem:
    """Add an item at the end of the draft agenda."""
    values = _item_values(data, partial=False)
    _lock(session, meeting)
    position = len(draft_items(session, meeting)) + 1
    values.setdefault("presenter", "")
    item = AgendaItem(meeting_id=meeting.id, version_id=None, key=uuid.uuid4().hex, position=position, **values)
    session.add(item)
    session.flush()
    return item


def update_item(session: so.Session, item: AgendaItem, data: Mapping[str, Any]) -> AgendaItem:
    values = _item_values(data, partial=True)
    _lock(session, session.get(Meeting, item.meeting_id))
    for name, value in values.items():
        setattr(item, name, value)
    session.flush()
    return item


def move_item(session: so.Session, item: AgendaItem, position: int) -> AgendaItem:
    """Put the item at `position` (1 = first, clamped to the list); the others close up, keeping 1, 2, 3 …"""
    meeting = session.get(Meeting, item.meeting_id)
    _lock(session, meeting)
    items = [i for i in draft_items(session, meeting) if i.id != item.id]
    items.insert(min(max(position, 1), len(items) + 1) - 1, item)
    _renumber(items)
    session.flush()
    return item


def remove_item(session: so.Session, item: AgendaItem) -> None:
    """Remove an item from the draft with its documents; published versions keep their copies."""
    meeting = session.get(Meeting, item.meeting_id)
    _lock(session, meeting)
    for document in list(item.documents):
        _delete_document(session, document)
    session.delete(item)
    session.flush()
    _renumber(draft_items(session, meeting))
    session.flush()


def _renumber(items: list[AgendaItem]) -> None:
    for position, item in enumerate(items, start=1):
        if item.position != position:
            item.position = position


# ---------------------------------------------------------------- the draft's documents

def _store(session: so.Session, upload: Upload) -> storage.StoredFile:
    max_mb = int(current_app.config["DOCUMENT_MAX_MB"])
    stored = storage.store(upload.stream, upload.filename, documents_folder(), max_mb * 1024 * 1024)
    storage.written(session, documents_folder() / stored.storage_name)
    return stored


def _file_columns(stored: storage.StoredFile) -> dict[str, Any]:
    return {"filename": stored.filename, "kind": stored.kind, "content_type": stored.content_type,
            "size": stored.size, "sha256": stored.sha256, "storage_name": stored.storage_name}


def add_document(session: so.Session, meeting: Meeting, upload: Upload, item: AgendaItem | None = None,
                 uploaded_by_id: int | None = None) -> Document:
    """Check and store an upload, attached to the meeting or to one of its draft items."""
    if item is not None and (item.meeting_id != meeting.id or item.version_id is not None):
        raise Invalid(_("Documents can be attached only to an item of this meeting's draft agenda."),
                      {"item_id": [_("not an item of the draft")]})
    _lock(session, meeting)
    stored = _store(session, upload)
    document = Document(meeting_id=meeting.id, version_id=None, item_id=item.id if item else None,
                        key=uuid.uuid4().hex, uploaded_by_id=uploaded_by_id, uploaded_at=utcnow(),
                        **_file_columns(stored))
    session.add(document)
    session.flush()
    return document


def replace_document(session: so.Session, document: Document, upload: Upload,
                     uploaded_by_id: int | None = None) -> Document:
    """Put a new file in the draft document's place; the next version reports it as replaced."""
    _lock(session, document.meeting)
    stored = _store(session, upload)
    old_path = document.path
    old_name = document.storage_name
    for name, value in _file_columns(stored).items():
        setattr(document, name, value)
    document.uploaded_by_id = uploaded_by_id
    document.uploaded_at = utcnow()
    session.flush()
    _drop_file_if_unused(session, old_name, old_path)
    return document


def remove_document(session: so.Session, document: Document) -> None:
    _lock(session, document.meeting)
    _delete_document(session, document)


def _delete_document(session: so.Session, document: Document) -> None:
    name, path = document.storage_name, document.path
    session.delete(document)
    session.flush()
    _drop_file_if_unused(session, name, path)


def _drop_file_if_unused(session: so.Session, storage_name: str, path: Path) -> None:
    # Published versions share the draft's files: the file goes only with the last row that names it. The
    # caller holds the meeting's row lock, so "no other row uses this file" still holds after the commit.
    still_used = session.scalar(sa.select(sa.exists().where(Document.storage_name == storage_name)))
    if not still_used:
        storage.drop_after_commit(session, path)


# ---------------------------------------------------------------- publishing

def _item_snapshot(items: list[AgendaItem]) -> list[dict[str, Any]]:
    return [{"key": i.key, "title": i.title, "presenter": i.presenter, "minutes": i.minutes} for i in items]


def _document_snapshot(docs: list[Document]) -> list[dict[str, Any]]:
    return [{"key": d.key, "filename": d.filename, "sha256": d.sha256,
             "item": d.item.title if d.item else None, "item_key": d.item.key if d.item else None} for d in docs]


def _stay_in_order(ranks: list[int]) -> set[int]:
    """Indexes of a longest increasing run of `ranks`: the items that kept their order; the rest moved."""
    if not ranks:
        return set()
    best = [1] * len(ranks)
    previous = [-1] * len(ranks)
    for i in range(len(ranks)):
        for j in range(i):
            if ranks[j] < ranks[i] and best[j] + 1 > best[i]:
                best[i], previous[i] = best[j] + 1, j
    i = max(range(len(ranks)), key=best.__getitem__)
    kept = set()
    while i != -1:
        kept.add(i)
        i = previous[i]
    return kept


def compare(old_items: list[dict[str, Any]] | None, old_docs: list[dict[str, Any]] | None,
            new_items: list[dict[str, Any]], new_docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What changed between two snapshots, as data: items added, removed, renamed, retimed, moved; documents
    added, replaced, removed. Two snapshots that are the same give []."""
    if old_items is None or old_docs is None:
        return [{"kind": "first", "items": len(new_items), "documents": len(new_docs)}]
    changes: list[dict[str, Any]] = []
    old_by_key = {i["key"]: (pos, i) for pos, i in enumerate(old_items, start=1)}
    new_keys = {i["key"] for i in new_items}
    for item in old_items:
        if item["key"] not in new_keys:
            changes.append({"kind": "item_removed", "title": item["title"]})
    survivors = []
    for position, item in enumerate(new_items, start=1):
        old = old_by_key.get(item["key"])
        if old is None:
            changes.append({"kind": "item_added", "position": position, "title": item["title"],
                            "presenter": item["presenter"], "minutes": item["minutes"]})
            continue
        survivors.append((position, item, old[0]))
        before = old[1]
        if before["title"] != item["title"]:
            changes.append({"kind": "item_renamed", "old": before["title"], "new": item["title"]})
        if before["minutes"] != item["minutes"]:
            changes.append({"kind": "item_retimed", "title": item["title"], "old": before["minutes"],
                            "new": item["minutes"]})
        if before["presenter"] != item["presenter"]:
            changes.append({"kind": "item_presenter", "title": item["title"], "old": before["presenter"],
                            "new": item["presenter"]})
    kept = _stay_in_order([old_position for _, _, old_position in survivors])
    for index, (position, item, _old_position) in enumerate(survivors):
        if index not in kept:
            changes.append({"kind": "item_moved", "title": item["title"], "position": position})
    old_docs_by_key = {d["key"]: d for d in old_docs}
    new_doc_keys = {d["key"] for d in new_docs}
    for doc in new_docs:
        before = old_docs_by_key.get(doc["key"])
        if before is None:
            changes.append({"kind": "document_added", "filename": doc["filename"], "item": doc["item"]})
        elif before["sha256"] != doc["sha256"] or before["filename"] != doc["filename"]:
            changes.append({"kind": "document_replaced", "filename": doc["filename"], "old": before["filename"]})
    for doc in old_docs:
        if doc["key"] not in new_doc_keys:
            changes.append({"kind": "document_removed", "filename": doc["filename"]})
    return changes


def change_text(change: Mapping[str, Any]) -> str:
    """One change as a sentence in the current language."""
    kind = change["kind"]
    if kind == "first":
        text = ngettext("First agenda: %(num)d item.", "First agenda: %(num)d items.", change["items"])
        if change["documents"]:
            text += " " + ngettext("%(num)d document attached.", "%(num)d documents attached.", change["documents"])
        return text
    if kind == "item_added":
        if change["presenter"]:
            return _("Item %(position)s added: “%(title)s”, %(minutes)s min, presented by %(presenter)s.",
                     position=change["position"], title=change["title"], minutes=change["minutes"],
                     presenter=change["presenter"])
        return _("Item %(position)s added: “%(title)s”, %(minutes)s min.", position=change["position"],
                 title=change["title"], minutes=change["minutes"])
    if kind == "item_removed":
        return _("Item removed: “%(title)s”.", title=change["title"])
    if kind == "item_renamed":
        return _("Item “%(old)s” renamed to “%(new)s”.", old=change["old"], new=change["new"])
    if kind == "item_retimed":
        return _("Item “%(title)s” now takes %(new)s min instead of %(old)s min.", title=change["title"],
                 new=change["new"], old=change["old"])
    if kind == "item_presenter":
        return _("Item “%(title)s” is now presented by %(new)s (before: %(old)s).", title=change["title"],
                 new=change["new"] or "—", old=change["old"] or "—")
    if kind == "item_moved":
        return _("Item “%(title)s” moved to position %(position)s.", title=change["title"],
                 position=change["position"])
    if kind == "document_added":
        if change["item"]:
            return _("Document added to item “%(item)s”: “%(filename)s”.", item=change["item"],
                     filename=change["filename"])
        return _("Document added: “%(filename)s”.", filename=change["filename"])
    if kind == "document_replaced":
        if change["old"] != change["filename"]:
            return _("Document “%(old)s” replaced by “%(filename)s”.", old=change["old"], filename=change["filename"])
        return _("Document replaced by a new file: “%(filename)s”.", filename=change["filename"])
    if kind == "document_removed":
        return _("Document removed: “%(filename)s”.", filename=change["filename"])
    return kind


def _note(number: int, changes: list[dict[str, Any]]) -> str:
    # The sites read the note in the invitation mail, so it is written in the interface's default language.
    with force_locale(current_app.config["DEFAULT_LANGUAGE"]):
        lines = [_("Agenda version %(number)s. What changed:", number=number)]
        lines += [f"- {change_text(change)}" for change in changes]
    return "\n".join(lines)


def _draft_snapshot(session: so.Session, meeting: Meeting) -> tuple[list[AgendaItem], list[Document]]:
    return draft_items(session, meeting), draft_documents(session, meeting)


def pending_changes(session: so.Session, meeting: Meeting) -> list[dict[str, Any]]:
    """What publishing now would report (shown before the secretariat publishes)."""
    items, docs = _draft_snapshot(session, meeting)
    latest = latest_version(session, meeting)
    if latest is None:
        return compare(None, None, _item_snapshot(items), _document_snapshot(docs)) if items or docs else []
    return compare(_item_snapshot(latest.items), _document_snapshot(version_documents(latest)),
                   _item_snapshot(items), _document_snapshot(docs))


def publish(session: so.Session, meeting: Meeting, published_by_id: int | None = None) -> AgendaVersion:
    """Freeze the draft as the next version and tell the sites what changed since the previous one."""
    _lock(session, meeting)
    statuses = {o.status for o in meeting.occurrences}
    if not statuses & {OccurrenceStatus.DRAFT, OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS}:
        raise Conflict(_("This meeting is over or cancelled; its agenda can no longer be published."), code="closed")
    items, docs = _draft_snapshot(session, meeting)
    latest = latest_version(session, meeting)
    if latest is None and not items and not docs:
        raise Invalid(_("The agenda is empty: add an item or a document before publishing."), code="empty")
    changes = pending_changes(session, meeting)
    if not changes:
        raise Conflict(_("Nothing has changed since version %(number)s was published; change the agenda or its "
                         "documents first.", number=latest.number if latest else 0), code="unchanged")
    number = (latest.number if latest else 0) + 1
    version = AgendaVersion(meeting_id=meeting.id, number=number, published_at=utcnow(),
                            published_by_id=published_by_id, changes=changes, note=_note(number, changes))
    session.add(version)
    session.flush()
    copies: dict[int, AgendaItem] = {}
    for item in items:
        copies[item.id] = AgendaItem(meeting_id=meeting.id, version_id=version.id, key=item.key,
                                     position=item.position, title=item.title, presenter=item.presenter,
                                     minutes=item.minutes)
        session.add(copies[item.id])
    session.flush()
    for doc in docs:
        session.add(Document(
            meeting_id=meeting.id, version_id=version.id, item_id=copies[doc.item_id].id if doc.item_id else None,
            key=doc.key, filename=doc.filename, kind=doc.kind, content_type=doc.content_type, size=doc.size,
            sha256=doc.sha256, storage_name=doc.storage_name, uploaded_by_id=doc.uploaded_by_id,
            uploaded_at=doc.uploaded_at))
    session.flush()
    session.expire(version, ["items", "documents"])
    if OccurrenceStatus.SCHEDULED in statuses or OccurrenceStatus.IN_PROGRESS in statuses:
        # A meeting still in draft sends nothing now; its invitations will carry the latest version.
        _notify(session, meeting, version.note)
    return version


def _notify(session: so.Session, meeting: Meeting, note: str) -> None:
    # The whole series: every site gets the new agenda (and the invite's SEQUENCE is raised for it).
    signals.notify_sites(session, meeting, "request", None, note=note)


# ---------------------------------------------------------------- signed links

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SIGNED_LINK_SALT)


def signed_download_url(document: Document) -> str:
    """An absolute link (BASE_URL) that downloads this document without a login until SIGNED_LINK_DAYS pass.

    The token names the document and the start of its SHA-256, so it serves only the content it was made for.
    """
    token = _serializer().dumps({"d": document.id, "h": document.sha256[:16]})
    base = urlsplit(current_app.config["BASE_URL"])
    # Built without a request (the mail is written by a worker): bind the URL map to BASE_URL itself.
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build("agenda.signed_download", {"token": token}, force_external=True)


def document_for_token(session: so.Session, token: str) -> Document:
    """The document a signed link names, if the signature holds and the link has not expired."""
    max_age = int(current_app.config["SIGNED_LINK_DAYS"]) * 24 * 3600
    try:
        payload = _serializer().loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise LinkExpired(_("This link has expired. Log in to VCOps to read the document, or ask the secretariat "
                            "for a new invitation.")) from exc
    except BadSignature as exc:
        raise NotFound(_("This link is not valid; check that it was copied whole.")) from exc
    document = session.get(Document, payload.get("d")) if isinstance(payload, dict) else None
    if document is None or not document.sha256.startswith(str(payload.get("h"))):
        raise NotFound(_("This document no longer exists."))
    return document


def sweep_orphan_files(session: so.Session, older_than: dt.timedelta = dt.timedelta(hours=1)) -> list[str]:
    """Remove document files that no row names (left by a crash between writing and committing); for a
    periodic task."""
    names = session.scalars(sa.select(Document.storage_name).distinct())
    return storage.remove_orphan_files(documents_folder(), names, older_than)
