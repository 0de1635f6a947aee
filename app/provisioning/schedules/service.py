"""Schedules on job templates: a template launched at the times of a cron expression read in local time
(Asia/Ho_Chi_Minh: "0 2 * * *" is 02:00 local every night), as the schedule's owner.

A due schedule is launched through launch_job, so every check of a launch applies, the meeting-window guard
too: a run the guard refuses is recorded as skipped with the reason, never overridden. Several workers may
run the periodic task at once: each claims a due time by moving next_run_at with a compare-and-set
(UPDATE … WHERE next_run_at = the time it read), so a due time is launched at most once. A schedule missed
while no worker ran is launched once, not once per missed time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlalchemy.orm as so
from croniter import CroniterBadDateError, croniter
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.auth import audit
from app.auth.models import User
from app.config import local_zone
from app.db import commit_scope, get_or_raise, utcnow
from app.errors import DomainError, Forbidden, Invalid
from app.provisioning import service
from app.provisioning.models import Job, JobTemplate
from app.provisioning.schedules.models import JobSchedule
from app.sites.scope import scope_of

log = logging.getLogger(__name__)
SCHEDULE_FIELDS = ("template_id", "cron", "limit", "tags", "extra_vars", "enabled")
LAUNCHED, SKIPPED, FAILED = "launched", "skipped", "failed"


# ---------------------------------------------------------------- cron expressions

# Each field of a cron expression, with the values it takes (names of months and days are accepted too).
CRON_FIELDS = (("minute", _l("minute"), "0-59"), ("hour", _l("hour"), "0-23"),
               ("day", _l("day of the month"), "1-31"), ("month", _l("month"), "1-12"),
               ("weekday", _l("day of the week"), _l("0-7 (0 and 7: Sunday)")))


def clean_cron(expression: str | None) -> str:
    """Five fields (minute hour day-of-month month day-of-week), as cron reads them, that name at least one
    time; Invalid otherwise, saying which field is wrong."""
    expression = " ".join(str(expression or "").split())
    hint = {"cron": [_("Minute, hour, day of the month, month, day of the week; e.g. 0 2 * * * for 02:00 every "
                       "night.")]}
    parts = expression.split(" ") if expression else []
    if len(parts) != 5:
        raise Invalid(_("%(cron)s is not a cron expression of five fields (it has %(n)s).",
                        cron=expression[:100] or "''", n=len(parts)), hint)
    if not croniter.is_valid(expression):
        for index, (_key, label, values) in enumerate(CRON_FIELDS):
            alone = ["*"] * 5
            alone[index] = parts[index]
            if not croniter.is_valid(" ".join(alone)):
                raise Invalid(_("%(cron)s is not a valid cron expression: the %(field)s field %(value)s is not "
                                "one of %(values)s.", cron=expression[:100], field=str(label),
                                value=parts[index][:30], values=str(values)), hint)
        raise Invalid(_("%(cron)s is not a valid cron expression.", cron=expression[:100]), hint)
    try:
        croniter(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:  # e.g. 0 2 30 2 *: valid fields, but no such day
        raise Invalid(_("%(cron)s never happens: no date has that day in that month.", cron=expression[:100]),
                      hint) from None
    return expression


def next_run(expression: str, after: dt.datetime, zone: ZoneInfo | None = None) -> dt.datetime:
    """The first time strictly after `after` that the expression names, read in local time; in UTC."""
    zone = zone or local_zone()
    following = croniter(expression, after.astimezone(zone)).get_next(dt.datetime)
    return following.astimezone(dt.UTC)


# ---------------------------------------------------------------- saving

def schedule_query(template_id: int | None = None, enabled: bool | None = None) -> sa.Select[tuple[JobSchedule]]:
    """The schedules, by template name; of one template, or only the enabled (or disabled) ones."""
    stmt = (sa.select(JobSchedule).join(JobTemplate)
            .options(so.joinedload(JobSchedule.template), so.joinedload(JobSchedule.created_by))
            .order_by(JobTemplate.name, JobSchedule.id))
    if template_id is not None:
        stmt = stmt.where(JobSchedule.template_id == template_id)
    if enabled is not None:
        stmt = stmt.where(JobSchedule.enabled.is_(enabled))
    return stmt


def list_schedules(session: so.Session) -> list[JobSchedule]:
    return list(session.scalars(schedule_query()))


def get_schedule(session: so.Session, schedule_id: int) -> JobSchedule:
    return get_or_raise(session, JobSchedule, schedule_id, _("No schedule with id %(id)s.", id=schedule_id))


def _optional(value: Any) -> str | None:
    """Empty means "the template's" (None), so a schedule follows later changes of the template's defaults."""
    value = str(value).strip() if value is not None else ""
    return value or None


