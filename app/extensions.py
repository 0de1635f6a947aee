"""Flask extensions, created unbound and initialised in create_app()."""

from __future__ import annotations

from flask import request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


class VCOpsApi(Api):
    """flask-smorest with the project's one error format instead of its own."""

    def handle_http_exception(self, error):  # noqa: ANN001, ANN201 - signature of the base class
        from app.errors import error_body

        status = error.code or 500
        data = getattr(error, "data", {}) or {}
        messages = data.get("messages", {})
        fields: dict = {}
        # webargs puts errors by location ("json", "query"); the user wants the fields at fault.
        for location_errors in messages.values() if isinstance(messages, dict) else []:
            if isinstance(location_errors, dict):
                fields.update(location_errors)
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 422: "validation_error"}.get(status, "error")
        message = data.get("message") or error.description or error.name
        if status == 422 and fields:
            message = "Invalid input: " + "; ".join(
                f"{name}: {' '.join(map(str, errs)) if isinstance(errs, list) else errs}"
                for name, errs in fields.items())
        response = self._prepare_response(status, error_body(status, code, message, fields))
        return response

    def _prepare_response(self, status: int, body: dict):
        from flask import jsonify

        response = jsonify(body)
        response.status_code = status
        return response


api = VCOpsApi()


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"
