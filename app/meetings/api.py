"""The meetings' JSON API under /api/v1/meetings: list, show, book, move, cancel, schedule a draft, availability.

Thin views, as in app.sites.api: the schemas (app.meetings.schemas) parse, app.meetings.service changes,
app.meetings.queries and app.meetings.availability read, the request's commit point commits. A refused
booking (or move, or scheduling) answers 409 in the one error format, with every clash of every occurrence
in words in `error.fields.clashes` and as objects in `error.clashes` (app.extensions.ErrorDetail):
[{"starts_at", "clashes": [{"kind", "resource", "message", "meeting_id", "meeting_title"}]}]. Times are ISO
8601 with an offset (see app.meetings.schemas). Site staff (whose role
has meetings.attend) list and read only the meetings their site takes part in; they confirm their site's
attendance through the calendar's API (app.calendar.api), under the same prefix.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, jsonify, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint

from app.auth.permissions import role_can
from app.db import db
from app.errors import Invalid
from app.meetings import queries, schemas, service
from app.meetings.availability import Availability, WorkingHours, check_availability
from app.meetings.models import Meeting
from app.meetings.service import BookingRequest, Recurrence
from app.sites.scope import request_scope
from app.web.access import login_required_only, require
from app.web.api import ApiBlueprint
from app.web.pagination import paginate

Args = dict[str, Any]

meetings = ApiBlueprint("meetings", "Meetings: booking with clash checks, series, moves, cancellations, availability.")


@meetings.errorhandler(service.BookingRefused)
def _refused(error: service.BookingRefused) -> tuple[Response, int]:
    # The app's DomainError handler renders `fields` only; a refusal also carries its clashes as objects
    # (error.clashes, as ErrorDetail documents). The request's commit point rolls back on the 409.
    return jsonify(error.to_dict()), error.status


def _viewer_site() -> int | None:
    """Staff see every meeting, site staff their own site's (None: no limit); other roles none."""
    if not (role_can(current_user.role, "meetings.view") or role_can(current_user.role, "meetings.attend")):
        abort(403)
    return queries.own_site_id(current_user)


def _booking_request(data: Args) -> BookingRequest:
    data = dict(data)
    rooms = {r["site_id"]: r["endpoint_id"] for r in data.pop("rooms", [])}
    recurrence = data.pop("recurrence", None)
    data.pop("suggestions", None)
    host = data.pop("host_site_id", None) or queries.default_host_id(db.session)
    if host is None:
        raise Invalid(_("There is no site to host the meeting."), {"host_site_id": [_("required")]})
    return BookingRequest(title=data.pop("title", ""), host_site_id=host, rooms=rooms,
                          recurrence=Recurrence(**recurrence) if recurrence else None, **data)


def _listed(meeting: Meeting, summary: queries.Summary) -> Args:
    return {"id": meeting.id, "uid": meeting.uid, "title": meeting.title, "chair": meeting.chair,
            "host_site_id": meeting.host_site_id, "host_site_code": meeting.host_site.code,
            "classification": meeting.classification, "rrule": meeting.rrule, "occurrence_count": summary.count,
            "next_occurrence": summary.next}


def _shown(meeting: Meeting) -> Meeting:
    return queries.meeting_with_details(db.session, meeting)


