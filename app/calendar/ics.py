"""iCalendar objects of meetings (RFC 5545), as iTIP messages (RFC 5546) and as subscribed feeds.

A single meeting is one VEVENT. A series is its master VEVENT (RRULE from Meeting.rrule, EXDATE for the
instances that do not take place) and an override VEVENT (RECURRENCE-ID) for each occurrence that differs
from what the rule says (moved, another length, another bridge). The stored occurrences are the truth: the
rule is expanded here and reconciled with them, so the invite always shows exactly the occurrences VCOps
holds, whatever edits the series went through.

SEQUENCE: the master carries Meeting.sequence; an occurrence (an override, or the one event of a single
meeting) carries Meeting.sequence + Occurrence.sequence, so that a change to either raises it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress, vRecur

from app.meetings.models import Classification, Meeting, Occurrence, OccurrenceStatus
from app.sites.models import Bridge

TZID = "Asia/Ho_Chi_Minh"
LOCAL = ZoneInfo(TZID)
PRODID = "-//VCOps//Video conference meetings//VI"
# Occurrences that take place (or took place): shown in invites and feeds. Drafts and cancelled ones are not.
TAKING_PLACE = (OccurrenceStatus.SCHEDULED, OccurrenceStatus.IN_PROGRESS, OccurrenceStatus.COMPLETED)
MAX_EXPANSION = 1000  # a stored rule has COUNT or UNTIL (at most 365 occurrences); this only bounds a bad one


@dataclass(frozen=True)
class Party:
    name: str
    email: str

    def address(self) -> vCalAddress:
        address = vCalAddress(f"mailto:{self.email}")
        if self.name:
            address.params["CN"] = self.name
        return address


@dataclass
class EventDetails:
    """What every VEVENT of one calendar says besides its times, prepared by the caller (translated)."""

    organizer: Party
    url: str
    location: Callable[[Bridge | None], str]
    description: Callable[[Bridge | None, dt.datetime], str]  # (bridge, start) -> text
    attendees: Sequence[Party] = ()  # none in a feed (RFC 5546: PUBLISH carries no ATTENDEE)
    alarm: Callable[[dt.datetime], str] | None = None  # technical contacts: a reminder at the setup start
    stamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class SeriesLayout:
    """How the stored occurrences of a meeting map onto its rule."""

    dtstart: dt.datetime  # local (TZID) start of the master: the rule's first instance
    duration: dt.timedelta
    bridge: Bridge | None
    exdates: list[dt.datetime]  # instances of the rule that do not take place
    rdates: list[dt.datetime]  # occurrences the rule does not produce (kept, never lost)
    overrides: list[Occurrence]  # occurrences that differ from the master


def local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(LOCAL)


@functools.cache
def _vtimezone_ical() -> bytes:
    # Generated from the zoneinfo database; Vietnam has kept UTC+7 without daylight saving since 1975.
    zone = Timezone.from_tzid(TZID, first_date=dt.date(2000, 1, 1), last_date=dt.date(2100, 1, 1))
    zone.pop("COMMENT", None)
    return zone.to_ical()


def vtimezone() -> Timezone:
    return Timezone.from_ical(_vtimezone_ical())


def new_calendar(method: str, *, name: str = "") -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
        cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", "PT1H")
    cal.add_component(vtimezone())
    return cal


def to_bytes(cal: Calendar) -> bytes:
    """The calendar as RFC 5545 text: CRLF line endings, lines folded at 75 octets (icalendar does both)."""
    return cal.to_ical()


# ---------------------------------------------------------------- the series and its occurrences

def is_series(meeting: Meeting) -> bool:
    return bool(meeting.rrule)


def occurrence_sequence(meeting: Meeting, occurrence: Occurrence) -> int:
    return meeting.sequence + occurrence.sequence


def rule_instances(rrule: str, dtstart: dt.datetime) -> list[dt.datetime]:
    """The starts (UTC) the rule gives from this first start, expanded in local wall time as RFC 5545 does."""
    rule = du.rrulestr(rrule, dtstart=local(dtstart))
    starts = []
    for start in rule:
        if len(starts) >= MAX_EXPANSION:
            break
        starts.append(start.astimezone(dt.UTC))
    return starts


def series_layout(meeting: Meeting, taking_place: Sequence[Occurrence]) -> SeriesLayout:
    """Map the occurrences that take place onto the meeting's rule: EXDATE, RDATE and overrides."""
    everyone = [o for o in meeting.occurrences if o.recurrence_id is not None]
    anchors = [o for o in taking_place if o.recurrence_id is not None] or everyone
    if not anchors:
        raise ValueError(f"meeting {meeting.id} is a series without occurrences")
    first = min(o.recurrence_id for o in anchors)  # type: ignore[type-var]
    # The master's length and bridge are those most occurrences keep; the others become overrides.
    unmoved = [o for o in taking_place if o.starts_at == o.recurrence_id] or list(taking_place) or anchors
    (duration, bridge_id), _ = Counter((o.ends_at - o.starts_at, o.bridge_id) for o in unmoved).most_common(1)[0]
    bridge = next((o.bridge for o in unmoved if o.bridge_id == bridge_id), None)
    instances = rule_instances(meeting.rrule, first)
    by_rid = {o.recurrence_id: o for o in taking_place if o.recurrence_id is not None}
    exdates = [local(start) for start in instances if start not in by_rid]
    produced = set(instances)
    rdates = [local(rid) for rid in sorted(by_rid) if rid not in produced]
    overrides = [o for o in sorted(taking_place, key=lambda o: o.starts_at)
                 if o.recurrence_id is None or o.starts_at != o.recurrence_id
                 or o.ends_at - o.starts_at != duration or o.bridge_id != bridge_id]
    return SeriesLayout(local(first), duration, bridge, exdates, rdates, overrides)


