"""The meeting-window guard's page of a job template: whether its runs change equipment, and how long one is
expected to take (the window checked against the sites' meetings); with the overrides its jobs needed.

Thin views: parse the form, call app.provisioning.service.change_template (which keeps the rules: the range of
minutes, who may change the template, the audit entry), render.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import BooleanField, IntegerField
from wtforms.validators import InputRequired, NumberRange

from app.db import db
from app.errors import DomainError
from app.provisioning import service
from app.provisioning.guard import service as guard
from app.provisioning.guard.models import JobOverride
from app.provisioning.models import Job, JobTemplate
from app.web.access import require
from app.web.forms import CheckedForm

bp = Blueprint("guard", __name__, url_prefix="/jobs/templates")
RECENT_OVERRIDES = 20


class GuardForm(CheckedForm):
    # Field names are the service's, so that a DomainError's fields land next to the right input.
    changes_equipment = BooleanField(_l("Its runs change equipment"), description=_l(
        "Untick for read-only playbooks (configuration backups, readiness checks): they may run during a meeting. "
        "A run in check mode never counts as a change."))
    expected_minutes = IntegerField(_l("Expected duration (minutes)"), validators=[
        InputRequired(), NumberRange(1, guard.MAX_EXPECTED_MINUTES, _l("From 1 to 1440 minutes (24 hours)."))],
        description=_l("A run is refused when a meeting at one of its sites, from the setup (the test call) to "
                       "the end, falls between now and now plus this duration."))


def _recent_overrides(template: JobTemplate) -> list[JobOverride]:
    return list(db.session.scalars(
        sa.select(JobOverride).join(Job, JobOverride.job_id == Job.id).where(Job.template_id == template.id)
        .options(so.joinedload(JobOverride.user)).order_by(JobOverride.created_at.desc())
        .limit(RECENT_OVERRIDES)))


@bp.route("/<int:template_id>/guard", methods=["GET", "POST"])
@require("jobs.launch")  # as editing the template itself (app.provisioning.routes.template_edit)
def template_guard(template_id: int) -> ResponseReturnValue:
    template = service.get_template(db.session, template_id)
    settings = guard.template_guard(db.session, template)
    form = GuardForm(obj=settings) if request.method == "GET" else GuardForm()
    context = {"template": template, "settings": settings, "may_change": service.may_launch(template, current_user),
               "overrides": _recent_overrides(template)}
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("guard/template_guard.html", form=form, **context), status
    try:
        service.change_template(db.session, template, {"changes_equipment": bool(form.changes_equipment.data),
                                                       "expected_minutes": form.expected_minutes.data},
                                current_user)
    except DomainError as error:
        db.session.rollback()
        for name, messages in error.fields.items():
            field = form._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, *map(str, messages)]
        form.form_errors.insert(0, error.message)
        return render_template("guard/template_guard.html", form=form, **context), error.status
    flash(_("Guard settings of %(name)s saved.", name=template.name), "success")
    return redirect(url_for(".template_guard", template_id=template.id))
