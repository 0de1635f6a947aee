"""Job pages: templates and their launch form, the job history, the job page with its live log, credentials.

Thin views: parse the query or the form, call app.provisioning.service (or .vault), render. A launch only
queues the job and goes to its page, which polls events.json every second while the job runs. Credential
pages show names, kinds and users, never a secret: forms are emptied of secrets before any page is rendered.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice

from app.config import local_zone
from app.db import db
from app.errors import DomainError, Invalid
from app.provisioning import service
from app.provisioning.credentials import service as vault
from app.provisioning.credentials.models import CredentialAssignment, CredentialKind, EquipmentKind
from app.provisioning.firmware import service as firmware
from app.provisioning.firmware.routes import signed_link
from app.provisioning.forms import (
    LABELS,
    AssignForm,
    CredentialEditForm,
    CredentialForm,
    LaunchForm,
    SecretFields,
    SecretForm,
    TemplateForm,
)
from app.provisioning.models import JobState
from app.sites.models import Bridge, Endpoint, ManagedHost, Site, Status
from app.sites.scope import request_scope
from app.web.access import require
from app.web.pagination import paginate_request

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


@bp.app_template_filter("jobs_label")
def jobs_label(value: Any) -> str:
    """The translated label of a job state, a credential kind or a kind of equipment."""
    label = LABELS.get(value)
    return str(label) if label is not None else str(value or "")


# ---------------------------------------------------------------- shared by the views below

def _date_arg(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None  # a hand-edited address is no error: no filter


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=local_zone())


def _refused(error: DomainError, form: FlaskForm, html: str, secret_field: str = "",
             **context: Any) -> ResponseReturnValue:
    """Roll back what the service began, put its reasons next to the fields, and show the form again."""
    db.session.rollback()
    for name, messages in error.fields.items():
        field = form._fields.get(secret_field if name == "secret" and secret_field else name)
        if field is None:
            form.form_errors.append(f"{name}: {'; '.join(map(str, messages))}")
        else:
            field.errors = [*field.errors, *map(str, messages)]
    form.form_errors.insert(0, error.message)
    if isinstance(form, SecretFields):
        form.forget_secret()
    return render_template(html, form=form, **context), error.status


def _form_page(form: FlaskForm, html: str, **context: Any) -> ResponseReturnValue:
    if isinstance(form, SecretFields):
        form.forget_secret()
    status = 422 if request.method == "POST" else 200
    return render_template(html, form=form, **context), status


def _confirm(title: str, message: str, button: str, cancel: str, details: list[str] | None = None,
             details_title: str = "") -> ResponseReturnValue:
    return render_template("sites/confirm.html", title=title, message=message, button=button, cancel=cancel,
                           error=None, details=details or [], details_title=details_title)


# ---------------------------------------------------------------- jobs

@bp.get("/")
@require("jobs.view")
def job_list() -> ResponseReturnValue:
    state = request.args.get("state", "")
    since, until = _date_arg("since"), _date_arg("until")
    f = service.JobFilter(state=state if state in {s.value for s in JobState} else "",
                          template_id=request.args.get("template_id", type=int),
                          launched_by_id=request.args.get("launched_by_id", type=int),
                          since=_local_midnight(since) if since else None,
                          until=_local_midnight(until + dt.timedelta(days=1)) if until else None,
                          scope=request_scope())
    page = paginate_request(service.job_query(f))
    return render_template("jobs/job_list.html", page=page, f=f, since=since, until=until, states=list(JobState),
                           templates=service.list_templates(db.session),
                           launchers=service.launchers(db.session))


@bp.get("/<int:job_id>")
@require("jobs.view")
def job_detail(job_id: int) -> ResponseReturnValue:
    job = service.get_job(db.session, job_id, request_scope())
    events = service.events_after(db.session, job, 0, limit=5000)
    return render_template("jobs/job_detail.html", job=job, events=events,
                           last_seq=events[-1].seq if events else 0)


@bp.get("/<int:job_id>/events.json")
@require("jobs.view")
def job_events(job_id: int) -> ResponseReturnValue:
    """What the job page polls: the events after ?after=, the state, and the counts once it has ended."""
    job = service.get_job(db.session, job_id, request_scope())
    after = request.args.get("after", type=int) or 0
    events = service.events_after(db.session, job, after)
    return jsonify({
        "events": [{"seq": e.seq, "type": e.type, "host": e.host, "task": e.task, "status": e.status,
                    "stdout": e.stdout} for e in events],
        "state": job.state.value, "state_label": jobs_label(job.state), "finished": job.finished,
        "waiting_for_job_id": job.waiting_for_job_id, "return_code": job.return_code,
    })


@bp.post("/<int:job_id>/cancel")
@require("jobs.launch")
def job_cancel(job_id: int) -> ResponseReturnValue:
    job = service.get_changeable_job(db.session, job_id, request_scope())
    try:
        service.request_cancel(db.session, job)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".job_detail", job_id=job_id))
    if job.state is JobState.CANCELLED:
        flash(_("Job #%(id)s was cancelled before it started.", id=job.id), "success")
    else:
        flash(_("Job #%(id)s is being stopped.", id=job.id), "success")
    return redirect(url_for(".job_detail", job_id=job_id))


@bp.post("/<int:job_id>/relaunch")
@require("jobs.launch")
def job_relaunch(job_id: int) -> ResponseReturnValue:
    old = service.get_job(db.session, job_id, request_scope())  # 404 outside the scope, not a flash
    try:
        job = service.relaunch_job(db.session, old, current_user, request_scope())
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".job_detail", job_id=job_id))
    flash(_("Job #%(id)s queued.", id=job.id), "success")
    return redirect(url_for(".job_detail", job_id=job.id))


# ---------------------------------------------------------------- templates

@bp.get("/templates")
@require("jobs.view")
def template_list() -> ResponseReturnValue:
    templates = service.list_templates(db.session)
    return render_template("jobs/template_list.html", templates=templates,
                           launchable={t.id for t in templates if service.may_launch(t, current_user)})


def _template_choices(form: TemplateForm) -> None:
    playbooks = service.list_playbooks()
    if form.playbook.data and form.playbook.data not in playbooks:
        playbooks.append(form.playbook.data)  # a template whose playbook went away still shows it
    form.playbook.choices = [SelectChoice("", _("Choose a playbook"))] + [SelectChoice(p, p) for p in playbooks]
    form.launch_roles.choices = [SelectChoice(r.value, r.value) for r in service.launch_roles_choices()]
    form.credential_id.choices = [SelectChoice("", "—")] + [
        SelectChoice(str(c.id), f"{c.name} ({jobs_label(c.kind)})") for c in vault.list_credentials(db.session)]


def _template_page(form: TemplateForm, template: Any) -> ResponseReturnValue:
    _template_choices(form)
    context = {"template": template}
    if not form.validate_on_submit():
        return _form_page(form, "jobs/template_form.html", **context)
    try:
        saved = service.save_template(db.session, form.changes(), template)
    except DomainError as error:
        return _refused(error, form, "jobs/template_form.html", **context)
    flash(_("Template %(name)s saved.", name=saved.name), "success")
    return redirect(url_for(".template_list"))


@bp.route("/templates/new", methods=["GET", "POST"])
@require("jobs.launch")
def template_create() -> ResponseReturnValue:
    form = TemplateForm()
    if request.method == "GET":
        form.launch_roles.data = [r.value for r in service.launch_roles_choices()]
    return _template_page(form, None)


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@require("jobs.launch")
def template_edit(template_id: int) -> ResponseReturnValue:
    template = service.get_template(db.session, template_id)
    service.check_may_change(template, current_user)  # the page too: it would show an admin-only template's form
    form = TemplateForm(obj=template) if request.method == "GET" else TemplateForm()
    if request.method == "GET":
        form.extra_vars.data = json.dumps(template.extra_vars or {}, ensure_ascii=False, indent=2)
    return _template_page(form, template)


@bp.route("/templates/<int:template_id>/launch", methods=["GET", "POST"])
@require("jobs.launch")
def template_launch(template_id: int) -> ResponseReturnValue:
    template = service.get_template(db.session, template_id)
    form = LaunchForm()
    if request.method == "GET":
        form.limit.data, form.tags.data = template.default_limit, template.tags
    if not template.check_allowed:
        del form.check_mode
    images = firmware.list_images(db.session) if template.playbook == firmware.PLAYBOOK else None
    if images is None:
        del form.firmware_image
    else:
        form.firmware_image.choices = [SelectChoice("", _("Choose an image"))] + [
            SelectChoice(str(i.id), firmware.image_label(i)) for i in images]
    context = {"template": template, "images": images}
    if not form.validate_on_submit():
        return _form_page(form, "jobs/launch.html", **context)
    try:
        extra_vars = _launch_vars(form)
        job = service.launch_job(db.session, template, current_user, limit=form.limit.data, tags=form.tags.data,
                                 check=bool(getattr(form, "check_mode", None) and form.check_mode.data),
                                 extra_vars=extra_vars, override=bool(form.override.data),
                                 override_reason=form.override_reason.data or "", scope=request_scope())
    except DomainError as error:
        return _refused(error, form, "jobs/launch.html", **context)
    flash(_("Job #%(id)s queued.", id=job.id), "success")
    return redirect(url_for(".job_detail", job_id=job.id))


def _launch_vars(form: LaunchForm) -> dict[str, Any] | str:
    """The launch's extra variables; for the firmware upgrade, the chosen image's laid over them."""
    if "firmware_image" not in form:
        return form.extra_vars.data
    if form.firmware_image.data is None:
        raise Invalid(_("Choose the firmware image to install."),
                      {"firmware_image": [_("Choose one of the uploaded images.")]})
    image = firmware.get_image(db.session, form.firmware_image.data)
    return {**service.clean_extra_vars(form.extra_vars.data),
            **firmware.launch_vars(image, signed_link(image))}


# ---------------------------------------------------------------- credentials

@bp.get("/credentials")
@require("credentials.manage")
def credential_list() -> ResponseReturnValue:
    return render_template("jobs/credential_list.html", credentials=vault.list_credentials(db.session),
                           assignments=vault.list_assignments(db.session), scope_label=_scope_label)


def _scope_label(assignment: CredentialAssignment) -> str:
    kind = jobs_label(assignment.equipment_kind)
    if assignment.site_id is not None:
        site = db.session.get(Site, assignment.site_id)
        return _("%(kind)s at %(site)s and below", kind=kind, site=site.name if site else "?")
    device: Any = None
    if assignment.endpoint_id is not None:
        device = db.session.get(Endpoint, assignment.endpoint_id)
        name = f"{device.site.code} {device.room_name}" if device else "?"
    elif assignment.bridge_id is not None:
        device = db.session.get(Bridge, assignment.bridge_id)
        name = device.name if device else "?"
    elif assignment.host_id is not None:
        device = db.session.get(ManagedHost, assignment.host_id)
        name = device.name if device else "?"
    else:
        return _("all %(kind)s", kind=kind)
    return _("%(kind)s: only %(device)s", kind=kind, device=name)


def _secret_field(kind: CredentialKind) -> str:
    return "private_key" if kind is CredentialKind.SSH_KEY else "password"


@bp.route("/credentials/new", methods=["GET", "POST"])
@require("credentials.manage")
def credential_create() -> ResponseReturnValue:
    form = CredentialForm()
    if not form.validate_on_submit():
        return _form_page(form, "jobs/credential_form.html", title=_("New credential"))
    try:
        credential = vault.create_credential(db.session, form.name.data, form.kind.data, form.username.data,
                                             form.secret(form.kind.data), form.description.data)
    except DomainError as error:
        return _refused(error, form, "jobs/credential_form.html", _secret_field(form.kind.data),
                        title=_("New credential"))
    flash(_("Credential %(name)s saved; its secret is stored encrypted.", name=credential.name), "success")
    return redirect(url_for(".credential_list"))


@bp.route("/credentials/<int:credential_id>/edit", methods=["GET", "POST"])
@require("credentials.manage")
def credential_edit(credential_id: int) -> ResponseReturnValue:
    credential = vault.get_credential(db.session, credential_id)
    form = CredentialEditForm(obj=credential) if request.method == "GET" else CredentialEditForm()
    title = _("Edit the credential %(name)s", name=credential.name)
    if not form.validate_on_submit():
        return _form_page(form, "jobs/credential_form.html", title=title)
    try:
        vault.update_credential(db.session, credential, form.name.data, form.username.data, form.description.data)
    except DomainError as error:
        return _refused(error, form, "jobs/credential_form.html", title=title)
    flash(_("Credential %(name)s saved.", name=credential.name), "success")
    return redirect(url_for(".credential_list"))


@bp.route("/credentials/<int:credential_id>/rotate", methods=["GET", "POST"])
@require("credentials.manage")
def credential_rotate(credential_id: int) -> ResponseReturnValue:
    credential = vault.get_credential(db.session, credential_id)
    form = SecretForm()
    title = _("New secret for %(name)s", name=credential.name)
    context = {"title": title, "credential": credential}
    if not form.validate_on_submit():
        return _form_page(form, "jobs/credential_form.html", **context)
    try:
        vault.replace_secret(db.session, credential, form.secret(credential.kind))
    except DomainError as error:
        return _refused(error, form, "jobs/credential_form.html", _secret_field(credential.kind), **context)
    flash(_("The secret of %(name)s was replaced.", name=credential.name), "success")
    return redirect(url_for(".credential_list"))


@bp.route("/credentials/<int:credential_id>/delete", methods=["GET", "POST"])
@require("credentials.manage")
def credential_delete(credential_id: int) -> ResponseReturnValue:
    credential = vault.get_credential(db.session, credential_id)
    if request.method == "GET":
        return _confirm(_("Delete the credential %(name)s", name=credential.name),
                        _("Its secret is erased; equipment assigned to it will have no credential."),
                        _("Delete"), url_for(".credential_list"),
                        details=[_scope_label(a) for a in credential.assignments],
                        details_title=_("Its assignments, removed with it:"))
    name = credential.name
    vault.delete_credential(db.session, credential)
    flash(_("Credential %(name)s deleted.", name=name), "success")
    return redirect(url_for(".credential_list"))


def _device_choices() -> list[SelectChoice]:
    choices = [SelectChoice("", "—")]
    for e in db.session.scalars(sa.select(Endpoint).where(Endpoint.status != Status.RETIRED)
                                .order_by(Endpoint.site_id, Endpoint.room_name)):
        choices.append(SelectChoice(f"endpoint:{e.id}", f"{e.site.code} {e.room_name}"))
    for b in db.session.scalars(sa.select(Bridge).where(Bridge.status != Status.RETIRED).order_by(Bridge.name)):
        choices.append(SelectChoice(f"bridge:{b.id}", b.name))
    for h in db.session.scalars(sa.select(ManagedHost).where(ManagedHost.status != Status.RETIRED)
                                .order_by(ManagedHost.name)):
        choices.append(SelectChoice(f"host:{h.id}", h.name))
    return choices


_DEVICE_MODELS: dict[str, Any] = {"endpoint": Endpoint, "bridge": Bridge, "host": ManagedHost}


@bp.route("/credentials/<int:credential_id>/assign", methods=["GET", "POST"])
@require("credentials.manage")
def credential_assign(credential_id: int) -> ResponseReturnValue:
    credential = vault.get_credential(db.session, credential_id)
    form = AssignForm()
    form.site_id.choices = [SelectChoice("", "—")] + [
        SelectChoice(str(s.id), f"{s.code} — {s.name}")
        for s in db.session.scalars(sa.select(Site).where(Site.status != Status.RETIRED).order_by(Site.path))]
    form.device.choices = _device_choices()
    context = {"title": _("Assign %(name)s", name=credential.name), "credential": credential}
    if not form.validate_on_submit():
        return _form_page(form, "jobs/credential_form.html", **context)
    device = None
    if form.device.data:
        model_name, _sep, device_id = form.device.data.partition(":")
        device = db.session.get(_DEVICE_MODELS[model_name], int(device_id))
    site = db.session.get(Site, form.site_id.data) if form.site_id.data else None
    try:
        vault.assign_credential(db.session, credential, EquipmentKind(form.equipment_kind.data), site, device)
    except DomainError as error:
        return _refused(error, form, "jobs/credential_form.html", **context)
    flash(_("Credential %(name)s assigned.", name=credential.name), "success")
    return redirect(url_for(".credential_list"))


@bp.post("/credentials/assignments/<int:assignment_id>/delete")
@require("credentials.manage")
def assignment_delete(assignment_id: int) -> ResponseReturnValue:
    assignment = db.session.get(CredentialAssignment, assignment_id)
    if assignment is not None:
        vault.remove_assignment(db.session, assignment)
        flash(_("Assignment removed."), "success")
    return redirect(url_for(".credential_list"))

