"""The request cycle: the one commit point, the error format for pages and API, security headers, language and
local time. Who is asking and whether they may is app.auth.access's part (it runs first, before every view)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Flask,
    Response,
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
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from app.db import commit_scope, database_unreachable, db, describe_outage, reset_write_intent, set_write_intent
from app.errors import DomainError, error_body
from app.extensions import (
    api,
    babel,
    csrf,
    form_messages,
    http_error_headers,
    library_message,
    limiter,
    login_manager,
    wants_json,
)

log = logging.getLogger(__name__)
LANGUAGES = ("vi", "en")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# What a client is told to wait during a database outage: long enough not to hammer a recovering server.
RETRY_AFTER_SECONDS = 30


def init_app(app: Flask) -> None:
    """Extensions and the request cycle; blueprints come after, from the factory."""
    babel.init_app(app, locale_selector=_locale, timezone_selector=lambda: app.config["TIMEZONE"])
    csrf.init_app(app)
    limiter.init_app(app)

    app.config.setdefault("API_TITLE", "VCOps API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api.init_app(app, spec_kwargs={"components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearerAuth": []}]})

    app.before_request(_form_messages)
    app.before_request(_write_intent)
    # after_request functions run in reverse order: commit first, then headers on whatever it returned.
    app.after_request(_security_headers)
    app.after_request(_commit_point)
    app.teardown_request(_reset_request_state)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sa.exc.IntegrityError, _integrity_error)
    # Any other database error: an outage answers 503 (the IntegrityError handler above is more specific).
    app.register_error_handler(sa.exc.DBAPIError, _database_error)
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, current_language=lambda: str(get_locale() or "vi"))


def register_api(app: Flask, blueprints: list[Any]) -> None:
    """The JSON API's blueprints, each with its own url_prefix under /api/v1."""
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)  # API changes need a bearer token (app.auth.access), never a cookie


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


def _form_messages() -> None:
    request.wtforms_translations = form_messages  # type: ignore[attr-defined]  # read by Flask-WTF


def _write_intent() -> None:
    g.write_token = set_write_intent(request.method not in SAFE_METHODS)


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
    except sa.exc.DBAPIError as exc:
        if not database_unreachable(exc):
            raise
        return _database_unavailable(exc)
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
    write = g.pop("write_token", None)
    if write is not None:
        reset_write_intent(write)


def _error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Response:
    try:
        db.session.rollback()
    except sa.exc.DBAPIError as exc:
        # A connection the outage broke may refuse even the rollback; the session is discarded at teardown.
        log.warning("rollback failed: %s", exc.orig)
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


def _database_error(error: sa.exc.DBAPIError) -> Response:
    if not database_unreachable(error):
        raise error  # a statement at fault is a bug: Flask logs it and answers 500, as without this handler
    return _database_unavailable(error)


def _database_unavailable(error: sa.exc.DBAPIError) -> Response:
    """The database does not answer: 503 with Retry-After in the one format, the driver's detail to the log only
    (it names hosts and ports the client has no business knowing)."""
    bind = db.session.get_bind()
    log.error("database unreachable: %s", describe_outage(error, getattr(bind, "url", None)))
    # Nobody can be looked up now, and a user loaded before the outage is expired by the rollback: the page (its
    # menu, its language) is rendered as for a visitor rather than failing again on the same database.
    g._login_user = login_manager.anonymous_user()
    response = _error_response(503, "unavailable",
                               _("The database does not answer at the moment; try again in a few moments."))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


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
    # What the exception says besides its page: Allow on 405 (RFC 9110 requires it), Retry-After, and the like.
    response.headers.update(http_error_headers(error))
    if error.code == 401 and wants_json():
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def localtime(value: dt.datetime | None, fmt: str = "dd/MM/yyyy HH:mm") -> str:
    """Show a stored UTC time in the configured zone (Asia/Ho_Chi_Minh), day first and on a 24-hour clock,
    as Vietnamese offices write it, in either language."""
    if value is None:
        return ""
    return format_datetime(value, fmt)

