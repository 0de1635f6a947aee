"""The request cycle: the one commit point, the error format for pages and API, security headers, language and
local time. Who is asking and whether they may is app.auth.access's part (it runs first, before every view)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    render_template,
    request,
    session,
)
from flask.json.provider import DefaultJSONProvider
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException

from app.db import commit_scope, database_unreachable, db, describe_outage, reset_write_intent, set_write_intent
from app.errors import DomainError, Invalid, error_body
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
from app.web.schemas import INTEGER_MAX, INTEGER_MIN, unstorable

log = logging.getLogger(__name__)
LANGUAGES = ("vi", "en")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# What a client is told to wait during a database outage: long enough not to hammer a recovering server.
RETRY_AFTER_SECONDS = 30
# The JSON parser's limits. No body the API takes is nested more than a few levels (an alert's labels are the
# deepest, at four) or is near a megabyte (Alertmanager's largest posts are a few hundred kB); past these a body
# is a mistake or an attack, refused before any view sees it rather than ending in a RecursionError.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 4 * 1024 * 1024


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

    app.json = RequestJSONProvider(app)
    app.request_class = BoundedRequest
    app.before_request(_refuse_unstorable_text)
    app.before_request(_form_messages)
    app.before_request(_write_intent)
    # after_request functions run in reverse order: commit first, then headers on whatever it returned.
    app.after_request(_security_headers)
    app.after_request(_privacy_headers)
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


# ---------------------------------------------------------------- what comes in: JSON bodies, query strings, forms

class JsonRefused(DomainError, ValueError):
    """A body the JSON parser will not hand on. A ValueError too, so that `request.get_json(silent=True)` takes
    it as any body that is not JSON; the API's parser (app.web.api) lets it reach the one error format."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, fields, code)
        self.status = status


def _unstorable_message() -> str:
    return _("must not contain a NUL character or a lone surrogate")


def load_json(data: str | bytes) -> Any:
    """Parse a request's JSON body within the limits: at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH,
    and no lone surrogate ("\\ud800", which JSON can spell and UTF-8 cannot) in any string or key, the error naming
    where ("title", "items.0.name"). NUL and other control characters are the schemas' to refuse, in their own
    words (app.web.schemas.Input). Malformed JSON raises json.JSONDecodeError, as json.loads does."""
    if len(data) > MAX_JSON_BYTES:
        raise JsonRefused(413, "too_large", _("The JSON body is larger than the %(limit)s MB the server accepts.",
                                              limit=MAX_JSON_BYTES // (1024 * 1024)))
    try:
        value = json.loads(data)
    except RecursionError:
        value = None  # deeper than Python's own stack: far past the limit, refused below
        deepest = MAX_JSON_DEPTH + 1
    else:
        deepest = 0
    fields: dict[str, list[str]] = {}
    # Walked without recursion: a body just under the recursion limit must not overflow here instead.
    pending: list[tuple[Any, str, int]] = [(value, "", 0)]
    while pending and deepest <= MAX_JSON_DEPTH:
        node, path, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(node, str):
            if _lone_surrogate(node):
                fields.setdefault(path or "body", [_unstorable_message()])
        elif isinstance(node, dict):
            for key, item in node.items():
                name = f"{path}.{key}" if path else str(key)
                if _lone_surrogate(key):
                    fields.setdefault(path or "body", [_unstorable_message()])
                    name = f"{path}.?" if path else "?"
                pending.append((item, name, depth + 1))
        elif isinstance(node, list):
            pending.extend((item, f"{path}.{index}" if path else str(index), depth + 1)
                           for index, item in enumerate(node))
    if deepest > MAX_JSON_DEPTH:
        raise JsonRefused(400, "invalid_json",
                          _("The JSON body is nested deeper than %(depth)s levels.", depth=MAX_JSON_DEPTH))
    if fields:
        raise JsonRefused(422, "validation_error", _invalid_input(fields), fields)
    return value


def _invalid_input(fields: dict[str, list[str]]) -> str:
    # The same words as the API's other validation errors (app.extensions.VCOpsApi.handle_http_exception).
    return _("Invalid input: %(problems)s",
             problems="; ".join(f"{name}: {' '.join(reasons)}" for name, reasons in fields.items()))


def _lone_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


class RequestJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading within load_json's limits (request.get_json goes through here)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return load_json(s)


class BoundedParameters(ImmutableMultiDict[str, str]):
    """A query string or form whose `.get(name, type=int)` takes a number past the database's integer as no number
    at all (the default, as for "abc"): the pages' filters (?within=, ?site_id=) never hand one to a query."""

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # werkzeug's own names
        value = super().get(key, default, type)
        if type is int and isinstance(value, int) and not INTEGER_MIN <= value <= INTEGER_MAX:
            return default
        return value

    def getlist(self, key: str, type: Any = None) -> list[Any]:
        values = super().getlist(key, type)
        if type is int:
            return [value for value in values if INTEGER_MIN <= value <= INTEGER_MAX]
        return values


class BoundedRequest(Request):
    parameter_storage_class = BoundedParameters


def _refuse_unstorable_text() -> None:
    """NUL or a lone surrogate in a query string, a form or an address: 422 naming the parameter, for pages and
    the API alike, before any view hands it to the database (PostgreSQL's text refuses NUL) or a search."""
    fields: dict[str, list[str]] = {}
    for name, value in [*_multi_items(request), *((request.view_args or {}).items())]:
        if isinstance(value, str) and (unstorable(value) or unstorable(name)):
            fields[name if not unstorable(name) else "?"] = [_unstorable_message()]
    if fields:
        raise Invalid(_invalid_input(fields), fields, code="validation_error")


def _multi_items(req: Request) -> list[tuple[str, str]]:
    items = list(req.args.items(multi=True))
    # Only a plain form: an upload's parts are parsed by its view, after the access check (a stranger's upload is
    # not read here), and their text fields are checked by the form or schema (CheckedForm, Input) like any other.
    if req.mimetype == "application/x-www-form-urlencoded":
        items += list(req.form.items(multi=True))
    return items


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


HSTS_MAX_AGE = 365 * 86400  # a year, as browsers' preload lists expect; only ever sent over an https BASE_URL


def _privacy_headers(response: Response) -> Response:
    """HSTS when the app is served over https; `no-store` on what carries personal or secret data (every answer to
    a logged-in user or an API token, and every API answer), so that neither a shared office computer's browser
    cache nor a proxy keeps a copy once the session has ended. Style sheets and public pages stay cacheable."""
    if str(current_app.config["BASE_URL"]).startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}")
    # Only a user the request already looked up: asking for one here could reach a database that is down.
    user = g.get("_login_user")
    if request.path.startswith("/api/") or getattr(user, "is_authenticated", False):
        response.headers["Cache-Control"] = "no-store"
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

