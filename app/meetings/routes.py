"""Meeting pages: the list, day/week/month calendars, a site's schedule, booking with its availability check,
a meeting's page and its actions (move, cancel, schedule a draft). Confirming a site's attendance is the
calendar's view (app.calendar.routes), which the page's button posts to.

Thin views: parse the form or the query, call app.meetings.service (changes), app.meetings.availability or
app.meetings.queries (reads), render. A refusal is rolled back and the form is shown again with the user's
input and every clash of every occurrence (409). Site staff see only the meetings their site takes part in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_date, format_time, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from app.auth.permissions import role_can
from app.db import db, utcnow
from app.errors import DomainError
from app.meetings import queries, service, signals
from app.meetings.availability import NOTES, WorkingHours, check_availability
from app.meetings.forms import (
    CLASSIFICATION_LABELS,
    FREQUENCY_LABELS,
    STATUS_LABELS,
    AvailabilityForm,
    BookingForm,
    CancelForm,
    MoveForm,
    ProposalForm,
    put_errors,
)
from app.meetings.models import Meeting, Occurrence, OccurrenceStatus
from app.meetings.service import BookingRefused
from app.sites import queries as sites_queries
from app.sites import scope as scopes
from app.sites import service as sites_service
from app.sites import tree as sites_tree
from app.sites.models import Bridge, Endpoint, Site, Status
from app.sites.scope import request_scope
from app.web.access import login_required_only, require
from app.web.pagination import paginate_request

bp = Blueprint("meetings", __name__, url_prefix="/meetings")


@bp.app_template_filter("meeting_label")
def meeting_label(value: Any) -> str:
    """The translated label of an occurrence status, a classification or a frequency."""
    for labels in (STATUS_LABELS, CLASSIFICATION_LABELS, FREQUENCY_LABELS):
        if value in labels:
            return str(labels[value])
    return str(value or "")


@bp.app_template_filter("rule_in_words")
def rule_in_words(rrule: str) -> str:
    """A series' RFC 5545 rule as the secretariat would say it ("Every 2 weeks until 30/06/2025")."""
    if not rrule:
        return _("Single meeting")
    parts = dict(p.split("=", 1) for p in rrule.split(";") if "=" in p)
    n = int(parts.get("INTERVAL", "1"))
    freq = parts.get("FREQ", "")
    # "Every day" and "every 2 days" are different words in Vietnamese ("hằng ngày", "2 ngày một lần"), which
    # has one plural form: hence a sentence for an interval of 1 and another for the others, not ngettext.
    if "COUNT" in parts:
        count = int(parts["COUNT"])
        if n == 1:
            texts = {"DAILY": _("Every day, %(count)s times", count=count),
                     "WEEKLY": _("Every week, %(count)s times", count=count),
                     "MONTHLY": _("Every month, %(count)s times", count=count)}
        else:
            texts = {"DAILY": _("Every %(num)d days, %(count)s times", num=n, count=count),
                     "WEEKLY": _("Every %(num)d weeks, %(count)s times", num=n, count=count),
                     "MONTHLY": _("Every %(num)d months, %(count)s times", num=n, count=count)}
    elif "UNTIL" in parts:
        until = dt.datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        day = format_date(until.astimezone(_zone()).date(), "dd/MM/yyyy")
        if n == 1:
            texts = {"DAILY": _("Every day until %(until)s", until=day),
                     "WEEKLY": _("Every week until %(until)s", until=day),
                     "MONTHLY": _("Every month until %(until)s", until=day)}
        else:
            texts = {"DAILY": _("Every %(num)d days until %(until)s", num=n, until=day),
                     "WEEKLY": _("Every %(num)d weeks until %(until)s", num=n, until=day),
                     "MONTHLY": _("Every %(num)d months until %(until)s", num=n, until=day)}
    elif n == 1:
        texts = {"DAILY": _("Every day"), "WEEKLY": _("Every week"), "MONTHLY": _("Every month")}
    else:
        texts = {"DAILY": _("Every %(num)d days", num=n), "WEEKLY": _("Every %(num)d weeks", num=n),
                 "MONTHLY": _("Every %(num)d months", num=n)}
    return texts.get(freq, rrule)


@bp.app_template_filter("localclock")
def localclock(value: dt.datetime | None) -> str:
    """Only the local time of day, for calendar cells and the end of a span."""
    return format_time(value, "HH:mm") if value is not None else ""


@bp.app_template_filter("timespan")
def timespan(period: Any) -> str:
    """The local date with the start and end times of an occurrence, or of anything else with starts_at and
    ends_at ("8/12/26, 14:00–15:30")."""
    return _("%(date)s, %(start)s–%(end)s", date=format_date(period.starts_at, "EEE dd/MM/yyyy"),
             start=format_time(period.starts_at, "HH:mm"), end=format_time(period.ends_at, "HH:mm"))


