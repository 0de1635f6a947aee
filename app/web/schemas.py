"""What every JSON API's schemas share: strict input (unknown fields refused, messages in the client's language,
text checked for line breaks, control characters and lone surrogates, integers within the database's integer, a
PATCH without a body refused), ids, times out in UTC, the page and page-size query, and the page envelope of a
list."""

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
# Every id is a PostgreSQL integer column (app.web.converters bounds them in addresses the same way), and so is
# every other integer the API stores: a number past these is the client's mistake, answered 422 naming the field,
# never a value the database refuses with a 500.
ID_MIN, ID_MAX = 1, 2**31 - 1
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1


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
    """A control character (C0, DEL, C1), a Unicode line/paragraph separator not in `kept`, or a lone surrogate:
    a title with a line break forges mail headers and iCalendar lines, a NUL or an escape garbles every page that
    shows it (and PostgreSQL refuses NUL in text), and a lone surrogate (JSON's "\\ud800") is no character at all:
    it cannot be written as UTF-8, to the database or to a page."""
    return any(char not in kept and (unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs")) for char in value)


def unstorable(value: str) -> bool:
    """What no text anywhere may hold, one line or several, a query's search words too: NUL (PostgreSQL's text
    refuses it) and lone surrogates (no UTF-8 for them)."""
    return "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value)


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


class Id(fields.Integer):
    """A reference to a stored row: an integer from 1 to 2**31 - 1 (a number in a string is refused, as JSON
    says what a number is)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)
        self.validators = [*self.validators, validate.Range(ID_MIN, ID_MAX)]


# Added to every Integer of an Input (see Input.on_bind_field); apispec documents it as minimum and maximum.
_INTEGER_RANGE = validate.Range(INTEGER_MIN, INTEGER_MAX)
# Times and dates of an Input lie from 1900 (nothing this network looks back on is older) to a day before the end
# of Python's calendar: a time at the very end of 9999, or one whose offset takes it past (0001-01-01T00:00+07:00
# is in year 0 in UTC), would end in an OverflowError at the first conversion or timedelta, a 500. Within these
# bounds the domains refuse what is too far ahead in their own words (app.meetings: "at most N days ahead").
FIRST_YEAR = 1900
_LAST_TIME = dt.datetime.max.replace(tzinfo=dt.UTC) - dt.timedelta(days=1)


def _within_the_calendar(value: dt.date) -> None:
    if isinstance(value, dt.datetime):
        try:
            inside = value.year >= FIRST_YEAR and (value.tzinfo is None or value.astimezone(dt.UTC) <= _LAST_TIME)
        except OverflowError:
            inside = False
    else:
        inside = isinstance(value, dt.date) and FIRST_YEAR <= value.year and value < _LAST_TIME.date()
    if not inside:
        raise ma.ValidationError(str(_l("must lie between the years %(first)s and %(last)s",
                                        first=FIRST_YEAR, last=dt.MAXYEAR)))


def _leaf_fields(field_obj: fields.Field) -> Iterator[fields.Field]:
    """The fields in a field, inside lists, tuples and dicts too (their inner fields are not bound to the
    schema, so on_bind_field never sees them; nested schemas are Inputs and check their own)."""
    if isinstance(field_obj, fields.List):
        yield from _leaf_fields(field_obj.inner)
    elif isinstance(field_obj, fields.Tuple):
        for inner in field_obj.tuple_fields:
            yield from _leaf_fields(inner)
    elif isinstance(field_obj, fields.Dict):  # fields.Dict is a Mapping
        for inner in (field_obj.key_field, field_obj.value_field):
            if inner is not None:
                yield from _leaf_fields(inner)
    else:
        yield field_obj


def _string_fields(field_obj: fields.Field) -> Iterator[fields.String]:
    return (leaf for leaf in _leaf_fields(field_obj) if isinstance(leaf, fields.String))


class Input(ma.Schema):
    """The strict base of every API input schema.

    Text: every fields.String (inside lists and dicts too) is one line — no CR, LF or other control character,
    no lone surrogate — and every `Text` may hold newlines and tabs only; the error names the field. Integers:
    every fields.Integer is within the database's integer (ids: `Id`, from 1). A PATCH without a body is
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
        for leaf in _leaf_fields(field_obj):
            if isinstance(leaf, fields.Integer) and _INTEGER_RANGE not in leaf.validators:
                leaf.validators = [*leaf.validators, _INTEGER_RANGE]
            elif isinstance(leaf, fields.DateTime | fields.Date) and _within_the_calendar not in leaf.validators:
                leaf.validators = [*leaf.validators, _within_the_calendar]

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
