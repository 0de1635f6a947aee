"""Agenda and document pages of a meeting: edit the draft, upload documents, publish, read versions, download.

Thin views: parse the form, call app.agenda.service, render. Editing needs meetings.book; reading pages
carry login_required_only and the service decides on the meeting itself (staff with meetings.view, or site
staff whose site takes part). A signed link in the invitation downloads a document without a login.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField, FileRequired
from werkzeug.routing import BuildError
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app import storage
from app.agenda import service as agenda
from app.agenda.models import AgendaItem, Document
from app.db import db
from app.errors import DomainError, NotFound
from app.meetings import service as meetings
from app.meetings.models import Classification, Meeting
from app.sites.scope import request_scope
from app.web.access import login_required_only, public, require
from app.web.forms import CheckedForm

bp = Blueprint("agenda", __name__, url_prefix="/meetings")


# ---------------------------------------------------------------- forms

def _optional_int(value: Any) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class ItemForm(CheckedForm):
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=300)])
    presenter = StringField(_l("Presenter"), validators=[Optional(), Length(max=200)])
    minutes = IntegerField(_l("Minutes"), default=15, validators=[InputRequired(), NumberRange(0, agenda.MAX_MINUTES)])

    def values(self) -> dict[str, Any]:
        return {"title": self.title.data, "presenter": self.presenter.data or "", "minutes": self.minutes.data}


class UploadForm(CheckedForm):
    file = FileField(_l("File (PDF, DOCX, XLSX, PPTX or ODT)"), validators=[FileRequired()])
    item_id = SelectField(_l("Attach to"), coerce=_optional_int, validate_choice=False)


class ReplaceForm(CheckedForm):
    file = FileField(_l("New file"), validators=[FileRequired()])


# ---------------------------------------------------------------- helpers

def _meeting_url(meeting: Meeting) -> str:
    try:
        return url_for("meetings.meeting_detail", meeting_id=meeting.id)
    except BuildError:  # the meeting pages may not offer a detail page
        return url_for("meetings.meeting_list")


def _agenda_url(meeting: Meeting) -> str:
    return url_for("agenda.agenda_page", meeting_id=meeting.id)


def _editable(meeting_id: int) -> Meeting:
    """The meeting to change: outside the user's scope, 404 (unseen) or 403 (its host outside)."""
    return meetings.get_meeting(db.session, meeting_id, request_scope())


def _render_agenda(meeting: Meeting, item_form: ItemForm | None = None, upload_form: UploadForm | None = None,
                   error: str | None = None, status: int = 200) -> ResponseReturnValue:
    session = db.session
    editing = agenda.can_edit(current_user)
    latest = agenda.latest_version(session, meeting)
    context: dict[str, Any] = {
        "meeting": meeting, "meeting_url": _meeting_url(meeting), "editing": editing, "latest": latest,
        "latest_items": list(latest.items) if latest else [],
        "latest_documents": agenda.version_documents(latest) if latest else [],
        "versions": agenda.versions(session, meeting), "error": error,
        "restricted": meeting.classification is Classification.RESTRICTED,
    }
    if editing:
        items = agenda.draft_items(session, meeting)
        upload_form = upload_form or UploadForm()
        upload_form.item_id.choices = [("", _("The meeting as a whole"))] + [
            (str(i.id), f"{i.position}. {i.title}") for i in items]
        context.update(items=items, draft_documents=agenda.draft_documents(session, meeting),
                       item_form=item_form or ItemForm(), upload_form=upload_form, replace_form=ReplaceForm(),
                       pending=[agenda.change_text(c) for c in agenda.pending_changes(session, meeting)])
    return render_template("agenda/agenda.html", **context), status


def _refused(meeting: Meeting, error: DomainError, **forms: Any) -> ResponseReturnValue:
    """Roll back what the service began and show the agenda page again with the reason."""
    db.session.rollback()
    return _render_agenda(meeting, error=error.message, status=error.status, **forms)