# ---------------------------------------------------------------- shared by the views below

def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def _viewer_site() -> int | None:
    """Staff see every meeting; site staff only their own site's (None means no limit)."""
    if not (role_can(current_user.role, "meetings.view") or role_can(current_user.role, "meetings.attend")):
        abort(403)
    return queries.own_site_id(current_user)


def _date_arg(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None


def _today() -> dt.date:
    return utcnow().astimezone(_zone()).date()


def _fill_choices(form: ProposalForm) -> None:
    session = db.session
    # A scoped secretariat chooses among its scope's sites, or every site where its province lets it invite
    # outside (the booking still refuses a host outside).
    scope = request_scope()
    limit = None if scopes.may_invite_outside(session, scope) else scope
    sites = sorted(session.scalars(sa.select(Site).where(Site.status != Status.RETIRED, scopes.within(limit, Site.id))),
                   key=_tree_order)
    rooms = sorted(session.scalars(sa.select(Endpoint).join(Site, Endpoint.site_id == Site.id)
                                   .where(Endpoint.status == Status.ACTIVE, scopes.within(limit, Site.id))),
                   key=lambda e: (_tree_order(e.site), e.room_name))
    bridges = list(session.scalars(sa.select(Bridge).where(Bridge.status == Status.ACTIVE).order_by(Bridge.name)))
    form.fill_choices(sites, sites_service.list_levels(session), rooms, bridges,
                      sites_queries.parent_sites(session, limit))
    if form.host_site_id.data is None and sites:
        roots = [s for s in sites if s.id == (scope.site.id if scope else None) or s.parent_id is None]
        form.host_site_id.data = (roots or sites)[0].id  # the province hall


def _tree_order(site: Site) -> tuple[int, ...]:
    """Parents before their children, siblings by id (the materialised path, compared as numbers)."""
    return tuple(sites_tree.path_ids(site))


def _prefill_time(form: ProposalForm) -> None:
    """A new form proposes the next working day, from the start of the working day, for an hour."""
    if form.date.data is None:
        hours = WorkingHours.from_settings(current_app.config)
        day = _today() + dt.timedelta(days=1)
        while day.weekday() not in hours.days:
            day += dt.timedelta(days=1)
        form.date.data = day
        form.start_time.data = form.start_time.data or hours.start
        start = dt.datetime.combine(day, form.start_time.data)
        form.end_time.data = form.end_time.data or (start + dt.timedelta(hours=1)).time()


def _refused(error: DomainError, form: FlaskForm) -> list[tuple[dt.datetime, list[Any]]]:
    """Roll back what the service began; put its reasons on the form; return the clashes to show."""
    db.session.rollback()
    put_errors(form, error.fields)
    form.form_errors.insert(0, error.message)
    return error.clashes if isinstance(error, BookingRefused) else []


# ---------------------------------------------------------------- lists and calendars

@bp.get("/")
@login_required_only
def meeting_list() -> ResponseReturnValue:
    own = _viewer_site()
    status = request.args.get("status", "")
    f = queries.MeetingFilter(q=request.args.get("q", "").strip(),
                              status=status if status in {s.value for s in OccurrenceStatus} else "",
                              within=None if own else request.args.get("within", type=int),
                              site_id=None if own else request.args.get("site", type=int), viewer_site_id=own,
                              scope=request_scope())
    page = paginate_request(queries.meeting_query(db.session, f))
    return render_template("meetings/list.html", page=page, f=f, statuses=list(OccurrenceStatus),
                           summaries=queries.summaries(db.session, page.items),
                           parents=[] if own else sites_queries.parent_sites(db.session, f.scope),
                           all_sites=[] if own else sites_queries.site_options(db.session, scope=f.scope),
                           own_site=db.session.get(Site, own) if own else None)


@bp.get("/calendar")
@login_required_only
def calendar_view() -> ResponseReturnValue:
    own = _viewer_site()
    view = request.args.get("view", "week")
    view = view if view in queries.VIEWS else "week"
    rng = queries.CalendarRange.of(view, _date_arg("date") or _today())
    zone = _zone()
    start, end = rng.bounds(zone)
    args = request.args
    within, site_id = (None, None) if own else (args.get("within", type=int), args.get("site", type=int))
    scope = request_scope()
    occurrences = queries.occurrences_between(db.session, start, end, within=within, site_id=site_id,
                                              viewer_site_id=own, scope=scope)
    by_day = queries.by_local_day(occurrences, zone)
    hours = WorkingHours.from_settings(current_app.config)
    first_hour = min([hours.start.hour] + [o.starts_at.astimezone(zone).hour for o in occurrences])
    last_hour = max([hours.end.hour] + [o.starts_at.astimezone(zone).hour for o in occurrences])

    def nav(**changes: Any) -> str:
        args = {k: v for k, v in request.args.items() if v}
        args.update(changes)
        return url_for(".calendar_view", **args)

    return render_template("meetings/calendar.html", rng=rng, by_day=by_day, today=_today(), nav=nav,
                           grid=queries.hour_grid(rng.days, by_day, zone, first_hour),
                           hours=range(first_hour, last_hour + 1), within=within, site_id=site_id,
                           parents=[] if own else sites_queries.parent_sites(db.session, scope),
                           all_sites=[] if own else sites_queries.site_options(db.session, scope=scope),
                           chosen=db.session.get(Site, site_id or within or own) if (site_id or within or own)
                           else None)


@bp.get("/sites/<int:site_id>/schedule")
@login_required_only
def site_schedule(site_id: int) -> ResponseReturnValue:
    own = _viewer_site()
    if own is not None and own != site_id:
        abort(403)
    site = scopes.get_visible(db.session, request_scope(), Site, site_id, _("No site with id %(id)s.", id=site_id))
    since = _date_arg("from") or _today()
    start = dt.datetime.combine(since, dt.time(0), tzinfo=_zone())
    return render_template("meetings/site_schedule.html", site=site, since=since,
                           participations=queries.site_schedule(db.session, site, start))


# ---------------------------------------------------------------- booking and availability

@bp.route("/new", methods=["GET", "POST"])
@require("meetings.book")
def book() -> ResponseReturnValue:
    # A GET with arguments comes from the availability page's "book this slot": the form starts from them.
    form = BookingForm(request.args) if request.method == "GET" and request.args else BookingForm()
    _fill_choices(form)
    if request.method == "GET":
        _prefill_time(form)
        return render_template("meetings/form.html", form=form, clashes=[])
    if not form.validate():
        return render_template("meetings/form.html", form=form, clashes=[]), 422
    try:
        meeting = service.book_meeting(db.session, form.to_request(), created_by_id=current_user.id,
                                       scope=request_scope())
    except DomainError as error:
        clashes = _refused(error, form)
        return render_template("meetings/form.html", form=form, clashes=clashes), error.status
    skipped = sum(1 for o in meeting.occurrences if o.status is OccurrenceStatus.CANCELLED)
    if meeting.occurrences and meeting.occurrences[0].status is OccurrenceStatus.DRAFT:
        flash(_("The meeting is saved as a draft; it holds nothing until it is scheduled."), "success")
    elif skipped:
        flash(ngettext("The meeting is booked; %(num)d clashing occurrence was skipped.",
                       "The meeting is booked; %(num)d clashing occurrences were skipped.", skipped), "success")
    else:
        flash(_("The meeting is booked and the sites will be invited."), "success")
    return redirect(url_for(".meeting_detail", meeting_id=meeting.id))


@bp.get("/availability")
@require("meetings.view")
def availability() -> ResponseReturnValue:
    form = AvailabilityForm(request.args) if request.args else AvailabilityForm()
    _fill_choices(form)
    result = None
    if not request.args:
        _prefill_time(form)
    elif form.validate():
        try:
            result = check_availability(db.session, form.to_request(),
                                        WorkingHours.from_settings(current_app.config))
        except DomainError as error:
            _refused(error, form)
            return render_template("meetings/availability.html", form=form, result=None, notes=NOTES), error.status
    else:
        return render_template("meetings/availability.html", form=form, result=None, notes=NOTES), 422

    def book_slot(starts_at: dt.datetime, ends_at: dt.datetime) -> str:
        """The booking form, filled with everything asked here and the slot's times."""
        start, end = starts_at.astimezone(_zone()), ends_at.astimezone(_zone())
        args = request.args.to_dict(flat=False)
        args.update({"date": [start.date().isoformat()], "start_time": [start.strftime("%H:%M")],
                     "end_time": [end.strftime("%H:%M")]})
        return url_for(".book", **args)

    return render_template("meetings/availability.html", form=form, result=result, book_slot=book_slot,
                           notes=NOTES)


# ---------------------------------------------------------------- a meeting's page

@bp.get("/<int:meeting_id>")
@login_required_only
def meeting_detail(meeting_id: int) -> ResponseReturnValue:
    own = _viewer_site()
    meeting = queries.visible_meeting(db.session, current_user, meeting_id)
    queries.meeting_with_details(db.session, meeting, participations=False)
    focus = queries.focus(meeting, request.args.get("occurrence", type=int))
    if focus is not None:
        queries.with_sites(db.session, focus)
    parent, children = queries.split_relatives(db.session, meeting)
    return render_template("meetings/detail.html", meeting=meeting, focus=focus, parent=parent, children=children,
                           own_site_id=own, now=utcnow(),
                           agenda_url=url_for("agenda.agenda_page", meeting_id=meeting.id),
                           # the calendar's part: the invitations sent and the attendance buttons
                           calendar=signals.page_extras(db.session, meeting, current_user, deliveries=own is None))


def _occurrence(occurrence_id: int) -> Occurrence:
    return service.get_occurrence(db.session, occurrence_id, request_scope())


@bp.route("/occurrences/<int:occurrence_id>/move", methods=["GET", "POST"])
@require("meetings.book")
def move_occurrence(occurrence_id: int) -> ResponseReturnValue:
    occurrence = _occurrence(occurrence_id)
    meeting = occurrence.meeting
    form = MoveForm()
    if request.method == "GET":
        form.fill_from(occurrence.starts_at, occurrence.ends_at)
        return render_template("meetings/move.html", form=form, occurrence=occurrence, meeting=meeting, clashes=[])
    if not form.validate():
        return render_template("meetings/move.html", form=form, occurrence=occurrence, meeting=meeting,
                               clashes=[]), 422
    starts_at, ends_at = form.times()
    try:
        target = service.move_occurrence(db.session, occurrence, starts_at, ends_at, following=form.following.data)
    except DomainError as error:
        clashes = _refused(error, form)  # the rollback expires occurrence and meeting; they reload as they were
        return render_template("meetings/move.html", form=form, occurrence=occurrence, meeting=meeting,
                               clashes=clashes), error.status
    flash(_("The meeting is moved and the sites will be told."), "success")
    return redirect(url_for(".meeting_detail", meeting_id=target.id, occurrence=occurrence.id))


@bp.route("/occurrences/<int:occurrence_id>/cancel", methods=["GET", "POST"])
@require("meetings.book")
def cancel_occurrence(occurrence_id: int) -> ResponseReturnValue:
    occurrence = _occurrence(occurrence_id)
    meeting = occurrence.meeting
    form = CancelForm()
    if request.method == "POST" and form.validate():
        try:
            service.cancel_occurrence(db.session, occurrence, following=form.following.data)
        except DomainError as error:
            _refused(error, form)
            return _confirm_page(form, meeting, occurrence, "cancel_occurrence"), error.status
        flash(_("Cancelled; the sites will be told."), "success")
        return redirect(url_for(".meeting_detail", meeting_id=meeting.id))
    return _confirm_page(form, meeting, occurrence, "cancel_occurrence")


@bp.route("/<int:meeting_id>/cancel", methods=["GET", "POST"])
@require("meetings.book")
def cancel_meeting(meeting_id: int) -> ResponseReturnValue:
    meeting = service.get_meeting(db.session, meeting_id, request_scope())
    form = FlaskForm()
    if request.method == "POST" and form.validate():
        try:
            service.cancel_meeting(db.session, meeting)
        except DomainError as error:
            _refused(error, form)
            return _confirm_page(form, service.get_meeting(db.session, meeting_id), None, "cancel_meeting"), \
                error.status
        flash(_("The whole meeting is cancelled; the sites will be told."), "success")
        return redirect(url_for(".meeting_detail", meeting_id=meeting.id))
    return _confirm_page(form, meeting, None, "cancel_meeting")


@bp.route("/<int:meeting_id>/schedule", methods=["GET", "POST"])
@require("meetings.book")
def schedule_draft(meeting_id: int) -> ResponseReturnValue:
    meeting = service.get_meeting(db.session, meeting_id, request_scope())
    form = FlaskForm()
    if request.method == "POST" and form.validate():
        try:
            service.schedule_draft(db.session, meeting)
        except DomainError as error:
            clashes = _refused(error, form)
            return _confirm_page(form, service.get_meeting(db.session, meeting_id), None, "schedule_draft",
                                 clashes), error.status
        flash(_("The meeting is scheduled and the sites will be invited."), "success")
        return redirect(url_for(".meeting_detail", meeting_id=meeting.id))
    return _confirm_page(form, meeting, None, "schedule_draft")


def _confirm_page(form: FlaskForm, meeting: Meeting, occurrence: Occurrence | None, action: str,
                  clashes: list[Any] | None = None) -> str:
    return render_template("meetings/confirm.html", form=form, meeting=meeting, occurrence=occurrence,
                           action=action, clashes=clashes or [])