def save_schedule(session: so.Session, data: dict[str, Any], user: User, schedule: JobSchedule | None = None,
                  now: dt.datetime | None = None) -> JobSchedule:
    """Create a schedule (schedule None) owned by `user`, or change the fields given. The owner must be
    allowed to launch the template, since the schedule launches it in the owner's name."""
    unknown = set(data) - set(SCHEDULE_FIELDS)
    if unknown:
        raise Invalid(_("Unknown fields: %(names)s", names=", ".join(sorted(unknown))))
    values = dict(data)
    if schedule is None and (values.get("template_id") is None or not str(values.get("cron") or "").strip()):
        raise Invalid(_("A schedule needs a template and a cron expression."),
                      {k: [_("Required.")] for k in ("template_id", "cron")
                       if not str(values.get(k) or "").strip()})
    if "template_id" in values:
        template = session.get(JobTemplate, values["template_id"])
        if template is None:
            raise Invalid(_("No job template with id %(id)s.", id=values["template_id"]),
                          {"template_id": [_("Not a template.")]})
    template = session.get(JobTemplate, values.get("template_id", schedule.template_id if schedule else None))
    owner = user if schedule is None or schedule.created_by is None else schedule.created_by
    if schedule is not None:
        _check_may_manage(schedule, user)
    if template is not None and not service.may_launch(template, user):
        raise Forbidden(_("Your role may not launch the template %(name)s, so it may not schedule it.",
                          name=template.name))
    if template is not None and not service.may_launch(template, owner):
        raise Forbidden(_("%(user)s may not launch the template %(name)s, so cannot schedule it.",
                          user=owner.email, name=template.name))
    if "cron" in values:
        values["cron"] = clean_cron(values["cron"])
    if "limit" in values:
        values["limit"] = _optional(values["limit"])
        if values["limit"] is not None:
            values["limit"] = service.clean_limit(values["limit"])
    if "tags" in values:
        values["tags"] = _optional(service.clean_tags(values["tags"]) if values["tags"] is not None else None)
    if "extra_vars" in values:
        values["extra_vars"] = service.clean_extra_vars(values["extra_vars"])
    if "enabled" in values:
        values["enabled"] = bool(values["enabled"])
    created = schedule is None
    if schedule is None:
        schedule = JobSchedule(created_by_id=user.id, enabled=True, extra_vars={})
        session.add(schedule)
    for key, value in values.items():
        setattr(schedule, key, value)
    schedule.next_run_at = next_run(schedule.cron, now or utcnow()) if schedule.enabled else None
    session.flush()
    audit.record(session, "create" if created else "update", "JobSchedule", str(schedule.id),
                 f"{template.name if template else ''}: {schedule.cron}",
                 after={"cron": schedule.cron, "limit": schedule.limit, "tags": schedule.tags,
                        "enabled": schedule.enabled})
    return schedule


def _check_may_manage(schedule: JobSchedule, user: User | None) -> None:
    """Someone who may not launch a schedule's template may not change it either: editing another user's
    schedule would otherwise run that template, in that user's name, with a limit of one's choosing."""
    if user is not None and not service.may_launch(schedule.template, user):
        raise Forbidden(_("Your role may not launch the template %(name)s, so it may not change its schedules.",
                          name=schedule.template.name))


def set_enabled(session: so.Session, schedule: JobSchedule, enabled: bool, user: User | None = None,
                now: dt.datetime | None = None) -> JobSchedule:
    """Enable (the next run is counted from now: runs missed while disabled are not made up) or disable.
    `user`: who asks (None: the app itself)."""
    _check_may_manage(schedule, user)
    schedule.enabled = bool(enabled)
    schedule.next_run_at = next_run(schedule.cron, now or utcnow()) if enabled else None
    session.flush()
    audit.record(session, "enable" if enabled else "disable", "JobSchedule", str(schedule.id),
                 f"{schedule.template.name}: {schedule.cron}")
    return schedule


