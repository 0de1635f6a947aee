"""Who is asking, and may they: the session or bearer token behind a request, checked against the access rule
its view declares (app.web.access) and the roles behind each permission (app.auth.permissions).

Installed by the factory before any view runs; a view without a rule is refused (fail closed), and a rule that
names a permission no role holds stops the app at start.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, abort, current_app, g, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.auth import audit
from app.auth.models import User
from app.auth.permissions import PERMISSIONS, role_can, rule_allows
from app.db import db
from app.extensions import login_manager, wants_json
from app.web import health
from app.web.access import endpoint_rule, rule_for

log = logging.getLogger(__name__)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
HEALTH_DETAIL_PERMISSION = "monitoring.view"  # operators read what /healthz finds wrong


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(_load_user)
    login_manager.session_protection = "strong"
    login_manager.login_message = _l("Please log in to access this page.")
    login_manager.localize_callback = str  # the lazy message in the request's language (a session stores text)
    app.before_request(_check_access)
    app.teardown_request(_forget_actor)
    app.jinja_env.globals["role_can"] = lambda perm: role_can(getattr(current_user, "role", None), perm)
    app.extensions[health.DETAIL_VIEWER] = _may_see_health_details


def check_rules(app: Flask) -> None:
    """Refuse to start when a view's rule names a permission that no role table knows (a typo would lock
    everybody out of that view, or worse, be read as some other permission)."""
    unknown = set()
    for endpoint, view in app.view_functions.items():
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            rule = rule_for(view, method)
            if rule is not None and rule.kind == "permission" and rule.permission not in PERMISSIONS:
                unknown.add(f"{endpoint}: {rule.permission}")
    if unknown:
        raise RuntimeError("views require unknown permissions: " + ", ".join(sorted(unknown)))


def _load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


def _authenticate_bearer() -> None:
    """A request with a bearer token is that token's user, whatever cookie came with it (no session is read)."""
    header = request.headers.get("Authorization", "")
    if not header:
        return
    if not header.startswith("Bearer "):
        abort(401, description=_("Use 'Authorization: Bearer <token>'."))
    from app.auth.service import user_for_token

    user = user_for_token(db.session, header[len("Bearer "):].strip())
    if user is None:
        abort(401, description=_("The API token is unknown or revoked."))
    g._login_user = user  # where Flask-Login keeps the request's user
    g.token_auth = True


def _may_see_health_details() -> bool:
    """Whether this /healthz request is an operator's (monitoring.view, by API token or session): only they read
    what is wrong. /healthz is public, so nothing here refuses: a load balancer sends neither and gets the state,
    and a bad token or a database that does not answer (the very thing /healthz reports) means no details."""
    try:
        header = request.headers.get("Authorization", "")
        if header:
            from app.auth.service import user_for_token

            user = user_for_token(db.session, header.removeprefix("Bearer ").strip()) \
                if header.startswith("Bearer ") else None
            return user is not None and role_can(user.role, HEALTH_DETAIL_PERMISSION)
        return bool(current_user.is_authenticated and role_can(current_user.role, HEALTH_DETAIL_PERMISSION))
    except Exception:
        log.warning("could not tell who asks for /healthz; answering with the state only", exc_info=True)
        db.session.rollback()
        return False


def _check_access() -> Response | None:
    if request.endpoint is None:
        return None  # 404 and 405 are answered by the error handler
    rule = endpoint_rule(current_app.view_functions, request.endpoint, request.method)
    if rule is None:
        # Fail closed: a view without an access rule is a programming error, never an open door.
        log.error("view %s has no access rule; refused", request.endpoint)
        abort(403)
    if rule.kind == "public":
        return None
    _authenticate_bearer()
    if not current_user.is_authenticated:
        if wants_json():
            abort(401, description=_("Log in, or send an API token as 'Authorization: Bearer <token>'."))
        return login_manager.unauthorized()
    if request.path.startswith("/api/") and request.method not in SAFE_METHODS and not g.get("token_auth"):
        abort(401, description=_("Changes through the API need an API token (Authorization: Bearer …)."))
    g.actor_token = audit.set_actor(audit.Actor(current_user.id, current_user.email))
    if not rule_allows(rule, current_user.role):
        abort(403)
    return None


def _forget_actor(_exc: BaseException | None) -> Any:
    token = g.pop("actor_token", None)
    if token is not None:
        audit.reset_actor(token)
