"""Schemas of the jobs' JSON API: launching (what a launch may send), jobs, their events, templates."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.provisioning.models import JobState
from app.sites.schemas import MAX_PAGE_SIZE, Input, UTCDateTime, page_of


class JobLaunch(Input):
    template_id = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    limit = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=500), metadata={
        "description": "Host pattern (hosts, groups, wildcards, ! and &); null or absent: the template's default."})
    tags = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=500), metadata={
        "description": "Comma-separated tags; null or absent: the template's."})
    check_mode = fields.Boolean(load_default=False, metadata={
        "description": "Report what would change, with a diff, without changing anything."})
    extra_vars = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "Variables laid over the template's; names starting with ansible_ or vcops_ are refused. "
                       "Values are data: Ansible never evaluates them as templates."})
    # Meeting-window guard (issue 4).
    override = fields.Boolean(load_default=False, metadata={
        "description": "Run even though a meeting at one of the job's sites is in its window (refused with 409 "
                       "otherwise); needs override_reason."})
    override_reason = fields.String(load_default="", validate=validate.Length(max=1000), metadata={
        "description": "Why the job cannot wait, at least 10 characters; kept in the audit log."})


class NoBody(Input):
    """No body, or an empty object."""


class JobQuery(Input):
    state = fields.Enum(JobState, by_value=fields.String)
    template_id = fields.Integer(validate=validate.Range(min=1))
    launched_by_id = fields.Integer(validate=validate.Range(min=1))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PAGE_SIZE))


class EventQuery(Input):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0), metadata={
        "description": "Only events after this sequence number (the last one the client has)."})
    limit = fields.Integer(load_default=500, validate=validate.Range(1, 1000))


class HostCounts(ma.Schema):
    ok = fields.Integer()
    changed = fields.Integer()
    failed = fields.Integer()
    unreachable = fields.Integer()
    skipped = fields.Integer()


class JobOut(ma.Schema):
    id = fields.Integer()
    template_id = fields.Integer()
    template_name = fields.String(attribute="template.name")
    playbook = fields.String()
    launched_by = fields.String(attribute="launched_by.email", allow_none=True, dump_default=None)
    limit = fields.String()
    tags = fields.String()
    check_mode = fields.Boolean()
    extra_vars = fields.Dict()
    state = fields.Enum(JobState, by_value=fields.String, metadata={
        "description": "queued, running, succeeded, failed, cancelled or lost."})
    return_code = fields.Integer(allow_none=True)
    host_counts = fields.Dict(keys=fields.String(), values=fields.Nested(HostCounts), metadata={
        "description": "Per host: ok (changed included), changed, failed, unreachable, skipped."})
    totals = fields.Nested(HostCounts)
    error = fields.String()
    waiting_for_job_id = fields.Integer(allow_none=True, metadata={
        "description": "A queued job waits for this job, which holds one of its hosts."})
    cancel_requested_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    started_at = UTCDateTime(allow_none=True)
    finished_at = UTCDateTime(allow_none=True)
    worker = fields.String()


JobPage = page_of(JobOut, "JobPage")


class EventOut(ma.Schema):
    seq = fields.Integer()
    type = fields.String(metadata={"description": "play, task, result, stats or output."})
    event = fields.String(metadata={"description": "Ansible's name of the event."})
    host = fields.String()
    task = fields.String()
    status = fields.String(metadata={"description": "For results: ok, changed, failed, ignored, skipped, "
                                                    "unreachable."})
    stdout = fields.String()
    created_at = UTCDateTime()


class EventPage(ma.Schema):
    items = fields.List(fields.Nested(EventOut))
    state = fields.Enum(JobState, by_value=fields.String)
    finished = fields.Boolean(metadata={"description": "The job has ended: no more events will come."})


class TemplateOut(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    playbook = fields.String()
    default_limit = fields.String()
    tags = fields.String()
    extra_vars = fields.Dict()
    launch_roles = fields.List(fields.String())
    check_allowed = fields.Boolean()
    credential_id = fields.Integer(allow_none=True)


class TemplateList(ma.Schema):
    items = fields.List(fields.Nested(TemplateOut))
