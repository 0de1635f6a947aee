"""Who may do what. Every view declares its rule; a view without one is refused (fail closed).

Rules are one of:
- `require("perm")`: a logged-in user whose role holds the permission;
- `login_required_only`: any logged-in user (their own profile, tokens, the home page);
- `public("why")`: no user; the reason says what else protects it (nothing, a signature, a token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.auth.models import Role

F = TypeVar("F", bound=Callable[..., Any])

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


@dataclass(frozen=True)
class AccessRule:
    kind: str  # "permission", "login" or "public"
    permission: str = ""
    reason: str = ""

    def allows(self, role: Role | None) -> bool:
        if self.kind == "public":
            return True
        if role is None:
            return False
        if self.kind == "login":
            return True
        return role in PERMISSIONS[self.permission]


def role_can(role: Role | None, permission: str) -> bool:
    return role is not None and role in PERMISSIONS[permission]


def _mark(rule: AccessRule) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view._vcops_access = rule  # type: ignore[attr-defined]
        return view

    return decorate


def require(permission: str) -> Callable[[F], F]:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return _mark(AccessRule("permission", permission=permission))


def login_required_only(view: F) -> F:
    return _mark(AccessRule("login"))(view)


def public(reason: str) -> Callable[[F], F]:
    return _mark(AccessRule("public", reason=reason))


def rule_for(view: Callable[..., Any], method: str) -> AccessRule | None:
    """The rule of a view function, or of the method of a class-based view."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method in ("HEAD", "OPTIONS"):
            handler = getattr(view_class, "get", None)  # these only describe what GET would give
        rule = getattr(handler, "_vcops_access", None) or getattr(view_class, "_vcops_access", None)
        return rule
    return getattr(view, "_vcops_access", None)
