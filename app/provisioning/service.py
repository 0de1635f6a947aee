"""Job templates and jobs: saving templates, launching, relaunching and cancelling jobs, reading their history.

Launching only writes: a queued Job and an outbox message "jobs.run" in the same transaction; the run itself
happens on a worker (app.provisioning.runner) after the commit. Every input a launch takes is checked here,
so that nothing reaches ansible-playbook that could change its meaning (a limit read from a file, a variable
that swaps the connection, a template expression).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _

from app.auth import audit
from app.auth.models import Role, User
from app.auth.permissions import PERMISSIONS
from app.db import get_or_raise, utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.provisioning.credentials.models import Credential
from app.provisioning.guard import service as guard
from app.provisioning.models import Job, JobEvent, JobSite, JobState, JobTemplate
from app.queue import outbox
from app.sites import scope as scopes
from app.sites.models import Bridge
from app.sites.scope import Scope

PLAYBOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,195}\.ya?ml$")
# Host patterns as Ansible reads them (names, groups, wildcards, ! and &, ranges, separators), but neither
# "@file" (a limit read from a file) nor "~regex", and no spaces.
LIMIT = re.compile(r"^[A-Za-z0-9_.*!&:,\[\]-]{0,500}$")
TAG = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
RESERVED_VAR_PREFIXES = ("ansible_", "vcops_")  # connection settings, and what the app sets itself
MAX_EXTRA_VARS = 65_536


def launch_roles_choices() -> list[Role]:
    """Roles that may be allowed to launch a template: those that can launch jobs at all."""
    return [r for r in Role if r in PERMISSIONS["jobs.launch"]]


# ---------------------------------------------------------------- checks shared by templates and launches

def playbook_dir() -> Path:
    return Path(current_app.config["PLAYBOOK_DIR"])


def list_playbooks() -> list[str]:
    folder = playbook_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and PLAYBOOK_NAME.match(p.name))


def playbook_path(name: str) -> Path:
    """The playbook's file in PLAYBOOK_DIR; Invalid when the name is not one of its playbooks."""
    if not PLAYBOOK_NAME.match(name or "") or name not in list_playbooks():
        raise Invalid(_("%(name)s is not a playbook of this installation.", name=name or "''"),
                      {"playbook": [_("Choose one of: %(names)s.", names=", ".join(list_playbooks()) or "-")]})
    return playbook_dir() / name


def clean_limit(limit: str | None, field: str = "limit") -> str:
    limit = (limit or "").strip()
    if not LIMIT.match(limit):
        raise Invalid(_("The limit %(limit)s is not a host pattern this app accepts.", limit=limit[:60]),
                      {field: [_("Host names, groups, * wildcards, ! and &, separated by commas; "
                                 "no spaces, @files or ~regular expressions; at most 500 characters.")]})
    return limit


def clean_tags(tags: str | list[str] | None, field: str = "tags") -> str:
    items = tags if isinstance(tags, list) else (tags or "").split(",")
    items = [str(t).strip() for t in items if str(t).strip()]
    bad = [t for t in items if not TAG.match(t)]
    if bad or len(",".join(items)) > 500:
        raise Invalid(_("Tags are words of letters, digits, _ and -, separated by commas."),
                      {field: [_("Not a tag: %(tags)s", tags=", ".join(bad)) if bad else _("Too long.")]})
    return ",".join(items)


