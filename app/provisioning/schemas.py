"""Schemas of the jobs' JSON API: launching (what a launch may send), jobs, their events, templates with their
meeting-window guard settings, and the schedules that launch templates."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from app.db import db
from app.provisioning.guard import service as guard
from app.provisioning.models import JobState, JobTemplate
from app.web.schemas import Input, PageQuery, Text, UTCDateTime, page_of


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
    override_reason = Text(load_default="", validate=validate.Length(max=1000), metadata={
        "description": "Why the job cannot wait, at least 10 characters; kept in the audit log."})


class NoBody(Input):
    """No body, or an empty object."""


class JobQuery(PageQuery):
    state = fields.Enum(JobState, by_value=fields.String)
    template_id = fields.Integer(validate=validate.Range(min=1))
    launched_by_id = fields.Integer(validate=validate.Range(min=1))


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


def _guard(template: JobTemplate) -> Any:
    # The settings live in a table of their own (absent: the defaults); list views load them all first.
    return guard.template_guard(db.session, template)


_EXPECTED_MINUTES = {"description": "How long a run is expected to take, 1 to 1440 minutes: the guard refuses a "
                                    "run whose window (now to now + this) meets a meeting at one of its sites."}
_CHANGES_EQUIPMENT = {"description": "Whether a run changes equipment; false for read-only playbooks (backups, "
                                     "readiness checks), which may run during meetings."}


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
    changes_equipment = fields.Function(lambda t: _guard(t).changes_equipment,
                                        metadata={"type": "boolean", **_CHANGES_EQUIPMENT})
    expected_minutes = fields.Function(lambda t: _guard(t).expected_minutes,
                                       metadata={"type": "integer", **_EXPECTED_MINUTES})


class TemplateList(ma.Schema):
    items = fields.List(fields.Nested(TemplateOut))


class TemplatePatch(Input):
    """The template's fields to change; the others stay. Lengths mirror the columns."""

    name = fields.String(validate=validate.Length(1, 100))
    description = Text(validate=validate.Length(max=500))
    playbook = fields.String(validate=validate.Length(1, 200), metadata={
        "description": "A playbook file of this installation's playbook folder."})
    default_limit = fields.String(validate=validate.Length(max=500))
    tags = fields.String(validate=validate.Length(max=500))
    extra_vars = fields.Dict(keys=fields.String())
    launch_roles = fields.List(fields.String(), metadata={"description": "Roles that may launch it."})
    check_allowed = fields.Boolean()
    credential_id = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    # Meeting-window guard (issue 4).
    changes_equipment = fields.Boolean(metadata=_CHANGES_EQUIPMENT)
    expected_minutes = fields.Integer(strict=True, metadata=_EXPECTED_MINUTES, validate=validate.Range(
        1, guard.MAX_EXPECTED_MINUTES, error=_l("A whole number of minutes from 1 to 1440 (24 hours).")))



# ---------------------------------------------------------------- schedules

_CRON = {"description": "Five fields (minute hour day-of-month month day-of-week) read in the local time zone "
                        "(Asia/Ho_Chi_Minh): \"0 2 * * *\" is 02:00 local every night."}
_OPTIONAL_LIMIT = {"description": "Host pattern; null or empty: the template's default limit, as it is when the "
                                  "schedule runs."}
_OPTIONAL_TAGS = {"description": "Comma-separated tags; null or empty: the template's."}


class SchedulePatch(Input):
    template_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    cron = fields.String(validate=validate.Length(max=100), metadata=_CRON)
    limit = fields.String(allow_none=True, validate=validate.Length(max=500), metadata=_OPTIONAL_LIMIT)
    tags = fields.String(allow_none=True, validate=validate.Length(max=500), metadata=_OPTIONAL_TAGS)
    extra_vars = fields.Dict(keys=fields.String(), metadata={
        "description": "Variables laid over the template's; names starting with ansible_ or vcops_ are refused."})
    enabled = fields.Boolean(metadata={"description": "A disabled schedule does not run; enabling it counts "
                                                      "the next run from now (missed runs are not made up)."})


class ScheduleCreate(SchedulePatch):
    template_id = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    cron = fields.String(required=True, validate=validate.Length(max=100), metadata=_CRON)


class ScheduleQuery(PageQuery):
    template_id = fields.Integer(validate=validate.Range(min=1))
    enabled = fields.Boolean()


class ScheduleOut(ma.Schema):
    id = fields.Integer()
    template_id = fields.Integer()
    template_name = fields.String(attribute="template.name")
    cron = fields.String(metadata=_CRON)
    timezone = fields.Function(lambda _s: current_app.config["TIMEZONE"], metadata={
        "type": "string", "description": "The time zone the cron expression is read in."})
    limit = fields.String(allow_none=True, metadata=_OPTIONAL_LIMIT)
    tags = fields.String(allow_none=True, metadata=_OPTIONAL_TAGS)
    extra_vars = fields.Dict()
    enabled = fields.Boolean()
    next_run_at = UTCDateTime(allow_none=True, metadata={
        "description": "When it runs next (UTC, ISO 8601); null while disabled."})
    last_run_at = UTCDateTime(allow_none=True)
    last_outcome = fields.String(metadata={"description": "launched, skipped (a meeting stood in the way), failed, "
                                                          "or empty before the first run."})
    last_message = fields.String()
    last_job_id = fields.Integer(allow_none=True)
    owner = fields.String(attribute="created_by.email", allow_none=True, dump_default=None, metadata={
        "description": "The user the schedule launches as (the one who created it)."})
    created_at = UTCDateTime()


SchedulePage = page_of(ScheduleOut, "SchedulePage")
