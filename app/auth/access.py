"""Who is asking, and may they: the session or bearer token behind a request, checked against the access rule
its view declares (app.web.access) and the roles behind each permission (app.auth.permissions).

Installed by the factory before any view runs; a view without a rule is refused (fail closed), and a rule that
names a permission no role holds stops the app at start.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.auth import audit, two_factor
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


# What the session cookie holds besides Flask-Login's keys: when the login happened, when the session was last
# used (both epoch seconds, so that tests can move them back), and whether "remember me" was ticked.
LOGIN_AT, SEEN_AT, REMEMBER = "_login_at", "_seen_at", "_remembered"  # Flask-Login has "_remember"
# The last-use time is rewritten at most this often: not every request needs a new cookie.
SEEN_RESOLUTION_SECONDS = 60
# Where a user who must first change their password or set up two-factor sign-in may still go.
DETOUR_ENDPOINTS = {"auth.password_required", "auth.two_factor_setup", "auth.logout"}


def start_session(user: User, remember: bool) -> None:
    """Stamp the request's session as a new login (after flask_login.login_user)."""
    now = time.time()
    session[LOGIN_AT] = session[SEEN_AT] = now
    session[REMEMBER] = remember
    session.permanent = remember  # only then does the cookie outlive the browser


def forget_session() -> None:
    for key in (LOGIN_AT, SEEN_AT, REMEMBER):
        session.pop(key, None)


def session_end_reason(login_at: float, seen_at: float, remember: bool, now: float,
                       config: dict[str, Any]) -> str | None:
    """Why a session is over ("lifetime" or "idle"), or None while it lasts."""
    lifetime = (config["SESSION_REMEMBER_DAYS"] * 86400 if remember else config["SESSION_LIFETIME_HOURS"] * 3600)
    if now - login_at >= lifetime:
        return "lifetime"
    if not remember and now - seen_at >= config["SESSION_IDLE_MINUTES"] * 60:
        return "idle"
    return None


def _load_user(user_id: str) -> User | None:
    """The session's user, if the session still stands: the user is active, no logout or new password has
    raised their session version since, and neither the idle timeout nor the lifetime has passed."""
    uid, _, version = user_id.partition(":")
    if not uid.isdigit() or not version.isdigit():
        return None  # a session from before session versions: logged out once
    user = db.session.get(User, int(uid))
    if user is None or not user.active or user.session_version != int(version):
        return None
    now = time.time()
    try:
        login_at, seen_at = float(session[LOGIN_AT]), float(session[SEEN_AT])
    except (KeyError, TypeError, ValueError):
        return None
    reason = session_end_reason(login_at, seen_at, bool(session.get(REMEMBER)), now, current_app.config)
    if reason is not None:
        _expire(user, reason)
        return None
    if now - seen_at >= SEEN_RESOLUTION_SECONDS:
        session[SEEN_AT] = now
    return user


def _expire(user: User, reason: str) -> None:
    token = audit.set_actor(audit.Actor(user.id, user.email))
    try:
        audit.record(db.session, "session_expire", "User", str(user.id), f"{user.email}: {reason}")
    finally:
        audit.reset_actor(token)
    for key in ("_user_id", "_fresh", "_id"):
        session.pop(key, None)
    forget_session()
    if reason == "idle":
        flash(_("Your session ended after %(n)s minutes without use; please log in again.",
                n=current_app.config["SESSION_IDLE_MINUTES"]), "error")
    else:
        flash(_("Your session reached its time limit; please log in again."), "error")


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
    if not g.get("token_auth"):
        detour = _detour(current_user)
        if detour is not None and request.endpoint not in DETOUR_ENDPOINTS:
            # Nothing else until it is done; API tokens are not sessions, and go on working.
            if wants_json():
                abort(403, description=_("Finish logging in on the web page first (a new password or "
                                         "two-factor sign-in is required)."))
            return redirect(url_for(detour))
    if not rule_allows(rule, current_user.role):
        abort(403)
    return None


def _detour(user: User) -> str | None:
    """The page a logged-in user must see before any other: a new password first, then two-factor set-up."""
    if user.must_change_password:
        return "auth.password_required"
    if two_factor.must_enrol(user, current_app.config):
        return "auth.two_factor_setup"
    return None


def _forget_actor(_exc: BaseException | None) -> Any:
    token = g.pop("actor_token", None)
    if token is not None:
        audit.reset_actor(token)
