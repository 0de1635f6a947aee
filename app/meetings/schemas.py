"""Schemas of the meetings' JSON API: what a request may send (unknown fields refused) and what it gets back.

Times: the API takes ISO 8601 with an explicit offset (`2025-03-03T08:00:00+07:00`, or `…Z`) and refuses a
time without one, since a bare "08:00" could mean Hanoi or UTC; it answers in UTC. A recurrence's `until`
is a plain date, the last local day on which an occurrence may start.
"""

from __future__ import annotations

import marshmallow as ma
from flask_babel import gettext as _
from marshmallow import fields, validate

from app.meetings.availability import NOTES, SEARCH_DAYS, SUGGESTIONS
from app.meetings.models import Classification, OccurrenceStatus
from app.meetings.service import MAX_OCCURRENCES, Frequency
from app.web.schemas import Input, Page, PageQuery, Text, UTCDateTime

_AWARE = "ISO 8601 with its offset, e.g. 2025-03-03T08:00:00+07:00; a time without an offset is refused."


def _id(**kwargs: object) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1), **kwargs)


def _aware(description: str, **kwargs: object) -> fields.AwareDateTime:
    return fields.AwareDateTime(metadata={"description": f"{description} {_AWARE}"}, **kwargs)


# ---------------------------------------------------------------- input

class RoomChoice(Input):
    site_id = _id(required=True)
    endpoint_id = _id(required=True, metadata={"description": "One of the site's rooms (endpoints)."})


class RecurrenceIn(Input):
    frequency = fields.Enum(Frequency, by_value=fields.String, required=True)
    interval = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 99))
    until = fields.Date(metadata={"description": "The last local day on which an occurrence may start."})
    count = fields.Integer(strict=True, validate=validate.Range(1, MAX_OCCURRENCES))

    @ma.validates_schema
    def _one_end(self, data: dict, **_kwargs: object) -> None:
        if ("until" in data) == ("count" in data):
            raise ma.ValidationError(_("Give either until or count."), "until")


class ProposalIn(Input):
    """Who takes part, when, and with what."""

    host_site_id = _id(metadata={"description": "The host site; by default the root of the tree (the province)."})
    site_ids = fields.List(_id(), load_default=list, metadata={"description": "Sites picked one by one."})
    subtree_ids = fields.List(_id(), load_default=list, metadata={
        "description": "Sites taking part with every active site under them (a district and its communes)."})
    level_codes = fields.List(fields.String(validate=validate.Length(1, 32)), load_default=list, metadata={
        "description": "Every active site of these levels (see /api/v1/levels)."})
    rooms = fields.List(fields.Nested(RoomChoice), load_default=list, metadata={
        "description": "Rooms chosen for some sites; VCOps picks a free room for the others."})
    starts_at = _aware("Start of the meeting.", required=True)
    ends_at = _aware("End of the meeting.", required=True)
    bridge_id = _id(allow_none=True, load_default=None, metadata={
        "description": "The bridge (MCU); by default VCOps picks one with enough free ports."})
    setup_minutes = fields.Integer(strict=True, load_default=60, validate=validate.Range(0, 480), metadata={
        "description": "Setup buffer before the start for the test call; it holds room, port and bandwidth."})
    bitrate_kbps = fields.Integer(strict=True, load_default=2000, validate=validate.Range(64, 20000), metadata={
        "description": "Video bitrate per site; 20% overhead is added on every link."})

    @ma.validates_schema
    def _one_room_per_site(self, data: dict, **_kwargs: object) -> None:
        sites = [r["site_id"] for r in data.get("rooms", [])]
        if len(sites) != len(set(sites)):
            raise ma.ValidationError(_("At most one room per site."), "rooms")


