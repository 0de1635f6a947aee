"""The jobs' JSON API under /api/v1: launch (202 with the job's address), follow, cancel, relaunch; templates with
their meeting-window guard settings; the schedules that launch templates.

Thin views as in app.sites.api: the schemas parse, app.provisioning.service does the work, the request's
commit point commits, and the run happens on a worker afterwards. A client follows a job by reading
GET /api/v1/jobs/<id>/events?after=<last seq> until `finished` is true. Templates and schedules are changed
by those who may launch jobs (and only those templates they may launch themselves).
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from flask_login import current_user
from flask_smorest import Blueprint

from app.db import db
from app.provisioning import schemas, service
from app.provisioning.guard import service as guard
from app.provisioning.models import Job, JobTemplate
from app.provisioning.schedules import service as schedules
from app.provisioning.schedules.models import JobSchedule
from app.sites.scope import request_scope
from app.web.access import require
from app.web.api import ApiBlueprint
from app.web.pagination import paginate

Args = dict[str, Any]

jobs = ApiBlueprint("jobs", "Jobs: playbook runs on the task queue, followed live, cancelled, relaunched.")
# The events are a list that takes a query (after=); their blueprint has a name of its own, under /jobs.
events = ApiBlueprint("job_events", "The events of a job, in order.")
events.url_prefix = "/api/v1/jobs"
templates = ApiBlueprint("job-templates", "Job templates: the playbooks technicians may launch, and how the "
                                          "meeting-window guard treats their runs.")
job_schedules = ApiBlueprint("job-schedules", "Schedules: templates launched at the times of a cron expression "
                                              "read in local time (Asia/Ho_Chi_Minh), as the schedule's owner.")


def _accepted(job: Job) -> tuple[Job, int, dict[str, str]]:
    return job, 202, {"Location": url_for("api_jobs.item", job_id=job.id)}


@jobs.route("", endpoint="collection")
class JobCollection(MethodView):
    @require("jobs.view")
    @jobs.arguments(schemas.JobQuery, location="query")
    @jobs.response(200, schemas.JobPage)
    @jobs.fails(422)
    def get(self, args: Args) -> Args:
        """The job history, newest first: by state, template, who launched."""
        f = service.JobFilter(state=args["state"].value if "state" in args else "",
                              template_id=args.get("template_id"), launched_by_id=args.get("launched_by_id"),
                              scope=request_scope())
        stmt = service.job_query(f)
        return paginate(stmt, args["page"], args["page_size"], unique=True).as_api()

    @require("jobs.launch")
    @jobs.arguments(schemas.JobLaunch)
    @jobs.response(202, schemas.JobOut)
    @jobs.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Job, int, dict[str, str]]:
        """Launch a template: the job is queued and runs on a worker; follow it at the Location. A run that would
        change a site's equipment during its meeting is refused (409) unless overridden with a reason."""
        template = service.get_template(db.session, data["template_id"])
        job = service.launch_job(db.session, template, current_user, limit=data["limit"], tags=data["tags"],
                                 check=data["check_mode"], extra_vars=data["extra_vars"],
                                 override=data["override"], override_reason=data["override_reason"],
                                 scope=request_scope())
        return _accepted(job)


@jobs.route("/<int:job_id>", endpoint="item")
class JobItem(MethodView):
    @require("jobs.view")
    @jobs.response(200, schemas.JobOut)
    @jobs.fails(404)
    def get(self, job_id: int) -> Job:
        """A job: its state, return code, per-host counts, and what it waits for."""
        return service.get_job(db.session, job_id, request_scope())


@jobs.route("/<int:job_id>/cancel", methods=["POST"], endpoint="cancel")
@require("jobs.launch")
@jobs.arguments(schemas.NoBody, required=False)  # no body, or {}: the document says so
@jobs.response(202, schemas.JobOut)
@jobs.fails(404, 409)
def cancel_job(_data: Args, job_id: int) -> tuple[Job, int, dict[str, str]]:
    """Cancel a job: a queued one at once, a running one within a few seconds (409 when it has ended)."""
    return _accepted(service.request_cancel(db.session, service.get_changeable_job(db.session, job_id,
                                                                               request_scope())))


@jobs.route("/<int:job_id>/relaunch", methods=["POST"], endpoint="relaunch")
@require("jobs.launch")
@jobs.arguments(schemas.NoBody, required=False)  # no body, or {}: the document says so
@jobs.response(202, schemas.JobOut)
@jobs.fails(404, 422)
def relaunch_job(_data: Args, job_id: int) -> tuple[Job, int, dict[str, str]]:
    """Launch the same template again with the same limit, tags, check mode and variables."""
    return _accepted(service.relaunch_job(db.session, service.get_job(db.session, job_id, request_scope()),
                                          current_user, request_scope()))


