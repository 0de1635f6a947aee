"""Sites room: a user's scope — the site whose subtree they see and change; a user without one sees everything.

What the other domains call (keep it this small):
- `scope_of(session, user) -> Scope | None`: the user's scope, None for a user with the whole tree;
- `request_scope() -> Scope | None`: the same for the request's user (views only; services are handed the scope);
- `within(scope, column)`: a SQL condition "this site id column lies in the scope" (true without a scope);
- `sees(scope, *site_ids)`: whether any of the sites lies in the scope (what an object shows itself by);
- `require(scope, *site_ids)`: Forbidden (403, naming the scope) unless every one of them lies in it;
- `visible_or_404(scope, obj, message)`: the inventory object, or NotFound when the scope hides it;
  `get_visible(...)` / `get_changeable(...)`: get_or_raise that also 404s what the scope hides (and 403s changes);
- `require_change(scope, obj)`: Forbidden unless every site the object lies in is in the scope;
- `sites_of(obj)`: the site ids an inventory object lies in (a link by both ends);
- `may_invite_outside(session, scope)`: whether the scope's province lets its staff invite sites outside it
  (`Site.invites_outside_scope` on the top-level site, off by default; `settings_unchanged` keeps scoped users
  from changing it).

Which site an object lies in: a site itself; an endpoint, host or bridge by its site (a bridge without a site is
shared equipment: everybody sees it, only users without a scope change it); a link by both its ends — seen when
either end is in the scope (a district's uplink to the province is part of the district's picture), changed only
when both are (its bandwidth is booked by the far end's meetings too, so the far end's staff own it as much); a
maintenance window by its target. Meetings, jobs and the board apply the same rules in their own domains.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.auth.models import User
from app.db import get_or_raise
from app.errors import Forbidden, NotFound
from app.sites.models import Bridge, Endpoint, Link, MaintenanceWindow, ManagedHost, Site

T = TypeVar("T")
M = TypeVar("M")


class Scope:
    """A site and its subtree, as a user's limit."""

    def __init__(self, session: so.Session, site: Site) -> None:
        self._session = session
        self.site = site

    @property
    def name(self) -> str:
        return self.site.name

    @cached_property
    def site_ids(self) -> frozenset[int]:
        """The subtree's ids when first asked (for reports that group by site)."""
        return frozenset(self._session.scalars(sa.select(Site.id).where(Site.path.startswith(self.site.path))))

    def contains(self, site_id: int | None) -> bool:
        # By the path of the site itself, so a site added or moved during the request is judged as it is now.
        site = self._session.get(Site, site_id) if site_id is not None else None
        return site is not None and site.path.startswith(self.site.path)

    def clause(self, column: Any) -> sa.ColumnElement[bool]:
        # A subquery, not a list of ids: a national scope has thousands of sites.
        return column.in_(sa.select(Site.id).where(Site.path.startswith(self.site.path)).scalar_subquery())

    def refusal(self) -> Forbidden:
        return Forbidden(_("Outside your scope (%(name)s).", name=self.name), code="out_of_scope")


def scope_of(session: so.Session, user: User | Any) -> Scope | None:
    site_id = getattr(user, "scope_site_id", None)
    if site_id is None:
        return None
    site = session.get(Site, site_id)
    return Scope(session, site) if site is not None else None


def request_scope() -> Scope | None:
    """The scope of the request's user, for views (they hand it to the services and queries)."""
    from flask_login import current_user

    from app.db import db

    return scope_of(db.session, current_user) if current_user.is_authenticated else None


def within(scope: Scope | None, column: Any) -> sa.ColumnElement[bool]:
    return sa.true() if scope is None else scope.clause(column)


def sees(scope: Scope | None, *site_ids: int | None) -> bool:
    return scope is None or any(scope.contains(site_id) for site_id in site_ids)


def require(scope: Scope | None, *site_ids: int | None) -> None:
    if scope is not None and not all(scope.contains(site_id) for site_id in site_ids):
        raise scope.refusal()


def sites_of(obj: Any) -> tuple[int | None, ...]:
    """The sites an inventory object lies in; () for what lies in no site (a shared bridge)."""
    if isinstance(obj, Site):
        return (obj.id,)
    if isinstance(obj, Endpoint | ManagedHost):
        return (obj.site_id,)
    if isinstance(obj, Bridge):
        return (obj.site_id,) if obj.site_id is not None else ()
    if isinstance(obj, Link):
        return (obj.site_a_id, obj.site_b_id)
    if isinstance(obj, MaintenanceWindow):
        target = obj.target
        return sites_of(target) if target is not None else ()
    raise TypeError(f"no site for {obj!r}")


def get_visible(session: so.Session, scope: Scope | None, model: type[M], object_id: Any, message: str) -> M:
    """get_or_raise for inventory objects: 404 also when the scope hides the object (its existence is not told)."""
    return visible_or_404(scope, get_or_raise(session, model, object_id, message), message)


def get_changeable(session: so.Session, scope: Scope | None, model: type[M], object_id: Any, message: str) -> M:
    """An inventory object the scope sees (else 404) and may change (else 403 naming the scope)."""
    obj = get_visible(session, scope, model, object_id, message)
    require_change(scope, obj)
    return obj


def visible_or_404(scope: Scope | None, obj: T, message: str) -> T:
    """The object, unless the scope hides it: then 404, as for an object that does not exist."""
    ids = sites_of(obj)
    if ids and not sees(scope, *ids):
        raise NotFound(message)
    return obj


def require_change(scope: Scope | None, obj: T) -> T:
    """The object, or 403 naming the scope unless it may be changed from it (every site it lies in is inside; a
    shared bridge only without a scope). Views call it after a service saved too: the refusal rolls the save back,
    so nothing can be moved or created outside the scope."""
    if scope is None:
        return obj
    ids = sites_of(obj)
    if not ids:
        raise scope.refusal()
    require(scope, *ids)
    return obj


def settings_unchanged(scope: Scope | None, data: dict[str, Any], site: Site | None = None) -> None:
    """Only users without a scope change a province's scope settings (its staff would widen their own scope)."""
    if scope is None or "invites_outside_scope" not in data:
        return
    if bool(data["invites_outside_scope"]) != bool(site.invites_outside_scope if site is not None else False):
        raise scope.refusal()


def province_of(session: so.Session, site: Site) -> Site:
    """The top-level site above a site (or the site itself): where the province's settings are."""
    top_id = int(site.path.strip("/").split("/")[0]) if site.path.strip("/") else site.id
    return session.get(Site, top_id) or site


def may_invite_outside(session: so.Session, scope: Scope | None) -> bool:
    return scope is None or province_of(session, scope.site).invites_outside_scope
