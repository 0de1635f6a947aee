"""The ids of every address, pages and API alike: `<int:...>` matches 1 to 2**31 - 1, the range of the PostgreSQL
integer column every id is, so /meetings/2147483648 is an address that does not exist (404), never a query the
database refuses (500)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

ID_MIN = 1
ID_MAX = 2**31 - 1  # PostgreSQL's integer; SQLite's 64-bit INTEGER holds it too


class IdConverter(IntegerConverter):
    """`int` with the id range as its default bounds; flask-smorest documents them (minimum, maximum) from the
    converter, since it is an IntegerConverter."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = ID_MIN,
                 max: int | None = ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app: Flask) -> None:
    """Before any blueprint: a rule takes its converter when it is added to the map."""
    converters: dict[str, Any] = app.url_map.converters
    converters["int"] = IdConverter
