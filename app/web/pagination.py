"""Pages of a list: one query for the count, one for the page, for HTML lists and the JSON API alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app, request, url_for

from app.db import db


@dataclass
class Page:
    items: list[Any]
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def url(self, number: int) -> str:
        """The address of another page of the same list, with the same filters."""
        args = {**request.args.to_dict(), "page": number}
        return url_for(request.endpoint or "sites.home", **(request.view_args or {}), **args)

    def as_api(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "page": self.number, "page_size": self.size}


def paginate(stmt: sa.Select[Any], number: int, size: int, unique: bool = False, clamp: bool = False) -> Page:
    """Page `number` (from 1) of `size` rows. Past the end: an empty page for the API (a client walking pages
    learns it is done), the last page when `clamp` (a person following an old link sees something)."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page = Page([], 1, max(1, size), total)
    page.number = max(number, 1)
    if clamp:
        page.number = min(page.number, page.pages)
    rows = db.session.scalars(stmt.limit(page.size).offset((page.number - 1) * page.size))
    page.items = list(rows.unique() if unique else rows)
    return page


def paginate_request(stmt: sa.Select[Any], unique: bool = False) -> Page:
    """The page a list page's ?page= asks for, of the configured size."""
    # Not a number ("²" is a digit to str.isdigit, not to int), or one past any list: the first page, or (clamped)
    # the last.
    number = request.args.get("page", 1, type=int)
    return paginate(stmt, number if number is not None and number > 0 else 1, int(current_app.config["PAGE_SIZE"]),
                    unique, clamp=True)