class BookingIn(ProposalIn):
    title = fields.String(required=True, validate=validate.Length(1, 300))
    chair = fields.String(load_default="", validate=validate.Length(max=200))
    notes = Text(load_default="", validate=validate.Length(max=10_000), metadata={
        "description": "Several lines allowed; the other text fields are one line each."})
    classification = fields.Enum(Classification, by_value=fields.String, load_default=Classification.NORMAL,
                                 metadata={"description": "restricted: documents are never attached to email."})
    recurrence = fields.Nested(RecurrenceIn, allow_none=True, load_default=None)
    skip_clashing = fields.Boolean(load_default=False, metadata={
        "description": "Book the free occurrences of a series and skip the clashing ones (refused if all clash)."})
    draft = fields.Boolean(load_default=False, metadata={"description": "Holds nothing and sends nothing."})


class AvailabilityIn(ProposalIn):
    suggestions = fields.Integer(strict=True, load_default=SUGGESTIONS, validate=validate.Range(1, 10), metadata={
        "description": f"How many free slots to suggest, searching {SEARCH_DAYS} days from the proposed start "
                       "within working hours."})


class MoveIn(Input):
    starts_at = _aware("New start.", required=True)
    ends_at = _aware("New end.", required=True)
    following = fields.Boolean(load_default=False, metadata={
        "description": "Move this occurrence and all later ones by the same shift (a new series from here)."})


class CancelIn(Input):
    following = fields.Boolean(load_default=False, metadata={
        "description": "Cancel this occurrence and all later ones (the series then ends before it)."})


class Empty(Input):
    """No body, or an empty object."""


class MeetingQuery(PageQuery):
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Text in title, chair or notes."})
    status = fields.Enum(OccurrenceStatus, by_value=fields.String, metadata={
        "description": "Meetings with an occurrence in this state."})
    within = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "A site id: meetings in which a site of its subtree takes part."})
    site_id = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "Meetings in which this site takes part."})


# ---------------------------------------------------------------- output

