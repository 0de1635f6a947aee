"""Forms of the inventory pages (Flask-WTF: each form carries its CSRF token).

Field names are the service's field names (`parent_id`, `site_b_id`, …) so that a DomainError's `fields`
land next to the right input. The forms check types, lengths and ranges; the service checks what needs the
database (unique codes, the tree, both ends of a link).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    FieldList,
    FloatField,
    FormField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Length, NumberRange, Optional, ValidationError

from app.config import local_zone
from app.sites.models import ContactRole, EndpointKind, HostKind, LinkMedium, Status
from app.web.forms import CheckedForm, CheckedSubform, optional_int, strip

# Translated labels of the stored choices, shared by the forms and the pages (the `choice_label` filter).
CHOICE_LABELS: dict[Any, Any] = {
    Status.PLANNED: _l("planned"),
    Status.ACTIVE: _l("active"),
    Status.RETIRED: _l("retired"),
    EndpointKind.ROOM_SYSTEM: _l("room system"),
    EndpointKind.SOFTWARE_CLIENT: _l("software client"),
    HostKind.LINK_ROUTER: _l("link router"),
    HostKind.MEDIA_SERVER: _l("media server"),
    HostKind.RECORDING_SERVER: _l("recording server"),
    LinkMedium.DEDICATED: _l("dedicated data network"),
    LinkMedium.INTERNET: _l("internet"),
    LinkMedium.MOBILE_BACKUP: _l("mobile backup"),
    ContactRole.LEADER: _l("leader"),
    ContactRole.SECRETARY: _l("secretary"),
    ContactRole.TECHNICAL: _l("technical"),
}
BLANK_CONTACT_ROWS = 2


def choices_of(members: Any) -> list[SelectChoice]:
    return [SelectChoice(m.value, CHOICE_LABELS[m]) for m in members]


def text(label: Any, max_length: int, required: bool = False) -> StringField:
    checks = [InputRequired()] if required else []
    return StringField(label, validators=[*checks, Length(max=max_length)], filters=[strip], default="")


def status_field() -> SelectField:
    return SelectField(_l("Status"), coerce=Status, default=Status.ACTIVE,
                       choices=choices_of([Status.PLANNED, Status.ACTIVE]))


class InventoryForm(CheckedForm):
    """A form whose `SERVICE_FIELDS` are handed to the service as they are."""

    SERVICE_FIELDS: tuple[str, ...] = ()

    def changes(self) -> dict[str, Any]:
        return {name: self[name].data for name in self.SERVICE_FIELDS}

    def allow_status(self, current: Status | None) -> None:
        # Retiring goes through the retire action (with its checks); a retired row may keep its status.
        statuses = [Status.PLANNED, Status.ACTIVE] + ([Status.RETIRED] if current is Status.RETIRED else [])
        self["status"].choices = choices_of(statuses)

    def set_site_choices(self, sites: list[Any], *names: str, optional: bool = False) -> None:
        choices = [SelectChoice("", "—" if optional else _("Choose a site"))]
        choices += [SelectChoice(str(s.id), f"{s.code} — {s.name} ({s.level.name})") for s in sites]
        for name in names:
            self[name].choices = choices


# ---------------------------------------------------------------- sites

class ContactForm(CheckedSubform):
    """One row of a site's contacts; a row left blank or marked "remove" is dropped on save."""

    name = text(_l("Name"), 200)
    role = SelectField(_l("Role"), coerce=ContactRole, default=ContactRole.SECRETARY, choices=choices_of(ContactRole))
    email = EmailField(_l("Email"), validators=[Optional(), Email(), Length(max=254)], filters=[strip], default="")
    phone = text(_l("Phone"), 40)
    remove = BooleanField(_l("Remove"))

    def is_blank(self) -> bool:
        return not (self.name.data or self.email.data or self.phone.data)

    def validate_name(self, field: StringField) -> None:
        if not field.data and not self.is_blank() and not self.remove.data:
            raise ValidationError(_("Give the contact's name."))


class SiteForm(InventoryForm):
    SERVICE_FIELDS = ("code", "name", "level", "parent_id", "address", "latitude", "longitude", "is_sample",
                      "notes", "status", "invites_outside_scope")

    code = text(_l("Code"), 32, required=True)
    name = text(_l("Name"), 200, required=True)
    level = SelectField(_l("Level"), validators=[InputRequired()])
    parent_id = SelectField(_l("Parent site"), coerce=optional_int)
    address = text(_l("Address"), 300)
    latitude = FloatField(_l("Latitude"), validators=[Optional(), NumberRange(-90, 90)])
    longitude = FloatField(_l("Longitude"), validators=[Optional(), NumberRange(-180, 180)])
    is_sample = BooleanField(_l("Sample site"))
    invites_outside_scope = BooleanField(_l("Its staff may invite sites outside their scope"), description=_l(
        "For a province: whether its secretariats confined to it may invite other provinces' sites."))
    status = status_field()
    notes = TextAreaField(_l("Notes"), filters=[strip], default="")
    contacts = FieldList(FormField(ContactForm), max_entries=50)
    add_contact = SubmitField(_l("Add a contact row"))

    def contact_rows(self) -> list[dict[str, Any]]:
        return [{"name": row.form.name.data, "role": row.form.role.data, "email": row.form.email.data,
                 "phone": row.form.phone.data}
                for row in self.contacts if not row.form.remove.data and not row.form.is_blank()]

    def pad_contacts(self) -> None:
        """A few blank rows to type new contacts into (no script needed)."""
        blank = sum(1 for row in self.contacts if row.form.is_blank())
        for _i in range(BLANK_CONTACT_ROWS - blank):
            self.contacts.append_entry()


