"""Forms of the meeting pages: booking (and its availability check), moving and cancelling an occurrence.

Times are typed as a local date with local start and end times (Asia/Ho_Chi_Minh) and handed to the service
as aware datetimes. The forms check types and ranges; app.meetings.service checks the rest (clashes, the
tree, recurrence), and its errors' field names map onto these fields through FIELD_ALIASES.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from app.config import local_zone
from app.meetings.booking import OVERHEAD
from app.meetings.models import Classification, OccurrenceStatus
from app.meetings.service import BookingRequest, Frequency, Recurrence
from app.sites.models import Bridge, Endpoint, Level, Site
from app.sites.tree import path_ids
from app.web.forms import CheckedForm, optional_int, strip

# The service's field names (BookingRequest, its errors) -> the form's.
FIELD_ALIASES = {"starts_at": "start_time", "ends_at": "end_time", "recurrence": "frequency"}

CLASSIFICATION_LABELS: dict[Any, Any] = {
    Classification.NORMAL: _l("normal"),
    Classification.RESTRICTED: _l("restricted"),
}
STATUS_LABELS: dict[Any, Any] = {
    OccurrenceStatus.DRAFT: _l("draft"),
    OccurrenceStatus.SCHEDULED: _l("scheduled"),
    OccurrenceStatus.IN_PROGRESS: _l("in progress"),
    OccurrenceStatus.COMPLETED: _l("completed"),
    OccurrenceStatus.CANCELLED: _l("cancelled"),
}
FREQUENCY_LABELS: dict[Any, Any] = {
    Frequency.DAILY: _l("daily"),
    Frequency.WEEKLY: _l("weekly"),
    Frequency.MONTHLY: _l("monthly"),
}


def _multi(label: Any, description: Any = "", coerce: Any = int) -> SelectMultipleField:
    return SelectMultipleField(label, coerce=coerce, description=description, validate_choice=True,
                               render_kw={"size": 10})


class ProposalForm(CheckedForm):
    """Who takes part, when, and with what: what both a booking and an availability check need."""

    host_site_id = SelectField(_l("Host site"), coerce=int, validators=[InputRequired()])
    site_ids = _multi(_l("Sites, one by one"), _l("Hold Ctrl (or ⌘) to pick several."))
    subtree_ids = _multi(_l("Whole subtrees"), _l("A district with all its communes, for example."))
    level_codes = _multi(_l("Every site of a level"), coerce=str)
    room_ids = _multi(_l("Rooms"), _l("Only where a site must use a given room; elsewhere VCOps picks a free one."))
    date = DateField(_l("Date"), validators=[InputRequired()])
    start_time = TimeField(_l("Starts (local time)"), validators=[InputRequired()])
    end_time = TimeField(_l("Ends (local time)"), validators=[InputRequired()])
    bridge_id = SelectField(_l("Bridge"), coerce=optional_int, default=None)
    setup_minutes = IntegerField(_l("Setup buffer (minutes)"), default=60, validators=[
        InputRequired(), NumberRange(0, 480)], description=_l("Before the start, for the technicians' test call."))
    bitrate_kbps = IntegerField(
        _l("Video bitrate per site (kbit/s)"), default=2000, validators=[InputRequired(), NumberRange(64, 20000)],
        description=_l("%(percent)s%% overhead is added on every link.", percent=round((OVERHEAD - 1) * 100)))

    def fill_choices(self, sites: Sequence[Site], levels: Sequence[Level], rooms: Sequence[Endpoint],
                     bridges: Sequence[Bridge], parents: Sequence[Site]) -> None:
        """Choices from the inventory: sites grouped under their top-level-but-one ancestor (the district)."""
        by_id = {s.id: s for s in sites}

        def group_of(site: Site) -> str:
            chain = path_ids(site)
            head = by_id.get(chain[1]) if len(chain) > 1 else by_id.get(chain[0])
            return head.name if head is not None else ""

        self.host_site_id.choices = [SelectChoice(str(s.id), f"{s.code} — {s.name}") for s in sites]
        self.site_ids.choices = [SelectChoice(str(s.id), f"{s.code} — {s.name}", optgroup=group_of(s))
                                 for s in sites]
        self.subtree_ids.choices = [SelectChoice(str(s.id), f"{s.code} — {s.name} ({s.level.name})")
                                    for s in parents]
        self.level_codes.choices = [SelectChoice(lv.code, lv.name) for lv in levels]
        self.room_ids.choices = [SelectChoice(str(e.id), e.room_name, optgroup=f"{e.site.code} — {e.site.name}")
                                 for e in rooms]
        self.bridge_id.choices = [SelectChoice("", _("VCOps picks a bridge with free ports"))] + [
            SelectChoice(str(b.id), _("%(name)s (%(ports)s ports)", name=b.name, ports=b.total_ports))
            for b in bridges]
        self._room_sites = {e.id: e.site_id for e in rooms}

    def validate_room_ids(self, field: SelectMultipleField) -> None:
        seen: set[int] = set()
        for endpoint_id in field.data or []:
            site_id = self._room_sites.get(endpoint_id)
            if site_id in seen:
                raise ValidationError(_("Choose at most one room per site."))
            seen.add(site_id)

    def validate_end_time(self, field: TimeField) -> None:
        if field.data and self.start_time.data and field.data <= self.start_time.data:
            raise ValidationError(_("The meeting must end after it starts."))

    def times(self) -> tuple[dt.datetime, dt.datetime]:
        zone = local_zone()
        return (dt.datetime.combine(self.date.data, self.start_time.data, tzinfo=zone),
                dt.datetime.combine(self.date.data, self.end_time.data, tzinfo=zone))

    def to_request(self, title: str = "") -> BookingRequest:
        starts_at, ends_at = self.times()
        return BookingRequest(
            title=title, host_site_id=self.host_site_id.data, starts_at=starts_at, ends_at=ends_at,
            site_ids=list(self.site_ids.data or []), subtree_ids=list(self.subtree_ids.data or []),
            level_codes=list(self.level_codes.data or []),
            rooms={self._room_sites[e]: e for e in self.room_ids.data or [] if e in self._room_sites},
            bridge_id=self.bridge_id.data, setup_minutes=self.setup_minutes.data, bitrate_kbps=self.bitrate_kbps.data)


class AvailabilityForm(ProposalForm):
    """The same fields, sent by GET (a question, not a change): no CSRF token."""

    class Meta:
        csrf = False


class BookingForm(ProposalForm):
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=300)], filters=[strip])
    chair = StringField(_l("Chair"), validators=[Length(max=200)], filters=[strip], default="")
    notes = TextAreaField(_l("Notes"), validators=[Length(max=10_000)], default="")
    classification = SelectField(
        _l("Classification"), coerce=Classification, default=Classification.NORMAL,
        choices=[SelectChoice(c.value, CLASSIFICATION_LABELS[c]) for c in Classification],
        description=_l("A restricted meeting's documents are never attached to email."))
    frequency = SelectField(_l("Repeats"), default="", choices=[SelectChoice("", _l("does not repeat"))] + [
        SelectChoice(f.value, FREQUENCY_LABELS[f]) for f in Frequency])
    interval = IntegerField(_l("Every (days, weeks or months)"), default=1, validators=[Optional(),
                                                                                         NumberRange(1, 99)])
    until = DateField(_l("Until (date)"), validators=[Optional()])
    count = IntegerField(_l("Or a number of occurrences"), validators=[Optional(), NumberRange(1, 365)])
    skip_clashing = BooleanField(_l("Skip the occurrences that clash and book the others"))
    draft = BooleanField(_l("Save as a draft (holds nothing, sends nothing)"))

    def validate_frequency(self, field: SelectField) -> None:
        if field.data and (self.until.data is None) == (self.count.data is None):
            raise ValidationError(_("A series ends either on a date or after a number of occurrences: give one."))

    def to_request(self, title: str = "") -> BookingRequest:
        req = super().to_request(title or self.title.data or "")
        req.chair = self.chair.data or ""
        req.notes = self.notes.data or ""
        req.classification = self.classification.data
        if self.frequency.data:
            req.recurrence = Recurrence(Frequency(self.frequency.data), self.interval.data or 1, self.until.data,
                                        self.count.data)
        req.skip_clashing = bool(self.skip_clashing.data)
        req.draft = bool(self.draft.data)
        return req


class MoveForm(CheckedForm):
    date = DateField(_l("New date"), validators=[InputRequired()])
    start_time = TimeField(_l("Starts (local time)"), validators=[InputRequired()])
    end_time = TimeField(_l("Ends (local time)"), validators=[InputRequired()])
    following = BooleanField(_l("Move this occurrence and all later ones (the series is split here)"))

    def validate_end_time(self, field: TimeField) -> None:
        if field.data and self.start_time.data and field.data <= self.start_time.data:
            raise ValidationError(_("The meeting must end after it starts."))

    def times(self) -> tuple[dt.datetime, dt.datetime]:
        zone = local_zone()
        return (dt.datetime.combine(self.date.data, self.start_time.data, tzinfo=zone),
                dt.datetime.combine(self.date.data, self.end_time.data, tzinfo=zone))

    def fill_from(self, starts_at: dt.datetime, ends_at: dt.datetime) -> None:
        zone = local_zone()
        start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
        self.date.data, self.start_time.data, self.end_time.data = start.date(), start.time(), end.time()


class CancelForm(CheckedForm):
    following = BooleanField(_l("Cancel this occurrence and all later ones"))


def put_errors(form: FlaskForm, fields: dict[str, Iterable[Any]]) -> None:
    """Show a service's per-field reasons next to the form's fields (or above the form when none matches)."""
    for name, messages in fields.items():
        if name == "clashes":
            continue  # shown as a table of their own
        field = form._fields.get(FIELD_ALIASES.get(name, name))
        texts = [str(m) for m in messages] if isinstance(messages, list | tuple) else [str(messages)]
        if field is None:
            form.form_errors.append(f"{name}: {'; '.join(texts)}")
        else:
            field.errors = [*field.errors, *texts]