# ---------------------------------------------------------------- events

def _event(meeting: Meeting, details: EventDetails, *, start: dt.datetime, end: dt.datetime, bridge: Bridge | None,
           sequence: int, status: str) -> Event:
    event = Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", details.stamp.astimezone(dt.UTC))
    event.add("sequence", sequence)
    event.add("dtstart", local(start))
    event.add("dtend", local(end))
    event.add("summary", meeting.title)
    location = details.location(bridge)
    if location:
        event.add("location", location)
    description = details.description(bridge, start)
    if description:
        event.add("description", description)
    event.add("url", details.url)
    event.add("organizer", details.organizer.address())
    for party in details.attendees:
        attendee = party.address()
        attendee.params.update({"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION",
                                "RSVP": "FALSE"})  # attendance is confirmed through VCOps, not by a reply
        event.add("attendee", attendee, encode=False)
    event.add("status", status)
    event.add("transp", "OPAQUE")
    if meeting.classification is Classification.RESTRICTED:
        event.add("class", "CONFIDENTIAL")
    event.add("created", meeting.created_at.astimezone(dt.UTC))
    if details.alarm is not None and status == "CONFIRMED" and meeting.setup_minutes:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", details.alarm(start))
        alarm.add("trigger", -dt.timedelta(minutes=meeting.setup_minutes))  # relative to DTSTART
        event.add_component(alarm)
    return event


def _occurrence_event(meeting: Meeting, occurrence: Occurrence, details: EventDetails, status: str) -> Event:
    event = _event(meeting, details, start=occurrence.starts_at, end=occurrence.ends_at, bridge=occurrence.bridge,
                   sequence=occurrence_sequence(meeting, occurrence), status=status)
    if is_series(meeting) and occurrence.recurrence_id is not None:
        event.add("recurrence-id", local(occurrence.recurrence_id))
    return event


def _master_event(meeting: Meeting, layout: SeriesLayout, details: EventDetails, status: str) -> Event:
    event = _event(meeting, details, start=layout.dtstart, end=layout.dtstart + layout.duration,
                   bridge=layout.bridge, sequence=meeting.sequence, status=status)
    event.add("rrule", vRecur.from_ical(meeting.rrule))
    if layout.exdates:
        event.add("exdate", layout.exdates)
    if layout.rdates:
        event.add("rdate", layout.rdates)
    return event


def meeting_events(meeting: Meeting, taking_place: Sequence[Occurrence], details: EventDetails) -> list[Event]:
    """The whole meeting as it stands: one VEVENT, or the master and its overrides."""
    if not taking_place:
        return []
    if not is_series(meeting):
        return [_occurrence_event(meeting, taking_place[0], details, "CONFIRMED")]
    layout = series_layout(meeting, taking_place)
    return [_master_event(meeting, layout, details, "CONFIRMED"),
            *(_occurrence_event(meeting, o, details, "CONFIRMED") for o in layout.overrides)]


def taking_place(occurrences: Iterable[Occurrence]) -> list[Occurrence]:
    return sorted((o for o in occurrences if o.status in TAKING_PLACE), key=lambda o: o.starts_at)


# ---------------------------------------------------------------- iTIP messages (RFC 5546)

def request(meeting: Meeting, details: EventDetails, occurrences: Sequence[Occurrence] | None = None) -> Calendar:
    """METHOD:REQUEST: the whole meeting, or (occurrences given, in a series) only those instances."""
    cal = new_calendar("REQUEST")
    if occurrences is None or not is_series(meeting):
        events = meeting_events(meeting, taking_place(meeting.occurrences), details)
    else:
        events = [_occurrence_event(meeting, o, details, "CONFIRMED") for o in taking_place(occurrences)]
    for event in events:
        cal.add_component(event)
    return cal


def cancel(meeting: Meeting, details: EventDetails, occurrences: Sequence[Occurrence] | None = None) -> Calendar:
    """METHOD:CANCEL: the whole meeting (same UID, higher SEQUENCE), or single instances (RECURRENCE-ID)."""
    cal = new_calendar("CANCEL")
    if occurrences is None or not is_series(meeting):
        if is_series(meeting):
            layout = series_layout(meeting, [])
            layout.exdates, layout.rdates = [], []  # the whole series goes: no instance needs naming
            cal.add_component(_master_event(meeting, layout, details, "CANCELLED"))
        else:
            cal.add_component(_occurrence_event(meeting, meeting.occurrences[0], details, "CANCELLED"))
    else:
        for occurrence in sorted(occurrences, key=lambda o: o.starts_at):
            cal.add_component(_occurrence_event(meeting, occurrence, details, "CANCELLED"))
    return cal


def publish(meetings: Iterable[tuple[Meeting, Sequence[Occurrence], EventDetails]], name: str) -> Calendar:
    """A subscribed feed (METHOD:PUBLISH): every meeting with the occurrences that take place."""
    cal = new_calendar("PUBLISH", name=name)
    for meeting, occurrences, details in meetings:
        for event in meeting_events(meeting, taking_place(occurrences), details):
            cal.add_component(event)
    return cal