def clean_extra_vars(value: Any, field: str = "extra_vars") -> dict[str, Any]:
    """A JSON object (or its text) of variables for the playbook; reserved names are refused."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Invalid(_("The extra variables are not valid JSON: %(error)s", error=str(exc)),
                          {field: [_("A JSON object, like {\"bitrate\": 2048}.")]}) from None
    if not isinstance(value, dict):
        raise Invalid(_("The extra variables must be a JSON object."),
                      {field: [_("A JSON object, like {\"bitrate\": 2048}.")]})
    bad = [k for k in value if not isinstance(k, str) or not VAR_NAME.match(k)]
    reserved = [k for k in value if isinstance(k, str) and k.lower().startswith(RESERVED_VAR_PREFIXES)]
    if bad or reserved:
        problems = ([_("Not a variable name: %(names)s", names=", ".join(map(str, bad)))] if bad else []) + (
            [_("Reserved (connection settings and the app's own): %(names)s", names=", ".join(reserved))]
            if reserved else [])
        raise Invalid(_("Some extra variables cannot be set from here."), {field: problems})
    if len(json.dumps(value)) > MAX_EXTRA_VARS:
        raise Invalid(_("The extra variables are too large."), {field: [_("At most 64 KB of JSON.")]})
    return value


def clean_roles(roles: list[str] | None) -> list[str]:
    allowed = {r.value for r in launch_roles_choices()}
    roles = sorted({str(r) for r in roles or []})
    bad = [r for r in roles if r not in allowed]
    if bad:
        raise Invalid(_("These roles cannot launch jobs: %(roles)s", roles=", ".join(bad)),
                      {"launch_roles": [_("Choose among: %(roles)s.", roles=", ".join(sorted(allowed)))]})
    return roles


# ---------------------------------------------------------------- templates

TEMPLATE_FIELDS = ("name", "description", "playbook", "default_limit", "tags", "extra_vars", "launch_roles",
                   "check_allowed", "credential_id")
GUARD_FIELDS = ("changes_equipment", "expected_minutes")  # kept by app.provisioning.guard.service


def list_templates(session: so.Session) -> list[JobTemplate]:
    return list(session.scalars(sa.select(JobTemplate).order_by(JobTemplate.name)))


def get_template(session: so.Session, template_id: int) -> JobTemplate:
    return get_or_raise(session, JobTemplate, template_id, _("No job template with id %(id)s.", id=template_id))


def save_template(session: so.Session, data: dict[str, Any], template: JobTemplate | None = None) -> JobTemplate:
    """Create a template (template None) or change the fields given."""
    unknown = set(data) - set(TEMPLATE_FIELDS)
    if unknown:
        raise Invalid(_("Unknown fields: %(names)s", names=", ".join(sorted(unknown))))
    values = dict(data)
    if template is None:
        missing = [k for k in ("name", "playbook") if not str(values.get(k) or "").strip()]
        if missing:
            raise Invalid(_("A template needs a name and a playbook."),
                          {k: [_("Required.")] for k in missing})
        values.setdefault("launch_roles", [r.value for r in launch_roles_choices()])
    if "name" in values:
        values["name"] = str(values["name"]).strip()
        if not 1 <= len(values["name"]) <= 100:
            raise Invalid(_("The name must have 1 to 100 characters."), {"name": [_("1 to 100 characters.")]})
        taken = sa.select(JobTemplate.id).where(JobTemplate.name == values["name"])
        if template is not None:
            taken = taken.where(JobTemplate.id != template.id)
        if session.scalar(taken) is not None:
            raise Conflict(_("A template named %(name)s exists already.", name=values["name"]),
                           {"name": [_("Already taken.")]}, code="duplicate")
    if "description" in values:
        values["description"] = str(values["description"] or "").strip()[:500]
    if "playbook" in values:
        playbook_path(values["playbook"])
    if "default_limit" in values:
        values["default_limit"] = clean_limit(values["default_limit"], "default_limit")
    if "tags" in values:
        values["tags"] = clean_tags(values["tags"])
    if "extra_vars" in values:
        values["extra_vars"] = clean_extra_vars(values["extra_vars"])
    if "launch_roles" in values:
        values["launch_roles"] = clean_roles(values["launch_roles"])
    if values.get("credential_id") is not None and session.get(Credential, values["credential_id"]) is None:
        raise Invalid(_("No credential with id %(id)s.", id=values["credential_id"]),
                      {"credential_id": [_("Not a credential.")]})
    if template is None:
        template = JobTemplate()
        session.add(template)
    for key, value in values.items():
        setattr(template, key, value)
    session.flush()
    return template


def change_template(session: so.Session, template: JobTemplate, data: dict[str, Any], user: User) -> JobTemplate:
    """Change the fields given of a template and of its meeting-window guard settings (changes_equipment,
    expected_minutes). Only a user who may launch the template may change it: otherwise a technician could open
    an admin-only template to themselves, or mark it read-only so that it passes the guard."""
    check_may_change(template, user)
    values = dict(data)
    guard_values = {k: values.pop(k) for k in GUARD_FIELDS if k in values}
    if values:
        save_template(session, values, template)
    if guard_values:
        guard.save_template_guard(session, template, **guard_values)
    return template


def check_may_change(template: JobTemplate, user: User) -> None:
    """Refuse (403) a user who may not launch the template: changing it would open it to them."""
    if not may_launch(template, user):
        raise Forbidden(_("Your role may not launch the template %(name)s, so it may not change it.",
                          name=template.name))


# ---------------------------------------------------------------- launching

def may_launch(template: JobTemplate, user: User) -> bool:
    # Admins always may, so that no template can be locked away from everyone.
    return user.role is Role.ADMIN or (user.role.value in (template.launch_roles or [])
                                       and user.role in PERMISSIONS["jobs.launch"])


def launch_job(session: so.Session, template: JobTemplate, user: User, limit: str | None = None,
               tags: str | list[str] | None = None, check: bool = False,
               extra_vars: dict[str, Any] | str | None = None, override: bool = False,
               override_reason: str = "", scope: Scope | None = None) -> Job:
    """Queue a run of the template; None for limit or tags takes the template's defaults. The launch
    variables are laid over the template's. A run that would change equipment during a meeting at one of
    its sites is refused unless `override` with a reason (app.provisioning.guard.service). A scoped user's
    run is refused (403 naming the scope) when any of its hosts lies outside the scope, a shared bridge
    included; the sites it works on are kept with the job (JobSite), for the scopes' lists."""
    if not may_launch(template, user):
        raise Forbidden(_("Your role may not launch the template %(name)s.", name=template.name))
    if check and not template.check_allowed:
        raise Invalid(_("The template %(name)s does not allow check mode.", name=template.name),
                      {"check_mode": [_("Not allowed for this template.")]})
    playbook_path(template.playbook)
    limit = clean_limit(template.default_limit if limit is None else limit)
    site_ids, bridges = guard.job_targets(session, template, limit)
    if scope is not None:
        shared = session.scalars(sa.select(Bridge.id).where(Bridge.id.in_(list(bridges)), Bridge.site_id.is_(None)))
        if shared.first() is not None:
            raise scope.refusal()
        scopes.require(scope, *site_ids)
    # Meeting-window guard (issue 4): refused during a site's meeting unless overridden with a reason.
    overridden = guard.check_launch(session, template, limit, bool(check), override, override_reason)
    job = Job(template=template, launched_by_id=user.id, playbook=template.playbook, limit=limit,
              tags=clean_tags(template.tags if tags is None else tags), check_mode=bool(check),
              extra_vars={**(template.extra_vars or {}), **clean_extra_vars(extra_vars)},
              state=JobState.QUEUED)
    session.add(job)
    session.flush()
    session.add_all(JobSite(job_id=job.id, site_id=site_id) for site_id in sorted(site_ids))
    outbox.enqueue(session, "jobs.run", job_id=job.id)
    audit.record(session, "launch", "Job", str(job.id), template.name,
                 after={"limit": job.limit, "tags": job.tags, "check_mode": job.check_mode})
    if overridden:  # meeting-window guard: the override is kept with the job and audited
        guard.record_override(session, job, user, override_reason, overridden)
    return job


