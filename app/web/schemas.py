"""What every JSON API's schemas share: strict input (unknown fields refused, messages in the client's language),
times out in UTC, the page and page-size query, and the page envelope of a list."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
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


class Input(ma.Schema):
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
