"""Flask extensions, created unbound and initialised in create_app()."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request
from flask_babel import Babel
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


class ErrorDetail(ma.Schema):
    status = ma.fields.Integer(metadata={"description": "The HTTP status, repeated."})
    code = ma.fields.String(metadata={"description": "What went wrong, for programs: not_found, duplicate, "
                                                     "validation_error, invalid_json, cycle, same_site, …"})
    message = ma.fields.String(metadata={"description": "What went wrong, for people."})
    fields = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                            metadata={"description": "The fields at fault (nested ones as 'contacts.0.email') "
                                                     "and what is wrong with each."})


class ErrorSchema(ma.Schema):
    """The one error format (app.errors.error_body), as the OpenAPI document shows it."""

    error = ma.fields.Nested(ErrorDetail, required=True)


HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "validation_error",
                    429: "too_many_requests"}


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
            message = data.get("message") or error.description or error.name
        response = jsonify(error_body(status, code, message, fields))
        response.status_code = status
        response.headers.update(data.get("headers") or {})
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response


api = VCOpsApi()


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"
