"""Domain errors and the one error format of the API.

Services raise these; the API renders them as
`{"error": {"status": 409, "code": "duplicate", "message": "...", "fields": {"code": ["..."]}}}`,
and HTML forms show the same messages next to their fields.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.fields)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request clashes with what is already stored (a duplicate code, a taken resource)."""

    status = 409
    code = "conflict"


class Invalid(DomainError):
    """Well-formed but not acceptable (a cycle in the site tree, a link from a site to itself)."""

    status = 422
    code = "invalid"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


def error_body(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "fields": fields or {}}}
