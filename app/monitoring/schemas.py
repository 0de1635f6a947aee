"""Monitoring room: schemas of the JSON API, Alertmanager's webhook payload (version 4), the board, a link's history,
incidents and the meetings at risk."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from app.monitoring.board import SiteState
from app.monitoring.incidents import INCIDENT_FILTERS
from app.monitoring.models import IncidentStatus
from app.web.schemas import Input, PageQuery, Text, UTCDateTime, page_of

_ALERT_STATUS = validate.OneOf([s.value for s in IncidentStatus], error=_l("Must be firing or resolved."))


# ---------------------------------------------------------------- Alertmanager's webhook

class _Tolerant(Input):
    # Alertmanager adds fields over its versions (truncatedAlerts came late): what we do not use is ignored,
    # what we use is checked.
    class Meta:
        unknown = ma.EXCLUDE


class Alert(_Tolerant):
    status = fields.String(required=True, validate=_ALERT_STATUS)
    # Label and annotation values are Alertmanager's (a description often spans lines): refusing one would lose
    # the alert, so they may hold lines; their names are one line.
    labels = fields.Dict(keys=fields.String(), values=Text(), required=True)
    annotations = fields.Dict(keys=fields.String(), values=Text(), load_default=dict)
    starts_at = fields.AwareDateTime(data_key="startsAt", required=True)
    ends_at = fields.AwareDateTime(data_key="endsAt", allow_none=True, load_default=None)
    fingerprint = fields.String(required=True, validate=validate.Length(min=1, max=64))
    generator_url = fields.String(data_key="generatorURL", load_default="")

    @ma.pre_load
    def _zero_end_is_no_end(self, data: Any, **_kwargs: object) -> Any:
        # Alertmanager writes Go's zero time (0001-01-01T00:00:00Z) as the end of an alert still firing: that is
        # "no end", not a time, and the shared rule (years from 1900) must not refuse the alert for it.
        if isinstance(data, dict) and str(data.get("endsAt", "")).startswith("0001-01-01"):
            data = {**data, "endsAt": None}
        return data

    @ma.validates("labels")
    def _has_alertname(self, value: dict[str, str], **_kwargs: object) -> None:
        if not value.get("alertname"):
            raise ma.ValidationError(_l("The labels must include alertname."))


class AlertmanagerPayload(_Tolerant):
    version = fields.String(load_default="4", validate=validate.Equal("4", error=_l("Only version 4 is understood.")))
    status = fields.String(required=True, validate=_ALERT_STATUS)
    receiver = fields.String(load_default="")
    group_key = fields.String(data_key="groupKey", load_default="")
    group_labels = fields.Dict(data_key="groupLabels", keys=fields.String(), values=Text(), load_default=dict)
    common_labels = fields.Dict(data_key="commonLabels", keys=fields.String(), values=Text(),
                                load_default=dict)
    external_url = fields.String(data_key="externalURL", load_default="")
    alerts = fields.List(fields.Nested(Alert), required=True)


class Ingested(ma.Schema):
    created = fields.Integer(metadata={"description": "Incidents seen for the first time."})
    updated = fields.Integer(metadata={"description": "Incidents whose state changed (resolved, new annotations)."})
    unchanged = fields.Integer(metadata={"description": "Alerts already known as they are."})


# ---------------------------------------------------------------- the board

class BoardQuery(Input):
    under = fields.String(load_default="", validate=validate.Length(max=32), metadata={
        "description": "A site's code: only that site and the sites below it."})
    state = fields.String(load_default="", validate=validate.OneOf(["", *[s.value for s in SiteState]]),
                          metadata={"description": "Only the sites in this state."})


class ProblemOut(ma.Schema):
    code = fields.String(metadata={"description": "link_down, failover, loss, latency, jitter, no_data, stale, "
                                                  "endpoint_down, endpoint_unregistered, upstream_down, maintenance"})
    message = fields.String()


class LinkMeasureOut(ma.Schema):
    code = fields.String()
    medium = fields.String()
    role = fields.String(metadata={"description": "primary or backup"})
    state = fields.String(metadata={"description": "ok, degraded, down or unknown (no or stale measurement)"})
    up = fields.Boolean(allow_none=True)
    stale = fields.Boolean()
    rtt_seconds = fields.Float(attribute="rtt", allow_none=True)
    rtt_min_seconds = fields.Float(attribute="rtt_min", allow_none=True)
    rtt_max_seconds = fields.Float(attribute="rtt_max", allow_none=True)
    loss_ratio = fields.Float(allow_none=True)
    jitter_seconds = fields.Float(attribute="jitter", allow_none=True)
    measured_at = UTCDateTime(allow_none=True)
    changed_at = UTCDateTime(allow_none=True)
    problems = fields.List(fields.Nested(ProblemOut))


class EndpointStateOut(ma.Schema):
    id = fields.Integer()
    room_name = fields.String()
    state = fields.String()
    reachable = fields.Boolean(allow_none=True)
    registered = fields.Boolean(allow_none=True)
    in_call = fields.Boolean(allow_none=True)
    stale = fields.Boolean()
    measured_at = UTCDateTime(allow_none=True)


class SiteStatusOut(ma.Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    depth = fields.Integer()
    state = fields.String(metadata={"description": "down, unreachable (via upstream), degraded, unknown, "
                                                   "maintenance or ok"})
    state_label = fields.String()
    problems = fields.List(fields.Nested(ProblemOut))
    upstream_site = fields.String(metadata={"description": "The ancestor whose downed uplink cuts this site off."})
    upstream_link = fields.String()
    maintenance_until = UTCDateTime(allow_none=True)
    uplink = fields.Nested(LinkMeasureOut, allow_none=True)
    backups = fields.List(fields.Nested(LinkMeasureOut))
    endpoints = fields.List(fields.Nested(EndpointStateOut))


class BoardOut(ma.Schema):
    generated_at = UTCDateTime()
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Sites per state in the subtree, before the state filter."})
    sites = fields.List(fields.Nested(SiteStatusOut))


class SampleOut(ma.Schema):
    measured_at = UTCDateTime()
    up = fields.Boolean()
    sent = fields.Integer()
    lost = fields.Integer()
    loss_ratio = fields.Float(allow_none=True)
    rtt_seconds = fields.Float(attribute="rtt_median", allow_none=True)
    rtt_min_seconds = fields.Float(attribute="rtt_min", allow_none=True)
    rtt_max_seconds = fields.Float(attribute="rtt_max", allow_none=True)
    jitter_seconds = fields.Float(attribute="jitter", allow_none=True)


class IncidentOut(ma.Schema):
    id = fields.Integer()
    fingerprint = fields.String()
    alertname = fields.String()
    status = fields.Enum(IncidentStatus, by_value=fields.String)
    severity = fields.String()
    site_code = fields.String()
    link_code = fields.String()
    summary = fields.String()
    labels = fields.Dict()
    annotations = fields.Dict()
    starts_at = UTCDateTime()
    ends_at = UTCDateTime(allow_none=True)
    last_notified_at = UTCDateTime()
    acknowledged_by = fields.String(attribute="acknowledged_by.email", allow_none=True, dump_default=None)
    acknowledged_at = UTCDateTime(allow_none=True)
    ack_note = fields.String()


class LinkHistoryOut(ma.Schema):
    code = fields.String(attribute="link.code")
    site = fields.String(attribute="site.code")
    parent_site = fields.String(attribute="parent.code", allow_none=True, dump_default=None)
    primary = fields.String(attribute="primary_code", metadata={
        "description": "For a backup link, the primary it stands in for; empty for a primary."})
    state = fields.Nested(LinkMeasureOut, attribute="view")
    since = UTCDateTime()
    samples = fields.List(fields.Nested(SampleOut), metadata={"description": "Oldest first."})
    incidents = fields.List(fields.Nested(IncidentOut))


class IncidentQuery(PageQuery):
    status = fields.String(load_default="open", validate=validate.OneOf(INCIDENT_FILTERS), metadata={
        "description": "open (firing), resolved or all"})
    site = fields.String(load_default="", validate=validate.Length(max=32))


IncidentPage = page_of(IncidentOut, "IncidentPage")


class Acknowledge(Input):
    note = Text(load_default="", validate=validate.Length(max=500))


# ---------------------------------------------------------------- meetings at risk

class AtRiskQuery(Input):
    hours = fields.Integer(load_default=3, validate=validate.Range(1, 24), metadata={
        "description": "How far ahead to look, in hours."})


class SiteAtRiskOut(ma.Schema):
    code = fields.String()
    name = fields.String()
    state = fields.String()
    problems = fields.List(fields.Nested(ProblemOut))


class MeetingAtRiskOut(ma.Schema):
    occurrence_id = fields.Integer()
    meeting_id = fields.Integer()
    title = fields.String()
    starts_at = UTCDateTime()
    ends_at = UTCDateTime()
    in_progress = fields.Boolean()
    sites = fields.List(fields.Nested(SiteAtRiskOut))


class AtRiskOut(ma.Schema):
    meetings = fields.List(fields.Nested(MeetingAtRiskOut))