def send_document(document: Document) -> Response:
    if not document.path.is_file():
        current_app.logger.error("file %s of document %s is missing", document.storage_name, document.id)
        raise NotFound(_("The file of this document is missing on the server; ask the secretariat to upload it "
                         "again."))
    response = send_file(document.path, mimetype=document.content_type, as_attachment=True,
                         download_name=document.filename, etag=document.sha256, conditional=True)
    response.headers["Content-Disposition"] = storage.content_disposition(document.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Meeting papers are for the people allowed to see them: never kept by a shared cache.
    response.cache_control.private = True
    response.cache_control.no_store = True
    response.cache_control.public = False
    return response


# ---------------------------------------------------------------- reading

@bp.get("/<int:meeting_id>/agenda")
@login_required_only
def agenda_page(meeting_id: int) -> ResponseReturnValue:
    meeting = agenda.readable_meeting(db.session, current_user, meeting_id)
    return _render_agenda(meeting)


@bp.get("/<int:meeting_id>/agenda/versions/<int:number>")
@login_required_only
def version_page(meeting_id: int, number: int) -> ResponseReturnValue:
    meeting = agenda.readable_meeting(db.session, current_user, meeting_id)
    version = agenda.get_version(db.session, meeting, number)
    return render_template("agenda/version.html", meeting=meeting, version=version,
                           meeting_url=_meeting_url(meeting), documents=agenda.version_documents(version),
                           changes=[agenda.change_text(c) for c in version.changes])


@bp.get("/<int:meeting_id>/documents/<int:document_id>")
@login_required_only
def document_download(meeting_id: int, document_id: int) -> ResponseReturnValue:
    meeting = agenda.readable_meeting(db.session, current_user, meeting_id)
    return send_document(agenda.readable_document(db.session, current_user, meeting, document_id))


@bp.get("/documents/signed/<token>")
@public("a signed, expiring link from the invitation (itsdangerous, salt 'document'); restricted meetings' "
        "documents are refused and need a login")
def signed_download(token: str) -> ResponseReturnValue:
    document = agenda.document_for_token(db.session, token)
    if document.meeting.classification is Classification.RESTRICTED:
        # Never served on a link alone: the reader logs in and the usual check decides.
        return redirect(url_for("agenda.document_download", meeting_id=document.meeting_id, document_id=document.id))
    return send_document(document)


# ---------------------------------------------------------------- editing the draft

@bp.post("/<int:meeting_id>/agenda/items")
@require("meetings.book")
def item_add(meeting_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    form = ItemForm()
    if not form.validate_on_submit():
        return _render_agenda(meeting, item_form=form, error=_("Please correct the item's fields."), status=422)
    try:
        item = agenda.add_item(db.session, meeting, form.values())
    except DomainError as error:
        return _refused(meeting, error, item_form=form)
    flash(_("Item “%(title)s” added to the draft.", title=item.title), "success")
    return redirect(_agenda_url(meeting))


def _draft_item(meeting: Meeting, item_id: int) -> AgendaItem:
    return agenda.get_draft_item(db.session, meeting, item_id)


@bp.route("/<int:meeting_id>/agenda/items/<int:item_id>/edit", methods=["GET", "POST"])
@require("meetings.book")
def item_edit(meeting_id: int, item_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    item = _draft_item(meeting, item_id)
    form = ItemForm(obj=item) if request.method == "GET" else ItemForm()
    context = {"meeting": meeting, "item": item, "form": form, "meeting_url": _meeting_url(meeting)}
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("agenda/item_form.html", **context), status
    try:
        agenda.update_item(db.session, item, form.values())
    except DomainError as error:
        db.session.rollback()
        return render_template("agenda/item_form.html", error=error.message, **context), error.status
    flash(_("Item “%(title)s” saved.", title=item.title), "success")
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/agenda/items/<int:item_id>/move")
@require("meetings.book")
def item_move(meeting_id: int, item_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    item = _draft_item(meeting, item_id)
    # Buttons without fields (move, remove, publish) are covered by the app-wide CSRF check (CSRFProtect).
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""), 0)
    agenda.move_item(db.session, item, item.position + step)
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/agenda/items/<int:item_id>/remove")
@require("meetings.book")
def item_remove(meeting_id: int, item_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    item = _draft_item(meeting, item_id)
    title = item.title
    agenda.remove_item(db.session, item)
    flash(_("Item “%(title)s” removed from the draft.", title=title), "success")
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/documents")
@require("meetings.book")
def document_upload(meeting_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    form = UploadForm()
    if not form.validate_on_submit():
        return _render_agenda(meeting, upload_form=form, error=_("Choose a file to upload."), status=422)
    try:
        item = _draft_item(meeting, form.item_id.data) if form.item_id.data else None
        document = agenda.add_document(db.session, meeting, agenda.Upload(form.file.data.stream,
                                                                          form.file.data.filename or ""),
                                       item=item, uploaded_by_id=current_user.id)
    except DomainError as error:
        return _refused(meeting, error, upload_form=form)
    flash(_("Document “%(filename)s” uploaded.", filename=document.filename), "success")
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/documents/<int:document_id>/replace")
@require("meetings.book")
def document_replace(meeting_id: int, document_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    document = agenda.get_draft_document(db.session, meeting, document_id)
    form = ReplaceForm()
    if not form.validate_on_submit():
        return _render_agenda(meeting, error=_("Choose a file to upload."), status=422)
    try:
        agenda.replace_document(db.session, document, agenda.Upload(form.file.data.stream,
                                                                    form.file.data.filename or ""),
                                uploaded_by_id=current_user.id)
    except DomainError as error:
        return _refused(meeting, error)
    flash(_("Document replaced by “%(filename)s”.", filename=document.filename), "success")
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/documents/<int:document_id>/remove")
@require("meetings.book")
def document_remove(meeting_id: int, document_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    document = agenda.get_draft_document(db.session, meeting, document_id)
    filename = document.filename
    agenda.remove_document(db.session, document)
    flash(_("Document “%(filename)s” removed from the draft.", filename=filename), "success")
    return redirect(_agenda_url(meeting))


@bp.post("/<int:meeting_id>/agenda/publish")
@require("meetings.book")
def publish(meeting_id: int) -> ResponseReturnValue:
    meeting = _editable(meeting_id)
    try:
        version = agenda.publish(db.session, meeting, published_by_id=current_user.id)
    except DomainError as error:
        return _refused(meeting, error)
    flash(_("Agenda version %(number)s published; the sites will be told what changed.", number=version.number),
          "success")
    return redirect(url_for("agenda.version_page", meeting_id=meeting.id, number=version.number))