@events.route("/<int:job_id>/events", endpoint="collection")
class JobEvents(MethodView):
    @require("jobs.view")
    @events.arguments(schemas.EventQuery, location="query")
    @events.response(200, schemas.EventPage)
    @events.fails(404, 422)
    def get(self, args: Args, job_id: int) -> Args:
        """The job's events after a sequence number, in order; `finished` says whether more can come."""
        job = service.get_job(db.session, job_id, request_scope())
        return {"items": service.events_after(db.session, job, args["after"], args["limit"]),
                "state": job.state, "finished": job.finished}


@templates.route("", endpoint="collection")
class TemplateCollection(MethodView):
    @require("jobs.view")
    @templates.response(200, schemas.TemplateList)
    def get(self) -> Args:
        """The job templates, with their guard settings."""
        guard.load_template_guards(db.session)
        return {"items": service.list_templates(db.session)}


@templates.route("/<int:template_id>", endpoint="item")
class TemplateItem(MethodView):
    @require("jobs.view")
    @templates.response(200, schemas.TemplateOut)
    @templates.fails(404)
    def get(self, template_id: int) -> JobTemplate:
        """A job template, with its guard settings."""
        return service.get_template(db.session, template_id)

    @require("jobs.launch")
    @templates.arguments(schemas.TemplatePatch)
    @templates.response(200, schemas.TemplateOut)
    @templates.fails(404, 409, 422)
    def patch(self, data: Args, template_id: int) -> JobTemplate:
        """Change the fields given, guard settings included (403 for a template one may not launch)."""
        return service.change_template(db.session, service.get_template(db.session, template_id), data,
                                       current_user)


# ---------------------------------------------------------------- schedules

@job_schedules.route("", endpoint="collection")
class ScheduleCollection(MethodView):
    @require("jobs.view")
    @job_schedules.arguments(schemas.ScheduleQuery, location="query")
    @job_schedules.response(200, schemas.SchedulePage)
    @job_schedules.fails(422)
    def get(self, args: Args) -> Args:
        """The schedules, by template name: of one template, enabled or not."""
        stmt = schedules.schedule_query(args.get("template_id"), args.get("enabled"))
        return paginate(stmt, args["page"], args["page_size"], unique=True).as_api()

    @require("jobs.launch")
    @job_schedules.arguments(schemas.ScheduleCreate)
    @job_schedules.response(201, schemas.ScheduleOut)
    @job_schedules.fails(409, 422)
    def post(self, data: Args) -> tuple[JobSchedule, int, dict[str, str]]:
        """Schedule a template, owned by the caller (who must be allowed to launch it); a bad cron expression is
        refused naming the field."""
        schedule = schedules.save_schedule(db.session, data, current_user)
        return schedule, 201, {"Location": url_for("api_job-schedules.item", schedule_id=schedule.id)}


@job_schedules.route("/<int:schedule_id>", endpoint="item")
class ScheduleItem(MethodView):
    @require("jobs.view")
    @job_schedules.response(200, schemas.ScheduleOut)
    @job_schedules.fails(404)
    def get(self, schedule_id: int) -> JobSchedule:
        """A schedule: when it runs next (UTC) and how its last run went."""
        return schedules.get_schedule(db.session, schedule_id)

    @require("jobs.launch")
    @job_schedules.arguments(schemas.SchedulePatch)
    @job_schedules.response(200, schemas.ScheduleOut)
    @job_schedules.fails(404, 409, 422)
    def patch(self, data: Args, schedule_id: int) -> JobSchedule:
        """Change the fields given; `enabled` switches it on (counting from now) or off. The next run is
        counted again from now."""
        schedule = schedules.get_schedule(db.session, schedule_id)
        if set(data) == {"enabled"}:
            return schedules.set_enabled(db.session, schedule, data["enabled"], current_user)
        return schedules.save_schedule(db.session, data, current_user, schedule)

    @require("jobs.launch")
    @job_schedules.response(204)
    @job_schedules.fails(404)
    def delete(self, schedule_id: int) -> None:
        """Delete a schedule (the jobs it launched stay)."""
        schedules.delete_schedule(db.session, schedules.get_schedule(db.session, schedule_id), current_user)


blueprints: list[Blueprint] = [jobs, events, templates, job_schedules]
