"""The agenda's and documents' JSON API: /api/v1/meetings/<id>/agenda and /api/v1/meetings/<id>/documents.

Thin views, as in app.sites.api: the schemas below parse, app.agenda.service does the work, the request's
commit point commits, errors come in the one format. Changes need meetings.book; reading carries
login_required_only and the service decides on the meeting (staff with meetings.view, or site staff whose
site takes part, who see the published agenda only). Uploads are multipart/form-data: `file` and,
optionally, `item_id` (a draft item to attach the document to).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import fields, validate
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from app.agenda import service as agenda
from app.agenda.models import AgendaItem, AgendaVersion, Document
from app.agenda.routes import send_document
from app.auth.models import Role
from app.db import db
from app.meetings import service as meetings
from app.meetings.models import Meeting
from app.sites.scope import request_scope
from app.web.access import login_required_only, require
from app.web.api import ApiBlueprint, StrictParser
from app.web.schemas import Input, UTCDateTime

Args = dict[str, Any]


class MultipartParser(StrictParser):
    def load_files(self, req: Any, schema: ma.Schema) -> Any:
        # An upload and its form fields (item_id) arrive in one multipart body: read them as one.
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


class MeetingApiBlueprint(ApiBlueprint):
    """An ApiBlueprint for a meeting's sub-resources, all under /api/v1/meetings/<meeting_id>/…"""

    ARGUMENTS_PARSER = MultipartParser()

    def __init__(self, name: str, description: str) -> None:
        super().__init__(name, description, url_prefix="/api/v1/meetings")  # two resources share the prefix


# ---------------------------------------------------------------- schemas

class FileUpload(Upload):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError(_("Send the file as a file part of a multipart/form-data body."))
        return value


class AgendaItemPatch(Input):
    title = fields.String(validate=validate.Length(min=1, max=300))
    presenter = fields.String(validate=validate.Length(max=200))
    minutes = fields.Integer(strict=True, validate=validate.Range(0, agenda.MAX_MINUTES))
    position = fields.Integer(strict=True, validate=validate.Range(min=1), metadata={
        "description": "Move the item to this place (1 = first); the others close up."})


class AgendaItemCreate(Input):
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    presenter = fields.String(load_default="", validate=validate.Length(max=200))
    minutes = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, agenda.MAX_MINUTES))


class DocumentUpload(Input):
    file = FileUpload(required=True, metadata={"description": "PDF, DOCX, XLSX, PPTX or ODT; the type is read "
                                                              "from the content. At most DOCUMENT_MAX_MB."})
    item_id = fields.Integer(allow_none=True, metadata={"description": "A draft item to attach it to; "
                                                                       "none attaches it to the meeting."})


class DocumentReplace(Input):
    file = FileUpload(required=True)


class DocumentOut(ma.Schema):
    id = fields.Integer()
    filename = fields.String()
    kind = fields.String(metadata={"description": "pdf, docx, xlsx, pptx or odt, read from the content."})
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    item_id = fields.Integer(allow_none=True)
    version = fields.Integer(attribute="version.number", allow_none=True, dump_default=None,
                             metadata={"description": "The published version it belongs to; null in the draft."})
    uploaded_at = UTCDateTime()
    download_url = fields.Method("_download_url")

    def _download_url(self, document: Document) -> str:
        return url_for("api_documents.download", meeting_id=document.meeting_id, document_id=document.id,
                       _external=True)


class AgendaItemOut(ma.Schema):
    id = fields.Integer()
    position = fields.Integer()
    title = fields.String()
    presenter = fields.String()
    minutes = fields.Integer()
    documents = fields.List(fields.Nested(DocumentOut))


class ChangeOut(ma.Schema):
    kind = fields.String(metadata={"description": "first, item_added, item_removed, item_renamed, item_retimed, "
                                                  "item_presenter, item_moved, document_added, document_replaced, "
                                                  "document_removed"})
    text = fields.String()


def _changes(changes: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"kind": c["kind"], "text": agenda.change_text(c)} for c in changes]


class AgendaVersionOut(ma.Schema):
    number = fields.Integer()
    published_at = UTCDateTime()
    changes = fields.Method("_changes", metadata={"description": "What changed since the previous version."})
    note = fields.String(metadata={"description": "The text sent to the sites."})
    items = fields.List(fields.Nested(AgendaItemOut))
    documents = fields.Method("_documents")

    def _changes(self, version: AgendaVersion) -> list[dict[str, str]]:
        return ChangeOut(many=True).dump(_changes(version.changes))

    def _documents(self, version: AgendaVersion) -> list[dict[str, Any]]:
        return DocumentOut(many=True).dump(agenda.version_documents(version))


