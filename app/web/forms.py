"""Filters and coercions the HTML forms of every domain share (WTForms' `filters=` and `coerce=`)."""

from __future__ import annotations

from typing import Any


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def optional_int(value: Any) -> int | None:
    """Coerce a select's value: the empty option means no choice."""
    if value is None or value == "" or value == "None":
        return None
    return int(value)
