"""The access rule every view declares, and how to read it back; the roles behind a permission are auth's.

Rules are one of:
- `require("perm")`: a logged-in user whose role holds the permission;
- `login_required_only`: any logged-in user (their own profile, tokens, the home page);
- `public("why")`: no user; the reason says what else protects it (nothing, a signature, a token).

The request cycle refuses a view without a rule (fail closed); app.auth.access checks the rule against the
user's role, and refuses at start a rule naming a permission no role table knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AccessRule:
    kind: str  # "permission", "login" or "public"
    permission: str = ""
    reason: str = ""


def _mark(rule: AccessRule) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view._vcops_access = rule  # type: ignore[attr-defined]
        return view

    return decorate


def require(permission: str) -> Callable[[F], F]:
    return _mark(AccessRule("permission", permission=permission))


def login_required_only(view: F) -> F:
    return _mark(AccessRule("login"))(view)


def public(reason: str) -> Callable[[F], F]:
    return _mark(AccessRule("public", reason=reason))


# Views that Flask and flask-smorest define themselves, so they cannot carry our decorator.
FOREIGN_ENDPOINT_RULES = {
    "static": AccessRule("public", reason="style sheets and scripts; no data"),
    "api-docs.openapi_json": AccessRule("public", reason="the API's description holds no data"),
}


def rule_for(view: Callable[..., Any], method: str) -> AccessRule | None:
    """The rule of a view function, or of the method of a class-based view."""
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method in ("HEAD", "OPTIONS"):
            handler = getattr(view_class, "get", None)  # these only describe what GET would give
        return getattr(handler, "_vcops_access", None) or getattr(view_class, "_vcops_access", None)
    return getattr(view, "_vcops_access", None)


def endpoint_rule(view_functions: dict[str, Callable[..., Any]], endpoint: str, method: str) -> AccessRule | None:
    return FOREIGN_ENDPOINT_RULES.get(endpoint) or rule_for(view_functions[endpoint], method)
