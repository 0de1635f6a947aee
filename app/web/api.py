"""What every JSON API blueprint shares: the one error format, strict parsing, documented failures."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from flask import request
from flask_babel import gettext as _
from flask_smorest import Blueprint, abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException

from app.extensions import api
from app.web.cycle import load_json

F = TypeVar("F", bound=Callable[..., Any])


class StrictParser(FlaskParser):
    # Query strings follow their schema's Meta.unknown (RAISE) too: a misspelt filter silently ignored would
    # answer with the whole unfiltered list.
    DEFAULT_UNKNOWN_BY_LOCATION = dict.fromkeys(FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION)

    def _raw_load_json(self, req: Any) -> Any:
        # The request cycle's JSON parser, with its limits (depth, size, NUL and lone surrogates), instead of a
        # bare json.loads whose RecursionError on a deep body would be a 500. Undecodable bytes stay webargs'
        # own 400 (it turns the UnicodeDecodeError into invalid JSON).
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return core.parse_json(data)
        return load_json(data)


class ApiBlueprint(Blueprint):
    """A resource under /api/v1 (or the prefix given), answering errors in the one format."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, resource: str, description: str, url_prefix: str | None = None) -> None:
        # "sites" and the like are the HTML pages' blueprint names; the API's are prefixed.
        super().__init__(f"api_{resource}", __name__, url_prefix=url_prefix or f"/api/v1/{resource}",
                         description=description)
        self.register_error_handler(HTTPException, api.handle_http_exception)
        self.before_request(refuse_stray_query)

    def fails(self, *statuses: int) -> Callable[[F], F]:
        """Document the error responses of an operation (401 and 403 apply to all of them)."""

        def decorate(view: F) -> F:
            for status in (401, 403, *statuses):
                view = self.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorate


def refuse_stray_query() -> None:
    """Only the lists take query parameters; anywhere else one is a mistake the client should hear about."""
    listing = request.method in ("GET", "HEAD") and (request.endpoint or "").endswith(".collection")
    if request.args and not listing:
        abort(422, messages={"query": {name: [_("Unknown field.")] for name in request.args}})
