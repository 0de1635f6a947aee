"""Schemas of the inventory's JSON API: what a request may send (unknown fields refused) and what it gets back.

Input schemas come in pairs: `XPatch` (every field optional, for PATCH) and `XCreate` (the same fields, those
a new record needs made required). Lengths and ranges mirror the columns, so that the database never refuses
what a schema let through.
"""

from __future__ import annotations

import copy

import marshmallow as ma
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from app.sites.maintenance import MAINTENANCE_TARGETS, maintenance_target_kind
from app.sites.models import ContactRole, EndpointKind, HostKind, LinkMedium, Status
from app.web.schemas import Input, PageQuery, Text, UTCDateTime, page_of


def _text(max_length: int, min_length: int = 0, **kwargs: object) -> fields.String:
    """One line (app.web.schemas.Input refuses line breaks and control characters in it)."""
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)


def _lines(max_length: int, min_length: int = 0, **kwargs: object) -> Text:
    """Several lines (notes, reasons: a textarea on the pages)."""
    return Text(validate=validate.Length(min=min_length, max=max_length), **kwargs)


def _site_ref(**kwargs: object) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1), **kwargs)


# Retiring goes through POST …/retire (or the site's own rules would be bypassed), so input status is one of two.
_input_status = fields.Enum(Status, by_value=fields.String, validate=validate.OneOf(
    [Status.PLANNED, Status.ACTIVE], error=_l("Must be planned or active; retire with POST …/<id>/retire.")))


def _required(patch: type[Input], name: str, *required: str) -> type[Input]:
    """The create schema: the patch schema with the fields that a new record needs made required."""
    overrides = {}
    for field_name in required:
        field = copy.copy(patch._declared_fields[field_name])
        field.required = True
        overrides[field_name] = field
    return type(name, (patch,), overrides)


# ---------------------------------------------------------------- sites

def _email_or_empty(value: str) -> None:
    if value:
        validate.Email()(value)


class ContactIn(Input):
    name = _text(200, 1, required=True)
    role = fields.Enum(ContactRole, by_value=fields.String, required=True)
    email = fields.String(load_default="", validate=validate.And(validate.Length(max=254), _email_or_empty))
    phone = _text(40, load_default="")


class SitePatch(Input):
    code = _text(32, 1)
    name = _text(200, 1)
    level = _text(32, 1, metadata={"description": "Code of the site's level (see /api/v1/levels)."})
    parent_id = _site_ref(allow_none=True, metadata={"description": "A site at a higher level; null for a root."})
    address = _text(300)
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    is_sample = fields.Boolean()
    invites_outside_scope = fields.Boolean(metadata={
        "description": "On a top-level site: its scoped staff may invite sites outside their scope. Set by users "
                       "without a scope only."})
    notes = _lines(10_000)
    status = copy.copy(_input_status)
    contacts = fields.List(fields.Nested(ContactIn), metadata={
        "description": "The site's contacts; on PATCH, when given, they replace the stored ones."})


SiteCreate = _required(SitePatch, "SiteCreate", "code", "name", "level")


class ContactOut(ma.Schema):
    name = fields.String()
    role = fields.Enum(ContactRole, by_value=fields.String)
    email = fields.String()
    phone = fields.String()


class SiteOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.String(attribute="level.code")
    parent_id = fields.Integer(allow_none=True)
    ancestor_ids = fields.List(fields.Integer(), metadata={"description": "Ids of the ancestors, root first."})
    address = fields.String()
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    is_sample = fields.Boolean()
    invites_outside_scope = fields.Boolean()
    status = fields.Enum(Status, by_value=fields.String)
    notes = fields.String()
    contacts = fields.List(fields.Nested(ContactOut))
    created_at = UTCDateTime()


# ---------------------------------------------------------------- equipment and links

class EndpointPatch(Input):
    site_id = _site_ref()
    room_name = _text(200, 1)
    vendor = _text(100)
    model = _text(100)
    kind = fields.Enum(EndpointKind, by_value=fields.String)
    mgmt_address = _text(255)
    mgmt_port = fields.Integer(strict=True, validate=validate.Range(1, 65535))
    sip_uri = _text(255)
    h323_alias = _text(100)
    serial = _text(100)
    firmware_version = _text(100)
    status = copy.copy(_input_status)


EndpointCreate = _required(EndpointPatch, "EndpointCreate", "site_id", "room_name")


class BridgePatch(Input):
    name = _text(100, 1)
    vendor = _text(100)
    model = _text(100)
    site_id = _site_ref(allow_none=True)
    mgmt_address = _text(255)
    sip_address = _text(255)
    total_ports = fields.Integer(strict=True, validate=validate.Range(min=1),
                                 metadata={"description": "Video ports: each connected room takes one."})
    status = copy.copy(_input_status)


BridgeCreate = _required(BridgePatch, "BridgeCreate", "name", "total_ports")


class HostPatch(Input):
    site_id = _site_ref()
    name = _text(100, 1)
    kind = fields.Enum(HostKind, by_value=fields.String)
    mgmt_address = _text(255)
    status = copy.copy(_input_status)


HostCreate = _required(HostPatch, "HostCreate", "site_id", "name", "kind")


class LinkPatch(Input):
    code = _text(64, 1, metadata={"description": "Defaults to '<site A code>-<site B code>'."})
    site_a_id = _site_ref()
    address_a = _text(255, metadata={"description": "The address probed at site A's end."})
    site_b_id = _site_ref()
    address_b = _text(255)
    provider = _text(100)
    medium = fields.Enum(LinkMedium, by_value=fields.String)
    bandwidth_kbps = fields.Integer(strict=True, validate=validate.Range(min=1),
                                    metadata={"description": "Contracted bandwidth in kbit/s."})
    status = copy.copy(_input_status)


