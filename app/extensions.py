"""Flask extensions, created unbound and initialised in create_app()."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import marshmallow as ma
from flask import Response, jsonify, request
from flask_babel import Babel, get_translations
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from limits.storage import Storage
from werkzeug.exceptions import HTTPException

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

SQLITE_LIMITS_SCHEME = "vcops+sqlite"


class SqliteLimitStorage(Storage):
    """Rate-limit counters in a SQLite file, shared by every process on the machine: the embedded mode's storage.

    `limits` ships memory (one count per gunicorn worker, so "5 per minute" became 5 per worker), Redis,
    memcached and MongoDB, but nothing on a file, and the embedded mode has no server; this small storage keeps
    the fixed-window counters (the strategy Flask-Limiter uses) in their own file, INSTANCE_PATH/ratelimits.db,
    so that counting login guesses never waits on the application database's write lock. URI:
    ``vcops+sqlite:////absolute/path.db``. Each increment is one IMMEDIATE transaction, so concurrent workers
    serialise on it and never lose a count.
    """

    STORAGE_SCHEME = [SQLITE_LIMITS_SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        # As SQLAlchemy's sqlite URLs: after "///" the file, absolute when it starts with "/" (four slashes).
        _scheme, separator, path = uri.partition(":///")
        if not separator or not path.strip("/"):
            raise ValueError(f"{uri!r}: name the file, as {SQLITE_LIMITS_SCHEME}:////absolute/path.db")
        self.path = Path(unquote(path))
        self._local = threading.local()  # sqlite3 connections belong to one thread (and one process)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        # A connection made before gunicorn forked must not be shared with the child: one per process and thread.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        # Owner-only from its first byte (the -wal and -shm files take the same mode): it names client addresses.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, "
                     "expires_at REAL NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS ix_counters_expires_at ON counters (expires_at)")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        conn = self._connection()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Expired windows go first (all of them, so the file stays as small as the live counters).
            conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO counters (key, count, expires_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET count = count + excluded.count",
                         (key, amount, now + expiry))
            (count,) = conn.execute("SELECT count FROM counters WHERE key = ?", (key,)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(count)

    def get(self, key: str) -> int:
        row = self._connection().execute("SELECT count FROM counters WHERE key = ? AND expires_at > ?",
                                         (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._connection().execute("SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?",
                                         (key, now)).fetchone()
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._connection().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM counters WHERE key = ?", (key,))


class ClashDetail(ma.Schema):
    """One reason an occurrence cannot be booked (app.meetings.booking.Clash)."""

    kind = ma.fields.String(metadata={"description": "For programs, never translated: room, bridge, link, "
                                                     "maintenance, retired, path or time."})
    resource = ma.fields.String(metadata={"description": "The room, bridge or link, in the user's words."})
    message = ma.fields.String(metadata={"description": "The whole reason, for people."})
    meeting_id = ma.fields.Integer(allow_none=True, metadata={"description": "The meeting already holding it."})
    meeting_title = ma.fields.String()


class ClashedOccurrence(ma.Schema):
    starts_at = ma.fields.String(metadata={"format": "date-time",
                                           "description": "The refused occurrence's start, ISO 8601 in UTC."})
    clashes = ma.fields.List(ma.fields.Nested(ClashDetail))


class ErrorDetail(ma.Schema):
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status, repeated."})
    code = ma.fields.String(required=True, metadata={
        "description": "What went wrong, for programs: not_found, duplicate, validation_error, invalid_json, "
                       "cycle, same_site, clash, too_far_ahead, …"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong, for people."})
    fields = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()), required=True,
                            metadata={"description": "The fields at fault (nested ones as 'contacts.0.email', the "
                                                     "request body as a whole as 'body') and what is wrong with "
                                                     "each, in words; empty when no field is at fault. A refused "
                                                     "booking (code clash) lists each clash in words under "
                                                     "'clashes'."})
    clashes = ma.fields.List(ma.fields.Nested(ClashedOccurrence), metadata={
        "description": "Only in a refused booking, move or scheduling (409, code clash): every clash of every "
                       "refused occurrence, as objects."})


class ErrorSchema(ma.Schema):
    """The one error format (app.errors.error_body), as the OpenAPI document shows it."""

    error = ma.fields.Nested(ErrorDetail, required=True)


# Messages of the libraries under the interface, word for word, so that extraction carries them into our
# catalogue: werkzeug's HTTP errors and WTForms' validators ship no Vietnamese. `library_message` finds them.
LIBRARY_MESSAGES = (
    _l("The browser (or proxy) sent a request that this server could not understand."),
    _l("The server could not verify that you are authorized to access the URL requested. You either supplied the "
       "wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials "
       "required."),
    _l("You don't have the permission to access the requested resource. It is either read-protected or not "
       "readable by the server."),
    _l("The requested URL was not found on the server. If you entered the URL manually please check your spelling "
       "and try again."),
    _l("The method is not allowed for the requested URL."),
    _l("A conflict happened while processing the request. The resource might have been modified while the request "
       "was being processed."),
    _l("The request was well-formed but was unable to be followed due to semantic errors."),
    _l("This user has exceeded an allotted request count. Try again later."),
    _l("The server encountered an internal error and was unable to complete your request. Either the server is "
       "overloaded or there is an error in the application."),
    _l("The server is temporarily unable to service your request due to maintenance downtime or capacity problems. "
       "Please try again later."),
    # Flask-WTF's reasons for refusing a form without a valid CSRF token
    _l("The CSRF token is missing."),
    _l("The CSRF session token is missing."),
    _l("The CSRF token has expired."),
    _l("The CSRF token is invalid."),
    _l("The CSRF tokens do not match."),
    _l("The referrer header is missing."),
    _l("The referrer does not match the host."),
    # WTForms' validators and fields (their plural messages are left in English)
    _l("This field is required."),
    _l("Field must be equal to %(other_name)s."),
    _l("Field must be between %(min)d and %(max)d characters long."),
    _l("Number must be at least %(min)s."),
    _l("Number must be at most %(max)s."),
    _l("Number must be between %(min)s and %(max)s."),
    _l("Invalid email address."),
    _l("Invalid input."),
    _l("Not a valid choice."),
    _l("Invalid Choice: could not coerce."),
    _l("Invalid choice(s): one or more data inputs could not be coerced."),
    _l("Not a valid integer value."),
    _l("Not a valid float value."),
    _l("Not a valid decimal value."),
    _l("Not a valid datetime value."),
    _l("Not a valid date value."),
    _l("Not a valid time value."),
)


def library_message(message: str) -> str:
    """A library's English message in the request's language; any other text comes back as it is."""
    return get_translations().ugettext(message)


class FormMessages:
    """WTForms' messages from our catalogue, in the request's language (WTForms ships no Vietnamese).

    Flask-WTF asks `request.wtforms_translations` first; web.py puts this there. The language is looked up at
    each message, after the request knows its user.
    """

    def ugettext(self, message: str) -> str:
        return library_message(message)

    def ungettext(self, singular: str, plural: str, n: int) -> str:
        return get_translations().ungettext(singular, plural, n)


form_messages = FormMessages()

HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "validation_error",
                    429: "too_many_requests"}


def http_error_headers(error: HTTPException) -> dict[str, str]:
    """The headers an HTTP error carries besides its own page (Allow on 405, Retry-After on 429 or 503, …),
    for the handlers that answer in the one format instead of werkzeug's page."""
    return {name: value for name, value in error.get_headers() if name.lower() != "content-type"}