# ---------------------------------------------------------------- equipment and links

class EndpointForm(InventoryForm):
    SERVICE_FIELDS = ("site_id", "room_name", "vendor", "model", "kind", "mgmt_address", "mgmt_port", "sip_uri",
                      "h323_alias", "serial", "firmware_version", "status")

    site_id = SelectField(_l("Site"), coerce=optional_int, validators=[InputRequired()])
    room_name = text(_l("Room name"), 200, required=True)
    kind = SelectField(_l("Kind"), coerce=EndpointKind, default=EndpointKind.ROOM_SYSTEM,
                       choices=choices_of(EndpointKind))
    vendor = text(_l("Vendor"), 100)
    model = text(_l("Model"), 100)
    mgmt_address = text(_l("Management address"), 255)
    mgmt_port = IntegerField(_l("Management port"), default=22, validators=[InputRequired(), NumberRange(1, 65535)])
    sip_uri = text(_l("SIP URI"), 255)
    h323_alias = text(_l("H.323 alias"), 100)
    serial = text(_l("Serial number"), 100)
    firmware_version = text(_l("Firmware version"), 100)
    status = status_field()


class BridgeForm(InventoryForm):
    SERVICE_FIELDS = ("name", "vendor", "model", "site_id", "mgmt_address", "sip_address", "total_ports", "status")

    name = text(_l("Name"), 100, required=True)
    site_id = SelectField(_l("Site"), coerce=optional_int)
    vendor = text(_l("Vendor"), 100)
    model = text(_l("Model"), 100)
    mgmt_address = text(_l("Management address"), 255)
    sip_address = text(_l("SIP / dial-in address"), 255)
    total_ports = IntegerField(_l("Video ports"), validators=[InputRequired(), NumberRange(min=1)])
    status = status_field()


class HostForm(InventoryForm):
    SERVICE_FIELDS = ("site_id", "name", "kind", "mgmt_address", "status")

    site_id = SelectField(_l("Site"), coerce=optional_int, validators=[InputRequired()])
    name = text(_l("Name"), 100, required=True)
    kind = SelectField(_l("Kind"), coerce=HostKind, default=HostKind.LINK_ROUTER, choices=choices_of(HostKind))
    mgmt_address = text(_l("Management address"), 255)
    status = status_field()


class LinkForm(InventoryForm):
    SERVICE_FIELDS = ("code", "site_a_id", "address_a", "site_b_id", "address_b", "provider", "medium",
                      "bandwidth_kbps", "status")

    code = StringField(_l("Code"), validators=[Length(max=64)], filters=[strip], default="",
                       description=_l("Left empty, it is made from the two sites' codes."))
    site_a_id = SelectField(_l("Site A"), coerce=optional_int, validators=[InputRequired()])
    address_a = text(_l("Address to probe at A"), 255)
    site_b_id = SelectField(_l("Site B"), coerce=optional_int, validators=[InputRequired()])
    address_b = text(_l("Address to probe at B"), 255)
    provider = text(_l("Provider"), 100)
    medium = SelectField(_l("Medium"), coerce=LinkMedium, default=LinkMedium.DEDICATED, choices=choices_of(LinkMedium))
    bandwidth_kbps = IntegerField(_l("Contracted bandwidth (kbit/s)"),
                                  validators=[InputRequired(), NumberRange(min=1)])
    status = status_field()


# ---------------------------------------------------------------- maintenance windows

LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


class MaintenanceForm(CheckedForm):
    """Times are typed in local time (Asia/Ho_Chi_Minh) and handed on in UTC."""

    target = SelectField(_l("On"), validators=[InputRequired()])
    starts_at = DateTimeLocalField(_l("From (local time)"), format=LOCAL_FORMATS, tz=local_zone,
                                   validators=[InputRequired()])
    ends_at = DateTimeLocalField(_l("To (local time)"), format=LOCAL_FORMATS, tz=local_zone,
                                 validators=[InputRequired()])
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(), Length(max=500)], filters=[strip])

    def target_ref(self) -> tuple[str, int]:
        kind, _sep, ident = (self.target.data or "").partition(":")
        return kind, int(ident)

    def period_utc(self) -> tuple[dt.datetime, dt.datetime]:
        return self.starts_at.data.astimezone(dt.UTC), self.ends_at.data.astimezone(dt.UTC)