class AgendaVersionSummary(ma.Schema):
    number = fields.Integer()
    published_at = UTCDateTime()


class AgendaDraftOut(ma.Schema):
    items = fields.List(fields.Nested(AgendaItemOut))
    documents = fields.List(fields.Nested(DocumentOut))
    pending_changes = fields.List(fields.Nested(ChangeOut), metadata={
        "description": "What publishing now would report; empty when there is nothing to publish."})


class AgendaOut(ma.Schema):
    meeting_id = fields.Integer()
    current = fields.Nested(AgendaVersionOut, allow_none=True, metadata={
        "description": "The latest published version, what the sites were sent."})
    versions = fields.List(fields.Nested(AgendaVersionSummary))
    draft = fields.Nested(AgendaDraftOut, allow_none=True, metadata={
        "description": "The draft being edited; null for users who cannot edit it."})


class DocumentLists(ma.Schema):
    current = fields.List(fields.Nested(DocumentOut), metadata={
        "description": "The documents of the latest published version."})
    draft = fields.List(fields.Nested(DocumentOut), allow_none=True, metadata={
        "description": "The draft's documents; null for site staff."})


def _draft(meeting: Meeting) -> Args | None:
    if not agenda.can_edit(current_user):
        return None
    return {"items": agenda.draft_items(db.session, meeting), "documents": agenda.draft_documents(db.session, meeting),
            "pending_changes": _changes(agenda.pending_changes(db.session, meeting))}


def _readable(meeting_id: int) -> Meeting:
    return agenda.readable_meeting(db.session, current_user, meeting_id)


def _editable(meeting_id: int) -> Meeting:
    """The meeting to change: outside the user's scope, 404 (unseen) or 403 (its host outside)."""
    return meetings.get_meeting(db.session, meeting_id, request_scope())


# ---------------------------------------------------------------- the agenda

agenda_bp = MeetingApiBlueprint("agenda", "A meeting's agenda: the draft, publishing, and the published versions.")


@agenda_bp.route("/<int:meeting_id>/agenda", endpoint="agenda")
@login_required_only
@agenda_bp.response(200, AgendaOut)
@agenda_bp.fails(404)
def get_agenda(meeting_id: int) -> Args:
    """Show the published agenda, the list of versions and, to those who edit it, the draft."""
    meeting = _readable(meeting_id)
    return {"meeting_id": meeting.id, "current": agenda.latest_version(db.session, meeting),
            "versions": agenda.versions(db.session, meeting), "draft": _draft(meeting)}


@agenda_bp.route("/<int:meeting_id>/agenda/items", methods=["POST"], endpoint="items")
@require("meetings.book")
@agenda_bp.arguments(AgendaItemCreate)
@agenda_bp.response(201, AgendaItemOut)
@agenda_bp.fails(404, 422)
def add_item(data: Args, meeting_id: int) -> AgendaItem:
    """Add an item at the end of the draft."""
    return agenda.add_item(db.session, _editable(meeting_id), data)


@agenda_bp.route("/<int:meeting_id>/agenda/items/<int:item_id>", endpoint="item")
class AgendaItemView(MethodView):
    @require("meetings.book")
    @agenda_bp.arguments(AgendaItemPatch)
    @agenda_bp.response(200, AgendaItemOut)
    @agenda_bp.fails(404, 409, 422)
    def patch(self, data: Args, meeting_id: int, item_id: int) -> AgendaItem:
        """Change a draft item; `position` moves it."""
        item = agenda.get_draft_item(db.session, _editable(meeting_id), item_id)
        position = data.pop("position", None)
        if data:
            agenda.update_item(db.session, item, data)
        if position is not None:
            agenda.move_item(db.session, item, position)
        return item

    @require("meetings.book")
    @agenda_bp.response(204)
    @agenda_bp.fails(404, 409)
    def delete(self, meeting_id: int, item_id: int) -> None:
        """Remove a draft item with its documents; published versions keep theirs."""
        agenda.remove_item(db.session, agenda.get_draft_item(db.session, _editable(meeting_id),
                                                             item_id))


