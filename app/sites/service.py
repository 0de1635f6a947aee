"""Sites room: the sites themselves and the levels of the tree (levels are data, no cycles).

Plain functions on a session: they validate, change and flush; the caller's commit point commits.
Field types and lengths are checked by the forms and schemas; these functions check what needs the
database (uniqueness, references, the tree). The rest of the inventory lives beside this module:
app.sites.tree (paths, ancestors, subtrees, which link is a site's uplink), app.sites.equipment (rooms,
bridges, hosts, links), app.sites.maintenance (maintenance windows) and app.sites.queries (the lists and
what the inventory pages read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.db import get_or_raise
from app.errors import Conflict, Invalid
from app.sites import tree
from app.sites.models import Contact, Level, Link, Site, Status

# The plans of administrative levels: the seed's time (three levels) and since 1 July 2025 (two).
LEVEL_PLANS: dict[str, list[tuple[str, str]]] = {
    "three-level": [("province", "Tỉnh"), ("district", "Huyện"), ("commune", "Xã")],
    "two-level": [("province", "Tỉnh"), ("commune", "Xã")],
}


def apply_changes(obj: Any, changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Set the given fields on a record; a field outside `allowed` refuses the whole change."""
    allowed = set(allowed)
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(_("Unknown field(s): %(names)s.", names=", ".join(sorted(unknown))),
                      {name: [_("unknown field")] for name in sorted(unknown)})
    for key, value in changes.items():
        setattr(obj, key, value)


def ensure_levels(session: so.Session, plan: str) -> list[Level]:
    if plan not in LEVEL_PLANS:
        raise Invalid(_("Unknown level plan '%(plan)s'; choose one of %(plans)s.", plan=plan,
                        plans=", ".join(LEVEL_PLANS)))
    levels = []
    for rank, (code, name) in enumerate(LEVEL_PLANS[plan], start=1):
        level = session.scalar(sa.select(Level).where(Level.code == code))
        if level is None:
            level = Level(code=code, name=name, rank=rank)
            session.add(level)
        levels.append(level)
    session.flush()
    return levels


def list_levels(session: so.Session) -> list[Level]:
    return list(session.scalars(sa.select(Level).order_by(Level.rank)))


def level_by_code(session: so.Session, code: str) -> Level:
    level = session.scalar(sa.select(Level).where(Level.code == code))
    if level is None:
        known = ", ".join(lv.code for lv in list_levels(session))
        raise Invalid(_("Unknown level '%(code)s'; known levels: %(known)s.", code=code, known=known),
                      {"level": [_("unknown level")]})
    return level


SITE_FIELDS = ("code", "name", "level", "parent_id", "address", "latitude", "longitude", "is_sample", "notes",
               "status", "invites_outside_scope")


def _check_site_code(session: so.Session, code: str, site_id: int | None = None) -> None:
    clash = session.scalar(sa.select(Site).where(Site.code == code, Site.id != (site_id or 0)))
    if clash is not None:
        raise Conflict(_("Site code '%(code)s' is already used by %(name)s.", code=code, name=clash.name),
                       {"code": [_("already used")]}, code="duplicate")


def _check_parent(session: so.Session, site: Site, parent: Site | None, name: str | None = None) -> None:
    if parent is None:
        return
    name = name or site.name
    if site.id is not None and (parent.id == site.id or f"/{site.id}/" in parent.path):
        raise Invalid(_("%(parent)s cannot be the parent of %(site)s: it lies inside its subtree "
                        "(the tree would have a cycle).", parent=parent.name, site=name),
                      {"parent_id": [_("would make a cycle")]}, code="cycle")
    if parent.level.rank >= site.level.rank:
        raise Invalid(_("The parent %(parent)s (%(parent_level)s) must be at a higher level than %(level)s "
                        "(%(site)s).", parent=parent.name, parent_level=parent.level.name, level=site.level.name,
                        site=name),
                      {"parent_id": [_("must be at a higher level")]})
    if parent.status is Status.RETIRED:
        raise Invalid(_("The parent %(parent)s is retired.", parent=parent.name), {"parent_id": [_("retired")]})


def _site_changes(session: so.Session, data: Mapping[str, Any]) -> dict[str, Any]:
    changes = dict(data)
    if "level" in changes:
        level = changes["level"]
        changes["level"] = level if isinstance(level, Level) else level_by_code(session, str(level))
    if "parent_id" in changes and changes["parent_id"] is not None:
        parent_id = int(changes["parent_id"])
        get_or_raise(session, Site, parent_id, _("No parent site with id %(id)s.", id=parent_id))
    return changes


def create_site(session: so.Session, data: Mapping[str, Any]) -> Site:
    changes = _site_changes(session, data)
    required = {"code": _l("The site's code is required."), "name": _l("The site's name is required."),
                "level": _l("The site's level is required.")}
    for name, message in required.items():
        if not changes.get(name):
            raise Invalid(str(message), {name: [_("required")]})
    _check_site_code(session, changes["code"])
    site = Site()
    apply_changes(site, changes, SITE_FIELDS)
    parent = session.get(Site, site.parent_id) if site.parent_id else None
    _check_parent(session, site, parent)
    session.add(site)
    session.flush()
    tree.repath(session, site)
    session.flush()
    return site


def update_site(session: so.Session, site: Site, data: Mapping[str, Any]) -> Site:
    changes = _site_changes(session, data)
    if "code" in changes and changes["code"] != site.code:
        _check_site_code(session, changes["code"], site.id)
    moved = "parent_id" in changes and changes["parent_id"] != site.parent_id
    relevelled = "level" in changes and changes["level"] is not site.level
    name = site.name  # messages name the site as the user knows it, not as the refused change would rename it
    apply_changes(site, changes, SITE_FIELDS)
    if moved or relevelled:
        _check_parent(session, site, session.get(Site, site.parent_id) if site.parent_id else None, name)
        if relevelled:
            for child in site.children:
                if child.level.rank <= site.level.rank:
                    raise Invalid(_("%(site)s cannot move to level %(level)s: its child %(child)s is at level "
                                    "%(child_level)s.", site=site.name, level=site.level.name, child=child.name,
                                    child_level=child.level.name),
                                  {"level": [_("children at this level")]})
    if moved:
        tree.repath(session, site)
    session.flush()
    return site


def retire_site(session: so.Session, site: Site) -> Site:
    """Retire a site with its rooms, hosts and links; refused while it has active sites under it."""
    active_children = [c for c in site.children if c.status is not Status.RETIRED]
    if active_children:
        names = ", ".join(c.name for c in active_children[:5])
        raise Conflict(_("%(site)s still has active sites under it (%(names)s); retire or move them first.",
                         site=site.name, names=names), code="has_children")
    site.status = Status.RETIRED
    for endpoint in site.endpoints:
        endpoint.status = Status.RETIRED
    for host in site.hosts:
        host.status = Status.RETIRED
    for link in session.scalars(sa.select(Link).where(sa.or_(Link.site_a_id == site.id, Link.site_b_id == site.id))):
        link.status = Status.RETIRED
    session.flush()
    return site


def replace_contacts(session: so.Session, site: Site, contacts: Iterable[Mapping[str, Any]]) -> None:
    site.contacts = [Contact(**dict(c)) for c in contacts]
    session.flush()
