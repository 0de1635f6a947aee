"""What every JSON API's schemas share: strict input (unknown fields refused, messages in the client's language,
text checked for line breaks and control characters, a PATCH without a body refused), times out in UTC, the page
and page-size query, and the page envelope of a list."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator
from typing import Any

import marshmallow as ma
from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

MAX_PAGE_SIZE = 200


# marshmallow's own messages, the same English text, in the client's language: a lazy message is looked up
# when the error is reported. Only messages without {placeholders} (marshmallow formats those when it makes the
# error, which a lazy message would skip).
_MARSHMALLOW_MESSAGES: list[tuple[type[fields.Field], str, object]] = [
    (fields.Field, "required", _l("Missing data for required field.")),
    (fields.Field, "null", _l("Field may not be null.")),
    (fields.AwareDateTime, "invalid_awareness", _l("Not a valid aware datetime.")),
    (fields.DateTime, "invalid", _l("Not a valid datetime.")),
    (fields.Integer, "invalid", _l("Not a valid integer.")),
    (fields.Number, "invalid", _l("Not a valid number.")),
    (fields.Number, "too_large", _l("Number too large.")),
    (fields.Boolean, "invalid", _l("Not a valid boolean.")),
    (fields.String, "invalid", _l("Not a valid string.")),
    (fields.List, "invalid", _l("Not a valid list.")),
    (fields.Nested, "type", _l("Invalid type.")),
]


# ---------------------------------------------------------------- text: one line, or several

MULTI_LINE_KEPT = frozenset("\n\t")


def _forbidden(value: str, kept: frozenset[str] = frozenset()) -> bool:
    """A control character (C0, DEL, C1) or a Unicode line/paragraph separator not in `kept`: a title with a
    line break forges mail headers and iCalendar lines, a NUL or an escape garbles every page that shows it."""
    return any(char not in kept and (unicodedata.category(char) in ("Cc", "Zl", "Zp")) for char in value)


def single_line_problem(value: str) -> str | None:
    """Why `value` is not acceptable in a one-line field (title, name, code), or None."""
    if _forbidden(value):
        return str(_l("must be one line, without line breaks or control characters"))
    return None


def normalise_newlines(value: str) -> str:
    # Browsers send a textarea's lines with CRLF; a client on Windows may too. Kept as \n, one way.
    return value.replace("\r\n", "\n").replace("\r", "\n")


def multi_line_problem(value: str) -> str | None:
    """Why `value` (newlines already normalised) is not acceptable in a multi-line field (notes), or None."""
    if _forbidden(value, MULTI_LINE_KEPT):
        return str(_l("may hold line breaks and tabs but no other control characters"))
    return None


def _single_line(value: str) -> None:
    if isinstance(value, str) and (problem := single_line_problem(value)):
        raise ma.ValidationError(problem)


def _multi_line(value: str) -> None:
    if isinstance(value, str) and (problem := multi_line_problem(value)):
        raise ma.ValidationError(problem)


class Text(fields.String):
    """A multi-line text field (notes, reasons, descriptions): CR LF and CR become LF, tabs stay, other control
    characters are refused. Every other fields.String of an Input schema is one line (see Input)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return normalise_newlines(text) if isinstance(text, str) else text


def _string_fields(field_obj: fields.Field) -> Iterator[fields.String]:
    """The String fields in a field, inside lists, tuples and dicts too (their inner fields are not bound to the
    schema, so on_bind_field never sees them; nested schemas are Inputs and check their own)."""
    if isinstance(field_obj, fields.String):
        yield field_obj
    elif isinstance(field_obj, fields.List):
        yield from _string_fields(field_obj.inner)
    elif isinstance(field_obj, fields.Tuple):
        for inner in field_obj.tuple_fields:
            yield from _string_fields(inner)
    elif isinstance(field_obj, fields.Dict):  # fields.Dict is a Mapping
        for inner in (field_obj.key_field, field_obj.value_field):
            if inner is not None:
                yield from _string_fields(inner)


class Input(ma.Schema):
    """The strict base of every API input schema.

    Text: every fields.String (inside lists and dicts too) is one line — no CR, LF or other control character —
    and every `Text` may hold newlines and tabs only; the error names the field. A PATCH without a body is
    refused (the document says the body is required; an empty object changes nothing, and is allowed)."""

    class Meta:
        unknown = ma.RAISE  # a misspelt field is an error, never silently dropped

    error_messages = {"unknown": _l("Unknown field."), "type": _l("Invalid input type.")}

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        messages = dict(field_obj.error_messages)
        for cls, key, message in _MARSHMALLOW_MESSAGES:
            # Only where the field says what `cls` says: a subclass's own wording (fields.Email's "Not a valid
            # email address.") or a message given to the field stays.
            if isinstance(field_obj, cls) and messages.get(key) == cls.default_error_messages.get(key):
                messages[key] = message
        field_obj.error_messages = messages
        for text in _string_fields(field_obj):
            check = _multi_line if isinstance(text, Text) else _single_line
            # The schema's fields are its own copies (marshmallow deep-copies them per instance), so adding
            # the check here never touches another schema's field.
            if check not in text.validators:
                text.validators = [*text.validators, check]

    @ma.pre_load
    def _patch_needs_a_body(self, data: Any, **_kwargs: Any) -> Any:
        # webargs hands a schema {} when the request has no body at all, which would answer a PATCH that
        # changes nothing with 200. Only the body's schema sees the request's own (empty) data: a nested
        # schema is loaded from a body that is there, and PATCH views take no query string.
        if (data == {} and has_request_context() and request.method == "PATCH"
                and not request.get_data(cache=True)):
            raise ma.ValidationError(str(_l("A JSON body is required: the fields to change, as an object.")),
                                     "body")
        return data


class UTCDateTime(fields.AwareDateTime):
    """Times go out in UTC however they came in (a window just created still holds the client's offset)."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: object, **kwargs: object) -> str | None:
        return super()._serialize(None if value is None else value.astimezone(dt.UTC), attr, obj, **kwargs)


class PageQuery(Input):
    """?page= and ?page_size= of a list (page 1 first; past the end an empty page)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PAGE_SIZE))


class Page(ma.Schema):
    total = fields.Integer(metadata={"description": "Matching records on all pages."})
    page = fields.Integer()
    page_size = fields.Integer()


def page_of(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    return type(name, (Page,), {"items": fields.List(fields.Nested(item))})