@meetings.route("", endpoint="collection")
class MeetingCollection(MethodView):
    @login_required_only
    @meetings.arguments(schemas.MeetingQuery, location="query")
    @meetings.response(200, schemas.MeetingPage)
    @meetings.fails(404, 422)
    def get(self, args: Args) -> Args:
        """List meetings, those still to come first (soonest first): search, status, a subtree, a site."""
        f = queries.MeetingFilter(q=args.get("q", "").strip(), status=args["status"].value if "status" in args
                                  else "", within=args.get("within"), site_id=args.get("site_id"),
                                  viewer_site_id=_viewer_site(), scope=request_scope())
        stmt = queries.meeting_query(db.session, f)
        page = paginate(stmt, args["page"], args["page_size"])
        found = queries.summaries(db.session, page.items)
        page.items = [_listed(m, found[m.id]) for m in page.items]
        return page.as_api()

    @require("meetings.book")
    @meetings.arguments(schemas.BookingIn)
    @meetings.response(201, schemas.MeetingOut)
    @meetings.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Book a meeting (or a series, or a draft); 409 with every clash of every occurrence when refused."""
        meeting = service.book_meeting(db.session, _booking_request(data), created_by_id=current_user.id,
                                       scope=request_scope())
        return _shown(meeting), 201, {"Location": url_for(".item", meeting_id=meeting.id)}


@meetings.route("/<int:meeting_id>", endpoint="item")
class MeetingItem(MethodView):
    @login_required_only
    @meetings.response(200, schemas.MeetingOut)
    @meetings.fails(404)
    def get(self, meeting_id: int) -> Meeting:
        """Show a meeting with its occurrences, each with its sites, rooms, bridge and attendance."""
        _viewer_site()
        return _shown(queries.visible_meeting(db.session, current_user, meeting_id))


@meetings.route("/<int:meeting_id>/cancel", methods=["POST"], endpoint="cancel")
@require("meetings.book")
@meetings.arguments(schemas.Empty, required=False)  # no body, or {}: the document says so
@meetings.response(200, schemas.MeetingOut)
@meetings.fails(404, 409, 422)
def cancel_meeting(_data: Args, meeting_id: int) -> Meeting:
    """Cancel every occurrence still to come; the sites receive a cancellation."""
    return _shown(service.cancel_meeting(db.session, service.get_meeting(db.session, meeting_id, request_scope())))


@meetings.route("/<int:meeting_id>/schedule", methods=["POST"], endpoint="schedule")
@require("meetings.book")
@meetings.arguments(schemas.Empty, required=False)
@meetings.response(200, schemas.MeetingOut)
@meetings.fails(404, 409, 422)
def schedule_draft(_data: Args, meeting_id: int) -> Meeting:
    """Check a draft's occurrences and make them hold their resources; 409 with the clashes when refused."""
    return _shown(service.schedule_draft(db.session, service.get_meeting(db.session, meeting_id, request_scope())))


@meetings.route("/occurrences/<int:occurrence_id>/move", methods=["POST"], endpoint="move_occurrence")
@require("meetings.book")
@meetings.arguments(schemas.MoveIn)
@meetings.response(200, schemas.MeetingOut)
@meetings.fails(404, 409, 422)
def move_occurrence(data: Args, occurrence_id: int) -> Meeting:
    """Move one occurrence, or it and all later ones (answered with the new series, which has its own UID)."""
    occurrence = service.get_occurrence(db.session, occurrence_id, request_scope())
    return _shown(service.move_occurrence(db.session, occurrence, data["starts_at"], data["ends_at"],
                                          following=data["following"]))


@meetings.route("/occurrences/<int:occurrence_id>/cancel", methods=["POST"], endpoint="cancel_occurrence")
@require("meetings.book")
@meetings.arguments(schemas.CancelIn)
@meetings.response(200, schemas.MeetingOut)
@meetings.fails(404, 409, 422)
def cancel_occurrence(data: Args, occurrence_id: int) -> Meeting:
    """Cancel one occurrence, or it and all later ones (the series then ends before it)."""
    occurrence = service.get_occurrence(db.session, occurrence_id, request_scope())
    return _shown(service.cancel_occurrence(db.session, occurrence, following=data["following"]))


@meetings.route("/availability", methods=["POST"], endpoint="availability")
@require("meetings.view")
@meetings.arguments(schemas.AvailabilityIn)
@meetings.response(200, schemas.AvailabilityOut)
@meetings.fails(404, 422)
def availability(data: Args) -> Availability:
    """What a proposed meeting finds free or taken (rooms, bridge ports, link bandwidth at the peak), and the
    next free slots within working hours."""
    return check_availability(db.session, _booking_request({**data, "title": ""}),
                              WorkingHours.from_settings(current_app.config), count=data["suggestions"])


blueprints: list[Blueprint] = [meetings]
