"""Who may do what: the roles behind each permission. Views declare their rule with app.web.access
(`require("perm")`, `login_required_only`, `public("why")`); app.auth.access checks it with `rule_allows`."""

from __future__ import annotations

from app.auth.models import Role
from app.web.access import AccessRule

STAFF = {Role.ADMIN, Role.SECRETARIAT, Role.TECHNICIAN, Role.OPERATOR, Role.VIEWER}

PERMISSIONS: dict[str, frozenset[Role]] = {
    "inventory.view": frozenset(STAFF),
    "inventory.edit": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "maintenance.edit": frozenset({Role.ADMIN, Role.TECHNICIAN, Role.OPERATOR}),
    "users.manage": frozenset({Role.ADMIN}),
    # Meetings: site staff see only the meetings of their own site (checked on the object, in the service).
    "meetings.view": frozenset(STAFF),
    "meetings.book": frozenset({Role.ADMIN, Role.SECRETARIAT}),
    "meetings.attend": frozenset({Role.ADMIN, Role.SECRETARIAT, Role.SITE_STAFF}),
    # Equipment: technicians act on it; operators and viewers follow the jobs.
    "jobs.view": frozenset({Role.ADMIN, Role.TECHNICIAN, Role.OPERATOR, Role.VIEWER}),
    "jobs.launch": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "credentials.manage": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "devices.act": frozenset({Role.ADMIN, Role.TECHNICIAN}),
    "audit.view": frozenset({Role.ADMIN}),
    # Monitoring: every staff member may see the board; operators acknowledge incidents. Alertmanager posts its
    # webhook with the bearer token of a user holding monitoring.receive (an operator account made for it).
    "monitoring.view": frozenset(STAFF),
    "incidents.ack": frozenset({Role.ADMIN, Role.OPERATOR}),
    "monitoring.receive": frozenset({Role.ADMIN, Role.OPERATOR}),
}


def rule_allows(rule: AccessRule, role: Role | None) -> bool:
    if rule.kind == "public":
        return True
    if role is None:
        return False
    if rule.kind == "login":
        return True
    return role in PERMISSIONS[rule.permission]


def role_can(role: Role | None, permission: str) -> bool:
    return role is not None and role in PERMISSIONS[permission]
