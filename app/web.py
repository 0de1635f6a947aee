"""The request cycle: who is asking, may they, the one commit point, errors, language and time."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    has_request_context,
    jsonify,
    render_template,
    request,
    session,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from app.auth import audit
from app.auth.models import User
from app.auth.permissions import AccessRule, role_can, rule_for
from app.db import commit_scope, db, reset_write_intent, set_write_intent
from app.errors import DomainError, error_body
from app.extensions import api, babel, csrf, form_messages, library_message, limiter, login_manager, wants_json

log = logging.getLogger(__name__)
LANGUAGES = ("vi", "en")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Views that Flask and flask-smorest define themselves, so they cannot carry our decorator.
FOREIGN_ENDPOINT_RULES = {
    "static": AccessRule("public", reason="style sheets and scripts; no data"),
    "api-docs.openapi_json": AccessRule("public", reason="the API's description holds no data"),
}


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=_locale, timezone_selector=lambda: app.config["TIMEZONE"])
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.user_loader(_load_user)
    login_manager.session_protection = "strong"
    login_manager.login_message = _l("Please log in to access this page.")
    login_manager.localize_callback = str  # the lazy message in the request's language (a session stores text)

    app.config.setdefault("API_TITLE", "VCOps API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api.init_app(app, spec_kwargs={"components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearerAuth": []}]})

    _register_blueprints(app)
    app.before_request(_form_messages)
    app.before_request(_before_request)
    # after_request functions run in reverse order: commit first, then headers on whatever it returned.
    app.after_request(_security_headers)
    app.after_request(_commit_point)
    app.teardown_request(_reset_request_state)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sa.exc.IntegrityError, _integrity_error)
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals.update(role_can=lambda perm: role_can(getattr(current_user, "role", None), perm),
                                 LANGUAGES=LANGUAGES, current_language=lambda: str(get_locale() or "vi"))


def _register_blueprints(app: Flask) -> None:
    from app import health
    from app.auth import routes as auth_routes
    from app.calendar import routes as calendar_routes
    from app.devices import routes as devices_routes
    from app.meetings import agenda_api, agenda_routes
    from app.meetings import api as meetings_api
    from app.meetings import routes as meetings_routes
    from app.monitoring import api as monitoring_api
    from app.monitoring import routes as monitoring_routes
    from app.monitoring import webmetrics
    from app.provisioning import api as jobs_api
    from app.provisioning import routes as jobs_routes
    from app.provisioning.backup_routes import bp as backups_bp
    from app.provisioning.firmware_routes import bp as firmware_bp
    from app.provisioning.guard_routes import bp as guard_bp
    from app.provisioning.schedule_routes import bp as schedules_bp
    from app.sites import api as sites_api
    from app.sites import routes as sites_routes

    app.register_blueprint(health.bp)
    app.register_blueprint(auth_routes.bp)
    app.register_blueprint(sites_routes.bp)
    app.register_blueprint(meetings_routes.bp)
    app.register_blueprint(calendar_routes.bp)
    app.register_blueprint(agenda_routes.bp)
    app.register_blueprint(jobs_routes.bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(backups_bp)
    app.register_blueprint(firmware_bp)
    app.register_blueprint(guard_bp)
    app.register_blueprint(devices_routes.bp)
    app.register_blueprint(monitoring_routes.bp)
    app.register_blueprint(webmetrics.bp)
    for blueprint in [*sites_api.blueprints, *meetings_api.blueprints, *agenda_api.blueprints, *jobs_api.blueprints,
                      *monitoring_api.blueprints]:
        api.register_blueprint(blueprint)  # each carries its own url_prefix under /api/v1
        csrf.exempt(blueprint)  # API changes need a bearer token (checked below), never a cookie


def _locale() -> str:
    if not has_request_context():
        return current_app.config["DEFAULT_LANGUAGE"]  # mail and CLI: the default language
    if request.path.startswith("/api/") and request.accept_languages:
        # API clients say what they read; the interface language of a user is for pages.
        return request.accept_languages.best_match(LANGUAGES) or current_app.config["DEFAULT_LANGUAGE"]
    user = current_user
    if getattr(user, "is_authenticated", False) and user.language in LANGUAGES:
        return user.language
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return current_app.config["DEFAULT_LANGUAGE"]


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


def _form_messages() -> None:
    request.wtforms_translations = form_messages  # type: ignore[attr-defined]  # read by Flask-WTF


def _before_request() -> Response | None:
    g.write_token = set_write_intent(request.method not in SAFE_METHODS)
    if request.endpoint is None:
        return None  # 404 and 405 are answered by the error handler
    rule = FOREIGN_ENDPOINT_RULES.get(request.endpoint) or rule_for(
        current_app.view_functions[request.endpoint], request.method)
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
    if not rule.allows(current_user.role):
        abort(403)
    return None


def _commit_point(response: Response) -> Response:
    """The one commit point of a request: commit on success, roll back on any error status."""
    session = db.session()
    if response.status_code >= 400:
        session.rollback()
        return response
    try:
        with commit_scope():
            pass
    except sa.exc.IntegrityError as exc:
        log.warning("commit refused by the database: %s", exc.orig)
        return _error_response(409, "conflict", _("The change conflicts with data saved meanwhile; try again."))
    return response


def _security_headers(response: Response) -> Response:
    # Pages are only ever framed by nobody, scripts come only from us, and types are never guessed.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
    return response


def _reset_request_state(_exc: BaseException | None) -> None:
    token = g.pop("actor_token", None)
    if token is not None:
        audit.reset_actor(token)
    write = g.pop("write_token", None)
    if write is not None:
        reset_write_intent(write)


def _error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Response:
    db.session.rollback()
    if wants_json():
        response = jsonify(error_body(status, code, message, fields))
    else:
        response = Response(render_template("error.html", status=status, message=message), mimetype="text/html")
    response.status_code = status
    return response


def _domain_error(error: DomainError) -> Response:
    return _error_response(error.status, error.code, error.message, error.fields)


def _integrity_error(error: sa.exc.IntegrityError) -> Response:
    # The services check uniqueness first; this is the race where another request saved the same thing meanwhile.
    log.warning("the database refused a change: %s", error.orig)
    return _error_response(409, "conflict", _("The change conflicts with data saved meanwhile; try again."))


def _http_error(error: HTTPException) -> Response | HTTPException:
    if error.code is None or error.code < 400:
        return error
    code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "validation_error",
            429: "too_many_requests"}.get(error.code, "error")
    message = library_message(error.description or error.name)
    if error.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        message = _("The upload is larger than the %(limit)s MB the server accepts.", limit=limit)
    response = _error_response(error.code, code, message)
    if error.code == 401 and wants_json():
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def localtime(value: dt.datetime | None, fmt: str = "dd/MM/yyyy HH:mm") -> str:
    """Show a stored UTC time in the configured zone (Asia/Ho_Chi_Minh), day first and on a 24-hour clock,
    as Vietnamese offices write it, in either language."""
    if value is None:
        return ""
    return format_datetime(value, fmt)


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])
