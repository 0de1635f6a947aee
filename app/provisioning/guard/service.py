"""The meeting-window guard: a job that would change equipment at a site while one of the site's meetings
holds it (from the setup start, the technicians' test call, to the end) is refused, unless a technician
confirms an override with a reason; the override is kept with the job and in the audit log.

A job changes equipment unless it runs in check mode or its template is marked read-only (backups,
readiness checks). Its hosts are the ones Ansible itself would pick (the playbook's plays within the limit,
over the inventory built from the database), so a group, a wildcard or an exclusion means here what it
means to ansible-playbook. The window checked is now .. now + the template's expected duration.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _

from app.auth import audit
from app.auth.models import User
from app.config import local_zone
from app.db import utcnow
from app.errors import Conflict, Invalid
from app.meetings.models import Meeting, Occurrence, Participation
from app.meetings.queries import holding
from app.provisioning.guard.models import DEFAULT_EXPECTED_MINUTES, JobOverride, TemplateGuard
from app.provisioning.inventory import build_inventory
from app.provisioning.models import Job, JobTemplate
from app.provisioning.runner.targets import target_hosts
from app.provisioning.runner.workdir import write_inventory
from app.sites.models import Site

log = logging.getLogger(__name__)
MIN_REASON = 10
MAX_EXPECTED_MINUTES = 1440  # a day: the longest window a job's run is checked against


@dataclass(frozen=True)
class MeetingInWindow:
    """An occurrence in the job's window at one or more of the job's sites (or on one of its bridges)."""

    occurrence_id: int
    meeting_id: int
    title: str
    sites: tuple[str, ...]
    setup_starts_at: dt.datetime
    ends_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"occurrence_id": self.occurrence_id, "meeting_id": self.meeting_id, "title": self.title,
                "sites": list(self.sites), "setup_starts_at": self.setup_starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat()}

    def describe(self) -> str:
        zone = local_zone()
        start, end = self.setup_starts_at.astimezone(zone), self.ends_at.astimezone(zone)
        return _("%(title)s at %(sites)s (from the setup at %(start)s to %(end)s)", title=self.title,
                 sites=", ".join(self.sites), start=start.strftime("%d/%m/%Y %H:%M"), end=end.strftime("%H:%M"))


# ---------------------------------------------------------------- a template's settings

def template_guard(session: so.Session, template: JobTemplate) -> TemplateGuard:
    """The template's guard settings; the defaults (changes equipment, 30 minutes) when none are stored."""
    settings = session.get(TemplateGuard, template.id) if template.id is not None else None
    return settings or TemplateGuard(template_id=template.id, changes_equipment=True,
                                     expected_minutes=DEFAULT_EXPECTED_MINUTES)


def load_template_guards(session: so.Session) -> None:
    """Read every template's guard settings at once, so that template_guard() of a list of templates finds them
    in the session instead of asking the database once per template."""
    session.scalars(sa.select(TemplateGuard)).all()


def save_template_guard(session: so.Session, template: JobTemplate, changes_equipment: bool | None = None,
                        expected_minutes: int | None = None) -> TemplateGuard:
    """Change the template's guard settings given (None keeps the stored one, or the default); audited, since
    they decide whether a job may run during a meeting."""
    problems: dict[str, list[str]] = {}
    if changes_equipment is not None and not isinstance(changes_equipment, bool):
        problems["changes_equipment"] = [_("Yes or no (true or false).")]
    if expected_minutes is not None and (isinstance(expected_minutes, bool) or not isinstance(expected_minutes, int)
                                         or not 1 <= expected_minutes <= MAX_EXPECTED_MINUTES):
        problems["expected_minutes"] = [_("A whole number of minutes from 1 to 1440 (24 hours).")]
    if problems:
        raise Invalid(_("The expected duration must be 1 to 1440 minutes.") if "expected_minutes" in problems
                      else _("Say whether the template changes equipment."), problems)
    current = template_guard(session, template)
    before = {"changes_equipment": current.changes_equipment, "expected_minutes": current.expected_minutes}
    settings = session.get(TemplateGuard, template.id)
    if settings is None:
        settings = TemplateGuard(template_id=template.id, changes_equipment=current.changes_equipment,
                                 expected_minutes=current.expected_minutes)
        session.add(settings)
    if changes_equipment is not None:
        settings.changes_equipment = changes_equipment
    if expected_minutes is not None:
        settings.expected_minutes = expected_minutes
    session.flush()
    after = {"changes_equipment": settings.changes_equipment, "expected_minutes": settings.expected_minutes}
    if after != before:
        audit.record(session, "update", "TemplateGuard", str(template.id),
                     f"{template.name}: changes equipment {after['changes_equipment']}, "
                     f"{after['expected_minutes']} min", after={"before": before, **after})
    return settings


# ---------------------------------------------------------------- which sites a job touches

