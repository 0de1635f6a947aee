"""Filters, coercions and checks the HTML forms of every domain share (WTForms' `filters=`, `coerce=` and the
forms' base classes).

Text, as in the API (app.web.schemas): a StringField is one line — a title, name or code with a line break or
a control character is refused, naming the field — and a TextAreaField (notes, reasons) keeps its lines (CR LF
becomes LF) and tabs but no other control character. `CheckedForm` (and `CheckedSubform`, for FormField rows)
add both checks to every such field when the form is built, so a domain's form needs no per-field work.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import Field, Form, HiddenField, PasswordField, StringField, TextAreaField
from wtforms.validators import ValidationError

from app.web.schemas import multi_line_problem, normalise_newlines, single_line_problem


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def optional_int(value: Any) -> int | None:
    """Coerce a select's value: the empty option means no choice."""
    if value is None or value == "" or value == "None":
        return None
    return int(value)


def newlines(value: Any) -> Any:
    """A textarea's CR LF (as browsers send it) and lone CR as LF."""
    return normalise_newlines(value) if isinstance(value, str) else value


def _label(field: Field) -> str:
    return str(field.label.text) if field.label is not None else field.name


class SingleLine:
    """One line: no CR, LF, tab or other control character (a title in a mail header or an invite line)."""

    field_flags = {"single_line": True}

    def __call__(self, form: Any, field: Field) -> None:
        if isinstance(field.data, str) and (problem := single_line_problem(field.data)):
            raise ValidationError(_("%(field)s: %(problem)s.", field=_label(field), problem=problem))


class MultiLine:
    """Lines and tabs, no other control character (run `newlines` first: CR LF is then LF)."""

    def __call__(self, form: Any, field: Field) -> None:
        if isinstance(field.data, str) and (problem := multi_line_problem(field.data)):
            raise ValidationError(_("%(field)s: %(problem)s.", field=_label(field), problem=problem))


class TextChecksMeta:
    """A form Meta that gives every text field its check when the form binds it (WTForms' Meta.bind_field)."""

    def bind_field(self, form: Any, unbound_field: Any, options: dict[str, Any]) -> Field:
        field = super().bind_field(form, unbound_field, options)  # type: ignore[misc]
        if isinstance(field, PasswordField | HiddenField) or not isinstance(field, StringField):
            return field  # a password is the user's own secret; hidden fields carry tokens and ids
        if isinstance(field, TextAreaField):
            field.filters = (newlines, *field.filters)
            field.validators = [*field.validators, MultiLine()]
        else:
            field.validators = [*field.validators, SingleLine()]
        return field


class CheckedForm(FlaskForm):
    """The base of the domains' forms: CSRF (Flask-WTF) and the text checks."""

    class Meta(TextChecksMeta):
        pass


class CheckedSubform(Form):
    """A row inside a form (FormField, FieldList), without a CSRF token of its own, with the text checks."""

    class Meta(TextChecksMeta):
        pass