def relaunch_job(session: so.Session, job: Job, user: User, scope: Scope | None = None) -> Job:
    """Launch the template again with what this job was asked (the template's checks apply as of now)."""
    extra = {k: v for k, v in (job.extra_vars or {}).items() if (job.template.extra_vars or {}).get(k) != v}
    return launch_job(session, job.template, user, limit=job.limit, tags=job.tags, check=job.check_mode,
                      extra_vars=extra, scope=scope)


def request_cancel(session: so.Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop (its worker ends the run)."""
    session.refresh(job, with_for_update=True)
    if job.state is JobState.RUNNING:
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
    else:
        job.cancel()  # refused with a Conflict when the job has ended already
    session.flush()
    audit.record(session, "cancel", "Job", str(job.id), job.template.name)
    return job


# ---------------------------------------------------------------- reading

def get_job(session: so.Session, job_id: int, scope: Scope | None = None) -> Job:
    """The job, or 404 when it does not exist or works on no site of the scope."""
    message = _("No job with id %(id)s.", id=job_id)
    job = get_or_raise(session, Job, job_id, message)
    if scope is not None and session.scalar(sa.select(sa.literal(True)).where(
            JobSite.job_id == job.id, scope.clause(JobSite.site_id)).limit(1)) is None:
        raise NotFound(message)
    return job


def get_changeable_job(session: so.Session, job_id: int, scope: Scope | None = None) -> Job:
    """The job to cancel: as get_job, and 403 naming the scope when it also works on sites outside it."""
    job = get_job(session, job_id, scope)
    if scope is not None:
        scopes.require(scope, *session.scalars(sa.select(JobSite.site_id).where(JobSite.job_id == job.id)))
    return job


@dataclass(frozen=True)
class JobFilter:
    state: str = ""
    template_id: int | None = None
    launched_by_id: int | None = None
    since: dt.datetime | None = None  # aware; jobs created at or after
    until: dt.datetime | None = None  # aware; jobs created strictly before
    scope: Scope | None = None  # the user's: jobs working on a site of it


def job_query(f: JobFilter) -> sa.Select[tuple[Job]]:
    """The jobs matching the filter, newest first."""
    stmt = (sa.select(Job).options(so.joinedload(Job.template), so.joinedload(Job.launched_by))
            .order_by(Job.created_at.desc(), Job.id.desc()))
    if f.scope is not None:
        stmt = stmt.where(sa.exists(sa.select(JobSite.job_id).where(JobSite.job_id == Job.id,
                                                                   f.scope.clause(JobSite.site_id))))
    if f.state:
        stmt = stmt.where(Job.state == JobState(f.state))
    if f.template_id is not None:
        stmt = stmt.where(Job.template_id == f.template_id)
    if f.launched_by_id is not None:
        stmt = stmt.where(Job.launched_by_id == f.launched_by_id)
    if f.since is not None:
        stmt = stmt.where(Job.created_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Job.created_at < f.until)
    return stmt


def launchers(session: so.Session) -> list[User]:
    """The users who launched jobs, for the history's filter."""
    return list(session.scalars(sa.select(User).where(User.id.in_(sa.select(Job.launched_by_id).distinct()))
                                .order_by(User.email)))


def events_after(session: so.Session, job: Job, after: int = 0, limit: int = 500) -> list[JobEvent]:
    return list(session.scalars(sa.select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.seq > after)
                                .order_by(JobEvent.seq).limit(limit)))