def _flatten(errors: Mapping[Any, Any], prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages ({"contacts": {0: {"email": [...]}}}) as {"contacts.0.email": [...]}."""
    flat: dict[str, list[str]] = {}
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    return flat


class VCOpsApi(Api):
    """flask-smorest with the project's one error format instead of its own."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # The app-wide HTTPException handler is web._http_error (HTML or JSON); each API blueprint registers
        # handle_http_exception below for itself (app.sites.api.ApiBlueprint), which also reports webargs'
        # per-field messages.
        pass

    def handle_http_exception(self, error: HTTPException) -> Response:
        from app.errors import error_body

        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or {}
        fields: dict[str, list[str]] = {}
        # webargs files its messages by location ("json", "query"); the client wants the fields at fault.
        for location_errors in messages.values():
            if isinstance(location_errors, Mapping):
                fields.update(_flatten(location_errors))
        # marshmallow files what is wrong with the body as a whole (e.g. a list instead of an object) under
        # "_schema": that belongs in the message, not among the fields.
        whole = fields.pop("_schema", [])
        code = HTTP_ERROR_CODES.get(status, "error")
        if status == 400 and "json" in messages and not fields:
            code, message = "invalid_json", _("The request body is not valid JSON.")
        elif fields or whole:
            message = _("Invalid input: %(problems)s", problems="; ".join(
                whole + [f"{name}: {' '.join(problems)}" for name, problems in fields.items()]))
        else:
            message = data.get("message") or library_message(error.description or error.name)
        response = jsonify(error_body(status, code, message, fields))
        response.status_code = status
        response.headers.update(http_error_headers(error))
        response.headers.update(data.get("headers") or {})
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response


api = VCOpsApi()


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"
