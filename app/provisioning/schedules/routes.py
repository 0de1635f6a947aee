"""Schedule pages: the schedules of job templates, created, edited, enabled, disabled and deleted.

Thin views: parse the form, call app.provisioning.schedules.service, render. Times a schedule names are local
(Asia/Ho_Chi_Minh); the next run is shown in local time too.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from app.db import db
from app.errors import DomainError
from app.provisioning import service
from app.provisioning.forms import text
from app.provisioning.schedules import service as schedules
from app.provisioning.schedules.models import JobSchedule
from app.web.access import require
from app.web.forms import CheckedForm, optional_int, strip

bp = Blueprint("schedules", __name__, url_prefix="/jobs/schedules")


class ScheduleForm(CheckedForm):
    template_id = SelectField(_l("Template"), coerce=optional_int, validators=[InputRequired()])
    cron = text(_l("When (cron, local time)"), 100, required=True,
                description=_l("Minute hour day month weekday, e.g. 0 2 * * * for 02:00 every night."))
    limit = text(_l("Limit"), 500, description=_l("Empty: the template's default limit."))
    tags = text(_l("Tags"), 500, description=_l("Empty: the template's tags."))
    extra_vars = TextAreaField(_l("Extra variables (JSON)"), filters=[strip], default="{}", render_kw={"rows": 3})
    enabled = BooleanField(_l("Enabled"), default=True)

    def changes(self) -> dict[str, Any]:
        return {name: self[name].data for name in schedules.SCHEDULE_FIELDS}


def _page(form: ScheduleForm, schedule: JobSchedule | None) -> ResponseReturnValue:
    form.template_id.choices = [SelectChoice("", _("Choose a template"))] + [
        SelectChoice(str(t.id), t.name) for t in service.list_templates(db.session)]
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("schedules/form.html", form=form, schedule=schedule), status
    try:
        saved = schedules.save_schedule(db.session, form.changes(), current_user, schedule)
    except DomainError as error:
        db.session.rollback()
        for name, messages in error.fields.items():
            field = form._fields.get(name)
            if field is None:
                form.form_errors.append(f"{name}: {'; '.join(map(str, messages))}")
            else:
                field.errors = [*field.errors, *map(str, messages)]
        form.form_errors.insert(0, error.message)
        return render_template("schedules/form.html", form=form, schedule=schedule), error.status
    flash(_("Schedule of %(name)s saved.", name=saved.template.name), "success")
    return redirect(url_for(".schedule_list"))


@bp.get("/")
@require("jobs.view")
def schedule_list() -> ResponseReturnValue:
    return render_template("schedules/list.html", schedules=schedules.list_schedules(db.session))


@bp.route("/new", methods=["GET", "POST"])
@require("jobs.launch")
def schedule_create() -> ResponseReturnValue:
    form = ScheduleForm()
    template_id = request.args.get("template_id", type=int)
    if request.method == "GET" and template_id is not None:
        form.template_id.data = template_id
    return _page(form, None)


@bp.route("/<int:schedule_id>/edit", methods=["GET", "POST"])
@require("jobs.launch")
def schedule_edit(schedule_id: int) -> ResponseReturnValue:
    schedule = schedules.get_schedule(db.session, schedule_id)
    form = ScheduleForm(obj=schedule) if request.method == "GET" else ScheduleForm()
    if request.method == "GET":
        form.extra_vars.data = json.dumps(schedule.extra_vars or {}, ensure_ascii=False)
        form.limit.data, form.tags.data = schedule.limit or "", schedule.tags or ""
    return _page(form, schedule)


def _switch(schedule_id: int, enabled: bool) -> ResponseReturnValue:
    schedule = schedules.get_schedule(db.session, schedule_id)
    try:
        schedules.set_enabled(db.session, schedule, enabled, current_user)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".schedule_list"))
    flash(_("Schedule of %(name)s enabled.", name=schedule.template.name) if enabled
          else _("Schedule of %(name)s disabled.", name=schedule.template.name), "success")
    return redirect(url_for(".schedule_list"))


@bp.post("/<int:schedule_id>/enable")
@require("jobs.launch")
def schedule_enable(schedule_id: int) -> ResponseReturnValue:
    return _switch(schedule_id, True)


@bp.post("/<int:schedule_id>/disable")
@require("jobs.launch")
def schedule_disable(schedule_id: int) -> ResponseReturnValue:
    return _switch(schedule_id, False)


@bp.post("/<int:schedule_id>/delete")
@require("jobs.launch")
def schedule_delete(schedule_id: int) -> ResponseReturnValue:
    schedule = schedules.get_schedule(db.session, schedule_id)
    name = schedule.template.name
    try:
        schedules.delete_schedule(db.session, schedule, current_user)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for(".schedule_list"))
    flash(_("Schedule of %(name)s deleted.", name=name), "success")
    return redirect(url_for(".schedule_list"))