LinkCreate = _required(LinkPatch, "LinkCreate", "site_a_id", "site_b_id", "bandwidth_kbps")


class EndpointOut(ma.Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    site_code = fields.String(attribute="site.code")
    room_name = fields.String()
    vendor = fields.String()
    model = fields.String()
    kind = fields.Enum(EndpointKind, by_value=fields.String)
    mgmt_address = fields.String()
    mgmt_port = fields.Integer()
    sip_uri = fields.String()
    h323_alias = fields.String()
    serial = fields.String()
    firmware_version = fields.String()
    status = fields.Enum(Status, by_value=fields.String)
    created_at = UTCDateTime()


class BridgeOut(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    vendor = fields.String()
    model = fields.String()
    site_id = fields.Integer(allow_none=True)
    site_code = fields.String(attribute="site.code", allow_none=True, dump_default=None)
    mgmt_address = fields.String()
    sip_address = fields.String()
    total_ports = fields.Integer()
    status = fields.Enum(Status, by_value=fields.String)
    created_at = UTCDateTime()


class HostOut(ma.Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    site_code = fields.String(attribute="site.code")
    name = fields.String()
    kind = fields.Enum(HostKind, by_value=fields.String)
    mgmt_address = fields.String()
    status = fields.Enum(Status, by_value=fields.String)
    created_at = UTCDateTime()


class LinkOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    site_a_id = fields.Integer()
    site_a_code = fields.String(attribute="site_a.code")
    address_a = fields.String()
    site_b_id = fields.Integer()
    site_b_code = fields.String(attribute="site_b.code")
    address_b = fields.String()
    provider = fields.String()
    medium = fields.Enum(LinkMedium, by_value=fields.String)
    bandwidth_kbps = fields.Integer()
    status = fields.Enum(Status, by_value=fields.String)
    created_at = UTCDateTime()


# ---------------------------------------------------------------- maintenance windows and levels

_TARGET_KINDS = list(MAINTENANCE_TARGETS)
_aware = {"metadata": {"description": "ISO 8601 with its offset, e.g. 2025-03-01T22:00:00+07:00."}}


class MaintenancePatch(Input):
    starts_at = fields.AwareDateTime(**_aware)
    ends_at = fields.AwareDateTime(**_aware)
    reason = _lines(500, 1)


class MaintenanceCreate(MaintenancePatch):
    target_kind = fields.String(required=True, validate=validate.OneOf(_TARGET_KINDS))
    target_id = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    starts_at = fields.AwareDateTime(required=True, **_aware)
    ends_at = fields.AwareDateTime(required=True, **_aware)
    reason = _lines(500, 1, required=True)


class MaintenanceOut(ma.Schema):
    id = fields.Integer()
    target_kind = fields.Function(maintenance_target_kind, metadata={"type": "string", "enum": _TARGET_KINDS})
    target_id = fields.Function(lambda window: getattr(window, f"{maintenance_target_kind(window)}_id"),
                                metadata={"type": "integer"})
    starts_at = UTCDateTime()
    ends_at = UTCDateTime()
    reason = fields.String()
    created_by_id = fields.Integer(allow_none=True)
    created_at = UTCDateTime()


class LevelOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    rank = fields.Integer(metadata={"description": "1 is the highest level; a parent has a lower rank."})


# ---------------------------------------------------------------- list queries and pages

class ListQuery(PageQuery):
    q = _text(200, metadata={"description": "Text to look for in codes, names and addresses."})


_within = fields.Integer(validate=validate.Range(min=1), metadata={"description": "A site id: its whole subtree."})
_status = fields.Enum(Status, by_value=fields.String)


class SiteQuery(ListQuery):
    level = _text(32, metadata={"description": "A level code."})
    status = copy.copy(_status)
    within = copy.copy(_within)
    sample = fields.Boolean(metadata={"description": "Only sample sites (true) or only real ones (false)."})


class EndpointQuery(ListQuery):
    within = copy.copy(_within)
    status = copy.copy(_status)
    kind = fields.Enum(EndpointKind, by_value=fields.String)


class HostQuery(ListQuery):
    within = copy.copy(_within)
    status = copy.copy(_status)
    kind = fields.Enum(HostKind, by_value=fields.String)


class BridgeQuery(ListQuery):
    within = copy.copy(_within)
    status = copy.copy(_status)


class LinkQuery(ListQuery):
    within = fields.Integer(validate=validate.Range(min=1),
                            metadata={"description": "A site id: links with either end in its subtree."})
    medium = fields.Enum(LinkMedium, by_value=fields.String)
    status = copy.copy(_status)


class MaintenanceQuery(PageQuery):
    target_kind = fields.String(validate=validate.OneOf(_TARGET_KINDS))
    target_id = fields.Integer(validate=validate.Range(min=1))
    ends_after = fields.AwareDateTime(metadata={"description": "Windows still running after this time."})
    starts_before = fields.AwareDateTime(metadata={"description": "Windows started before this time."})

    @ma.validates_schema
    def _target_id_needs_kind(self, data: dict, **_kwargs: object) -> None:
        if "target_id" in data and "target_kind" not in data:
            raise ma.ValidationError(_("Give target_kind with target_id."), "target_kind")


class LevelQuery(Input):
    """The levels take no query parameters; this refuses any."""


SitePage = page_of(SiteOut, "SitePage")
EndpointPage = page_of(EndpointOut, "EndpointPage")
BridgePage = page_of(BridgeOut, "BridgePage")
HostPage = page_of(HostOut, "HostPage")
LinkPage = page_of(LinkOut, "LinkPage")
MaintenancePage = page_of(MaintenanceOut, "MaintenancePage")


class LevelList(ma.Schema):
    items = fields.List(fields.Nested(LevelOut))
