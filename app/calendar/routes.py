"""Calendar room: attendance (the signed links of the invitations, and the meeting page's button), ICS feeds
behind secret tokens, and the page that manages the tokens.

The attendance link and the feed addresses take no user: each view checks its own secret (a signature that
expires, or a revocable token) before it reads anything. The button takes a logged-in user with
meetings.attend (site staff: their own site only).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Length

from app.calendar import service
from app.db import db
from app.errors import DomainError
from app.sites import scope as scopes
from app.sites.models import Site, Status
from app.sites.scope import request_scope
from app.web.access import public, require
from app.web.forms import CheckedForm

bp = Blueprint("calendar", __name__)


# ---------------------------------------------------------------- attendance

@bp.route("/calendar/attendance/<token>", methods=["GET", "POST"])
@public("signed link: the view checks the signature (salt 'attendance'), which expires after SIGNED_LINK_DAYS")
def attendance(token: str) -> ResponseReturnValue:
    link = service.read_attendance_link(db.session, token)
    if request.method == "POST":
        service.confirm_attendance(db.session, link.participation, by=link.email or "attendance link")
        flash(_("Attendance confirmed. Thank you."), "success")
        return redirect(url_for("calendar.attendance", token=token))
    participation = link.participation
    return render_template("calendar/attendance.html", participation=participation,
                           occurrence=participation.occurrence, meeting=participation.occurrence.meeting)


@bp.post("/meetings/participations/<int:participation_id>/confirm")
@require("meetings.attend")
def confirm_attendance(participation_id: int) -> ResponseReturnValue:
    """The meeting page's button: a logged-in user confirms a site's attendance."""
    if not FlaskForm().validate():
        abort(400, description=_("The form has expired; reload the page and try again."))
    participation = service.confirm_in_app(db.session, current_user, participation_id)
    flash(_("Attendance of %(site)s is confirmed.", site=participation.site.name), "success")
    return redirect(url_for("meetings.meeting_detail", meeting_id=participation.occurrence.meeting_id,
                            occurrence=participation.occurrence_id))


# ---------------------------------------------------------------- deliveries failed for good

@bp.post("/meetings/<int:meeting_id>/deliveries/<int:delivery_id>/resend")
@require("meetings.book")
def delivery_resend(meeting_id: int, delivery_id: int) -> ResponseReturnValue:
    """The meeting page's resend of one invitation failed for good."""
    if not FlaskForm().validate():
        abort(400, description=_("The form has expired; reload the page and try again."))
    [delivery] = service.resend(db.session, current_user, meeting_id, delivery_id)
    flash(_("The invitation to %(email)s will be sent again.", email=delivery.email), "success")
    return redirect(url_for("meetings.meeting_detail", meeting_id=meeting_id))


@bp.post("/meetings/<int:meeting_id>/deliveries/resend")
@require("meetings.book")
def deliveries_resend(meeting_id: int) -> ResponseReturnValue:
    """The meeting page's resend of every invitation of the meeting failed for good."""
    if not FlaskForm().validate():
        abort(400, description=_("The form has expired; reload the page and try again."))
    rows = service.resend(db.session, current_user, meeting_id)
    if rows:
        flash(ngettext("%(num)d invitation will be sent again.", "%(num)d invitations will be sent again.",
                       len(rows)), "success")
    else:
        flash(_("No invitation of this meeting has failed for good."), "info")
    return redirect(url_for("meetings.meeting_detail", meeting_id=meeting_id))


# ---------------------------------------------------------------- feeds

@bp.get("/calendar/feeds/<secret>.ics")
@public("feed token: the view looks up the revocable secret in the address (stored hashed)")
def feed(secret: str) -> ResponseReturnValue:
    token = service.feed_token(db.session, secret)
    body = service.feed_calendar(db.session, token)
    response = Response(body, content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = 'inline; filename="vcops.ics"'
    # Calendar clients poll: they must ask again each time, and get a 304 when nothing changed.
    response.headers["Cache-Control"] = "private, no-cache"
    response.set_etag(service.feed_etag(body))
    return response.make_conditional(request)


class FeedTokenForm(CheckedForm):
    site_id = SelectField(_l("Calendar of"), coerce=int)
    name = StringField(_l("Name (who uses it)"), validators=[Length(max=100)])


def _feed_form() -> FeedTokenForm:
    form = FeedTokenForm()
    scope = request_scope()
    sites = db.session.scalars(sa.select(Site).where(Site.status != Status.RETIRED, scopes.within(scope, Site.id))
                               .order_by(Site.path))
    whole = [] if scope is not None else [(0, _("The whole province (every meeting)"))]
    form.site_id.choices = [*whole, *((s.id, f"{s.code} · {s.name}") for s in sites)]
    return form


def _feed_page(form: FeedTokenForm, status: int = 200, **context: object) -> ResponseReturnValue:
    return render_template("calendar/feeds.html", form=form,
                           tokens=service.feed_tokens(db.session, request_scope()),
                           **context), status


@bp.get("/calendar/feeds")
@require("meetings.book")
def feed_list() -> ResponseReturnValue:
    return _feed_page(_feed_form())


@bp.post("/calendar/feeds")
@require("meetings.book")
def feed_create() -> ResponseReturnValue:
    form = _feed_form()
    if not form.validate_on_submit():
        return _feed_page(form, 422)
    try:
        token, secret = service.create_feed_token(db.session, form.site_id.data or None, form.name.data or "",
                                                  created_by_id=current_user.id, scope=request_scope())
    except DomainError as error:
        db.session.rollback()
        form.form_errors.append(error.message)
        return _feed_page(form, error.status)
    html, status = _feed_page(_feed_form(), created=token, secret_url=service.feed_url(secret))
    response = Response(html, status=status)
    response.headers["Cache-Control"] = "no-store"  # the secret is shown once and kept nowhere
    return response


@bp.post("/calendar/feeds/<int:token_id>/revoke")
@require("meetings.book")
def feed_revoke(token_id: int) -> ResponseReturnValue:
    token = service.revoke_feed_token(db.session, token_id, request_scope())
    flash(_("Feed %(prefix)s… revoked: its address no longer works.", prefix=token.prefix), "success")
    return redirect(url_for("calendar.feed_list"))