def delete_schedule(session: so.Session, schedule: JobSchedule, user: User | None = None) -> None:
    _check_may_manage(schedule, user)
    audit.record(session, "delete", "JobSchedule", str(schedule.id), f"{schedule.template.name}: {schedule.cron}")
    session.delete(schedule)
    session.flush()


# ---------------------------------------------------------------- running the due ones

@dataclass(frozen=True)
class ScheduleRun:
    schedule_id: int
    outcome: str  # launched, skipped (the guard refused), failed (any other refusal)
    job_id: int | None = None
    message: str = ""


def due_schedules(session: so.Session, now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(id, next_run_at) of the enabled schedules due at `now`, earliest first."""
    rows = session.execute(sa.select(JobSchedule.id, JobSchedule.next_run_at)
                           .where(JobSchedule.enabled.is_(True), JobSchedule.next_run_at <= now)
                           .order_by(JobSchedule.next_run_at, JobSchedule.id)).all()
    return [(row.id, row.next_run_at) for row in rows]


def _claim(session: so.Session, schedule_id: int, due_at: dt.datetime, following: dt.datetime) -> bool:
    """Move next_run_at from the due time read to the next one; False when another caller moved it first."""
    result = session.execute(sa.update(JobSchedule)
                             .where(JobSchedule.id == schedule_id, JobSchedule.next_run_at == due_at,
                                    JobSchedule.enabled.is_(True))
                             .values(next_run_at=following)
                             .execution_options(synchronize_session=False))
    return result.rowcount == 1


def run_due_schedules(session: so.Session, now: dt.datetime) -> list[ScheduleRun]:
    """Launch every schedule due at `now` once, as its owner; the caller commits (the claims and the jobs
    together, so a crash before the commit leaves the schedules due and no job queued)."""
    runs: list[ScheduleRun] = []
    zone = local_zone()
    for schedule_id, due_at in due_schedules(session, now):
        schedule = session.get(JobSchedule, schedule_id)
        if schedule is None:
            continue
        if not _claim(session, schedule_id, due_at, next_run(schedule.cron, now, zone)):
            continue  # another worker launched this due time
        session.refresh(schedule)
        runs.append(_launch(session, schedule, now))
    return runs


def _launch(session: so.Session, schedule: JobSchedule, now: dt.datetime) -> ScheduleRun:
    job: Job | None = None
    owner = schedule.created_by
    try:
        if owner is None or not owner.active:
            raise Forbidden(_("The schedule's owner is no longer a user who may launch jobs."))
        token = audit.set_actor(audit.Actor(owner.id, f"{owner.email} (schedule #{schedule.id})"))
        try:
            with session.begin_nested():  # a refusal undoes only what this launch began
                job = service.launch_job(session, schedule.template, owner, limit=schedule.limit,
                                         tags=schedule.tags, extra_vars=schedule.extra_vars or {},
                                         scope=scope_of(session, owner))  # the owner's scope, as at a launch
        finally:
            audit.reset_actor(token)
        run = ScheduleRun(schedule.id, LAUNCHED, job.id)
    except DomainError as error:
        # The guard's refusal (a meeting in the way) is a skip, as planned; anything else is a failure to see.
        outcome = SKIPPED if error.code == "meeting_in_progress" else FAILED
        run = ScheduleRun(schedule.id, outcome, None, error.message)
        log.info("schedule %s %s: %s", schedule.id, outcome, error.message)
    schedule.last_run_at = now
    schedule.last_job_id = run.job_id if run.job_id is not None else schedule.last_job_id
    schedule.last_outcome = run.outcome
    schedule.last_message = run.message[:4000]
    session.flush()
    if run.outcome != LAUNCHED:
        audit.record(session, run.outcome, "JobSchedule", str(schedule.id), run.message[:300])
    return run


def run_in_worker() -> None:
    """The periodic task's body (app.queue.tasks): the due schedules of this minute, in one transaction."""
    with commit_scope() as session:
        run_due_schedules(session, utcnow())