def job_targets(session: so.Session, template: JobTemplate, limit: str) -> tuple[set[int], dict[int, str]]:
    """(site ids, {bridge id: name}) of the hosts the job would work on."""
    inventory = build_inventory(session, template.credential_id)
    playbook = Path(current_app.config["PLAYBOOK_DIR"]) / template.playbook
    with tempfile.TemporaryDirectory(prefix="vcops-guard-") as folder:
        path = Path(folder) / "hosts.yml"
        write_inventory(inventory, path)  # no logins: names, groups and addresses only
        try:
            hosts = target_hosts(playbook, path, limit)
        except Exception as exc:  # the run will fail on it; until then, assume every host is concerned
            log.info("guard: hosts of %s within %r not resolved (%s); checking every host", playbook.name, limit,
                     exc)
            hosts = list(inventory.hosts)
    codes = {inventory.hosts[h].get("vcops_site_code") for h in hosts if h in inventory.hosts} - {"", None}
    bridges = {int(inventory.hosts[h]["vcops_id"]): h for h in hosts
               if inventory.hosts.get(h, {}).get("vcops_kind") == "bridges"}
    site_ids = set(session.scalars(sa.select(Site.id).where(Site.code.in_(codes)))) if codes else set()
    return site_ids, bridges


def meetings_in_window(session: so.Session, site_ids: set[int], bridges: dict[int, str], start: dt.datetime,
                       end: dt.datetime) -> list[MeetingInWindow]:
    """Holding occurrences whose setup start .. end overlaps start .. end, at the sites or on the bridges."""
    if not site_ids and not bridges:
        return []
    at_sites = sa.select(Participation.occurrence_id).where(Participation.site_id.in_(site_ids))
    stmt = (sa.select(Occurrence).join(Meeting, Occurrence.meeting_id == Meeting.id)
            .options(so.selectinload(Occurrence.participations), so.joinedload(Occurrence.meeting))
            .where(holding(start, end),
                   sa.or_(Occurrence.id.in_(at_sites), Meeting.host_site_id.in_(site_ids),
                          Occurrence.bridge_id.in_(list(bridges))))
            .order_by(Occurrence.setup_starts_at, Occurrence.id))
    found = []
    for occurrence in session.scalars(stmt).unique():
        touched = {p.site_id for p in occurrence.participations} | {occurrence.meeting.host_site_id}
        names = sorted(session.scalars(sa.select(Site.name).where(Site.id.in_(touched & site_ids))))
        if occurrence.bridge_id in bridges:
            names.append(_("bridge %(name)s", name=bridges[occurrence.bridge_id]))
        found.append(MeetingInWindow(occurrence.id, occurrence.meeting_id, occurrence.meeting.title, tuple(names),
                                     occurrence.setup_starts_at, occurrence.ends_at))
    return found


# ---------------------------------------------------------------- the check at launch

def check_launch(session: so.Session, template: JobTemplate, limit: str, check: bool, override: bool = False,
                 reason: str = "", now: dt.datetime | None = None) -> list[MeetingInWindow]:
    """Refuse (Conflict 409) a job that would change equipment during a meeting at one of its sites, unless
    `override` with a reason of at least 10 characters (else Invalid 422). Returns the meetings overridden,
    empty when nothing stood in the way."""
    if check:
        return []
    settings = template_guard(session, template)
    if not settings.changes_equipment:
        return []
    start = now or utcnow()
    site_ids, bridges = job_targets(session, template, limit)
    meetings = meetings_in_window(session, site_ids, bridges, start,
                                  start + dt.timedelta(minutes=settings.expected_minutes))
    if not meetings:
        return []
    listed = "; ".join(m.describe() for m in meetings)
    if not override:
        raise Conflict(_("This job would change equipment during a meeting: %(meetings)s. Run it in check mode, "
                         "wait until the meeting ends, or confirm an override with a reason.", meetings=listed),
                       {"override": [_("Meetings in the way: %(meetings)s", meetings=listed)]},
                       code="meeting_in_progress")
    if len((reason or "").strip()) < MIN_REASON:
        raise Invalid(_("An override of a meeting needs a reason of at least %(n)s characters.", n=MIN_REASON),
                      {"override_reason": [_("Say why the job cannot wait (at least %(n)s characters).",
                                             n=MIN_REASON)]})
    return meetings


def record_override(session: so.Session, job: Job, user: User, reason: str,
                    meetings: list[MeetingInWindow]) -> JobOverride:
    """Keep the override with the job and in the audit log (call after the job is flushed)."""
    row = JobOverride(job_id=job.id, user_id=user.id, reason=reason.strip(), meetings=[m.as_dict() for m in meetings])
    session.add(row)
    session.flush()
    # The summary is stored as data (English), like every audit entry; pages translate their own labels.
    audit.record(session, "override", "Job", str(job.id), f"{job.template.name}: {reason.strip()}",
                 after={"reason": reason.strip(), "meetings": [m.as_dict() for m in meetings]})
    return row


def override_of(session: so.Session, job_id: int) -> JobOverride | None:
    return session.get(JobOverride, job_id)