@agenda_bp.route("/<int:meeting_id>/agenda/publish", methods=["POST"], endpoint="publish")
@require("meetings.book")
@agenda_bp.response(201, AgendaVersionOut)
@agenda_bp.fails(404, 409, 422)
def publish(meeting_id: int) -> tuple[AgendaVersion, int, dict[str, str]]:
    """Publish the draft as the next version and tell the sites what changed; refused when nothing did."""
    version = agenda.publish(db.session, _editable(meeting_id), published_by_id=current_user.id)
    return version, 201, {"Location": url_for(".version", meeting_id=meeting_id, number=version.number)}


@agenda_bp.route("/<int:meeting_id>/agenda/versions/<int:number>", endpoint="version")
@login_required_only
@agenda_bp.response(200, AgendaVersionOut)
@agenda_bp.fails(404)
def get_version(meeting_id: int, number: int) -> AgendaVersion:
    """Show a published version with what changed in it."""
    return agenda.get_version(db.session, _readable(meeting_id), number)


# ---------------------------------------------------------------- documents

documents_bp = MeetingApiBlueprint("documents", "Documents of a meeting or of its agenda items.")


@documents_bp.route("/<int:meeting_id>/documents", endpoint="collection")
class DocumentCollection(MethodView):
    @login_required_only
    @documents_bp.response(200, DocumentLists)
    @documents_bp.fails(404)
    def get(self, meeting_id: int) -> Args:
        """List the published documents and, except for site staff, the draft's."""
        meeting = _readable(meeting_id)
        draft = agenda.draft_documents(db.session, meeting) if current_user.role is not Role.SITE_STAFF else None
        latest = agenda.latest_version(db.session, meeting)
        return {"current": agenda.version_documents(latest) if latest else [], "draft": draft}

    @require("meetings.book")
    @documents_bp.arguments(DocumentUpload, location="files")
    @documents_bp.response(201, DocumentOut)
    @documents_bp.fails(404, 409, 413, 422)
    def post(self, data: Args, meeting_id: int) -> tuple[Document, int, dict[str, str]]:
        """Upload a document to the draft (multipart/form-data: file, item_id)."""
        meeting = _editable(meeting_id)
        item = agenda.get_draft_item(db.session, meeting, data["item_id"]) if data.get("item_id") else None
        upload = data["file"]
        document = agenda.add_document(db.session, meeting, agenda.Upload(upload.stream, upload.filename or ""),
                                       item=item, uploaded_by_id=current_user.id)
        return document, 201, {"Location": url_for(".download", meeting_id=meeting_id, document_id=document.id)}


@documents_bp.route("/<int:meeting_id>/documents/<int:document_id>", methods=["DELETE"], endpoint="item")
@require("meetings.book")
@documents_bp.response(204)
@documents_bp.fails(404, 409)
def remove_document(meeting_id: int, document_id: int) -> None:
    """Remove a document from the draft; published versions keep theirs."""
    meeting = _editable(meeting_id)
    agenda.remove_document(db.session, agenda.get_draft_document(db.session, meeting, document_id))


@documents_bp.route("/<int:meeting_id>/documents/<int:document_id>/replace", methods=["POST"], endpoint="replace")
@require("meetings.book")
@documents_bp.arguments(DocumentReplace, location="files")
@documents_bp.response(200, DocumentOut)
@documents_bp.fails(404, 409, 413, 422)
def replace_document(data: Args, meeting_id: int, document_id: int) -> Document:
    """Put a new file in a draft document's place (multipart/form-data: file)."""
    meeting = _editable(meeting_id)
    document = agenda.get_draft_document(db.session, meeting, document_id)
    upload = data["file"]
    return agenda.replace_document(db.session, document, agenda.Upload(upload.stream, upload.filename or ""),
                                   uploaded_by_id=current_user.id)


@documents_bp.route("/<int:meeting_id>/documents/<int:document_id>/download", endpoint="download")
@login_required_only
@documents_bp.doc(responses={"200": {"description": "The file, as an attachment with its original name.",
                                     "content": {"application/octet-stream": {
                                         "schema": {"type": "string", "format": "binary"}}}}})
@documents_bp.fails(404)
def download(meeting_id: int, document_id: int) -> Response:
    """Download a document (site staff: published ones of their site's meetings)."""
    meeting = _readable(meeting_id)
    return send_document(agenda.readable_document(db.session, current_user, meeting, document_id))


blueprints: list[Blueprint] = [agenda_bp, documents_bp]