class ParticipationOut(ma.Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    site_code = fields.String(attribute="site.code")
    site_name = fields.String(attribute="site.name")
    endpoint_id = fields.Integer(allow_none=True)
    room_name = fields.String(attribute="endpoint.room_name", allow_none=True, dump_default=None)
    confirmed_at = UTCDateTime(allow_none=True)
    confirmed_by = fields.String()


class BridgeRef(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    sip_address = fields.String()


class OccurrenceBrief(ma.Schema):
    id = fields.Integer()
    meeting_id = fields.Integer()
    recurrence_id = UTCDateTime(allow_none=True, metadata={"description": "iCalendar RECURRENCE-ID."})
    setup_starts_at = UTCDateTime()
    starts_at = UTCDateTime()
    ends_at = UTCDateTime()
    status = fields.Enum(OccurrenceStatus, by_value=fields.String)
    sequence = fields.Integer()
    bridge = fields.Nested(BridgeRef, allow_none=True)


class OccurrenceOut(OccurrenceBrief):
    participations = fields.List(fields.Nested(ParticipationOut))


class MeetingOut(ma.Schema):
    id = fields.Integer()
    uid = fields.String(metadata={"description": "iCalendar UID of the series."})
    title = fields.String()
    chair = fields.String()
    host_site_id = fields.Integer()
    host_site_code = fields.String(attribute="host_site.code")
    classification = fields.Enum(Classification, by_value=fields.String)
    notes = fields.String()
    setup_minutes = fields.Integer()
    bitrate_kbps = fields.Integer()
    rrule = fields.String(metadata={"description": "RFC 5545 RRULE; empty for a single meeting."})
    sequence = fields.Integer()
    conference_number = fields.String()
    pin = fields.String()
    split_from_id = fields.Integer(allow_none=True, metadata={
        "description": "The series this one continues, after a 'this and following' change."})
    created_at = UTCDateTime()
    occurrences = fields.List(fields.Nested(OccurrenceOut))


class MeetingListItem(ma.Schema):
    id = fields.Integer()
    uid = fields.String()
    title = fields.String()
    chair = fields.String()
    host_site_id = fields.Integer()
    host_site_code = fields.String()
    classification = fields.Enum(Classification, by_value=fields.String)
    rrule = fields.String()
    occurrence_count = fields.Integer()
    next_occurrence = fields.Nested(OccurrenceBrief, allow_none=True, metadata={
        "description": "The next occurrence not cancelled and not over; null when none is left."})


class MeetingPage(Page):
    items = fields.List(fields.Nested(MeetingListItem))


class HolderOut(ma.Schema):
    kind = fields.String(metadata={"description": "meeting, maintenance or retired."})
    resource = fields.String()
    meeting_id = fields.Integer(allow_none=True)
    title = fields.String(metadata={"description": "The meeting's title, or the maintenance window's reason."})
    starts_at = UTCDateTime(allow_none=True)
    ends_at = UTCDateTime(allow_none=True)


class ClashOut(ma.Schema):
    kind = fields.String()
    resource = fields.String()
    message = fields.String()
    meeting_id = fields.Integer(allow_none=True)
    meeting_title = fields.String()


class SiteStateOut(ma.Schema):
    site_id = fields.Integer(attribute="site.id")
    site_code = fields.String(attribute="site.code")
    site_name = fields.String(attribute="site.name")
    free = fields.Boolean()
    room_id = fields.Integer(attribute="room.id", allow_none=True, dump_default=None)
    room_name = fields.String(attribute="room.room_name", allow_none=True, dump_default=None)
    holders = fields.List(fields.Nested(HolderOut))


class BridgeStateOut(ma.Schema):
    bridge_id = fields.Integer(attribute="bridge.id")
    name = fields.String(attribute="bridge.name")
    total_ports = fields.Integer(attribute="bridge.total_ports")
    used_ports = fields.Integer(metadata={"description": "In use at the busiest instant of the window."})
    free_ports = fields.Integer()
    needed_ports = fields.Integer()
    fits = fields.Boolean()
    holders = fields.List(fields.Nested(HolderOut))


class LinkStateOut(ma.Schema):
    link_id = fields.Integer(attribute="link.id")
    code = fields.String(attribute="link.code")
    bandwidth_kbps = fields.Integer(attribute="link.bandwidth_kbps", metadata={"description": "Contracted."})
    used_kbps = fields.Integer(metadata={"description": "Booked at the busiest instant of the window."})
    needed_kbps = fields.Integer(metadata={"description": "This meeting's load on the link."})
    fits = fields.Boolean()
    holders = fields.List(fields.Nested(HolderOut))


class SlotOut(ma.Schema):
    setup_starts_at = UTCDateTime()
    starts_at = UTCDateTime()
    ends_at = UTCDateTime()


class NoteOut(ma.Schema):
    code = fields.String()
    message = fields.String()


class AvailabilityOut(ma.Schema):
    setup_starts_at = UTCDateTime(attribute="window.setup_starts_at")
    starts_at = UTCDateTime(attribute="window.starts_at")
    ends_at = UTCDateTime(attribute="window.ends_at")
    free = fields.Boolean(metadata={"description": "Whether the meeting can be booked at the proposed time."})
    clashes = fields.List(fields.Nested(ClashOut), metadata={"description": "What refuses the proposed time."})
    sites = fields.List(fields.Nested(SiteStateOut))
    bridges = fields.List(fields.Nested(BridgeStateOut))
    links = fields.List(fields.Nested(LinkStateOut), metadata={"description": "Every link on the sites' paths."})
    suggestions = fields.List(fields.Nested(SlotOut), metadata={
        "description": "The first free slots at or after the proposed start: the meeting within working hours on "
                       "a working day (its setup buffer may begin earlier), on a 30-minute grid from the start "
                       "of the working day."})
    searched_from = UTCDateTime()
    searched_until = UTCDateTime()
    notes = fields.Function(lambda a: [{"code": c, "message": str(NOTES[c])} for c in a.notes],
                            metadata={"type": "array", "items": {"type": "object"},
                                      "description": "Why no slot is suggested, when none is."})
