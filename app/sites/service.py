"""The inventory's rules: the site tree (levels are data, no cycles), equipment, links, maintenance.

Plain functions on a session: they validate, change and flush; the caller's commit point commits.
Field types and lengths are checked by the forms and schemas; these functions check what needs the
database (uniqueness, references, the tree).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.errors import Conflict, Invalid, NotFound
from app.sites.models import (
    Bridge,
    Contact,
    Endpoint,
    EndpointKind,
    HostKind,
    Level,
    Link,
    LinkMedium,
    MaintenanceWindow,
    ManagedHost,
    Site,
    Status,
)

M = TypeVar("M")

# The plans of administrative levels: the seed's time (three levels) and since 1 July 2025 (two).
LEVEL_PLANS: dict[str, list[tuple[str, str]]] = {
    "three-level": [("province", "Tỉnh"), ("district", "Huyện"), ("commune", "Xã")],
    "two-level": [("province", "Tỉnh"), ("commune", "Xã")],
}


# One whole sentence per kind of record, so that each translates on its own (never "No " + a translated noun).
_NOT_FOUND = {
    "site": _l("No site with id %(id)s."),
    "parent site": _l("No parent site with id %(id)s."),
    "endpoint": _l("No endpoint with id %(id)s."),
    "bridge": _l("No bridge with id %(id)s."),
    "host": _l("No host with id %(id)s."),
    "link": _l("No link with id %(id)s."),
    "maintenance window": _l("No maintenance window with id %(id)s."),
}


def get(session: so.Session, model: type[M], object_id: int, label: str | None = None) -> M:
    obj = session.get(model, object_id)
    if obj is None:
        message = _NOT_FOUND.get(label or model.__name__.lower(), _l("No record with id %(id)s."))
        raise NotFound(str(message) % {"id": object_id})
    return obj


def _apply(obj: Any, changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(_("Unknown field(s): %(names)s.", names=", ".join(sorted(unknown))),
                      {name: [_("unknown field")] for name in sorted(unknown)})
    for key, value in changes.items():
        setattr(obj, key, value)


# ---------------------------------------------------------------- levels

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


# ---------------------------------------------------------------- sites

SITE_FIELDS = ("code", "name", "level", "parent_id", "address", "latitude", "longitude", "is_sample", "notes",
               "status")


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
        get(session, Site, int(changes["parent_id"]), "parent site")
    return changes


def _repath(session: so.Session, site: Site) -> None:
    """Recompute the materialised path of a site and of its whole subtree."""
    old = site.path
    parent = session.get(Site, site.parent_id) if site.parent_id else None
    site.path = f"{parent.path if parent else '/'}{site.id}/"
    if old not in ("/", site.path):
        for child in session.scalars(sa.select(Site).where(Site.path.startswith(old), Site.id != site.id)):
            child.path = site.path + child.path[len(old):]


def create_site(session: so.Session, data: Mapping[str, Any]) -> Site:
    changes = _site_changes(session, data)
    required = {"code": _l("The site's code is required."), "name": _l("The site's name is required."),
                "level": _l("The site's level is required.")}
    for name, message in required.items():
        if not changes.get(name):
            raise Invalid(str(message), {name: [_("required")]})
    _check_site_code(session, changes["code"])
    site = Site()
    _apply(site, changes, SITE_FIELDS)
    parent = session.get(Site, site.parent_id) if site.parent_id else None
    _check_parent(session, site, parent)
    session.add(site)
    session.flush()
    _repath(session, site)
    session.flush()
    return site


def update_site(session: so.Session, site: Site, data: Mapping[str, Any]) -> Site:
    changes = _site_changes(session, data)
    if "code" in changes and changes["code"] != site.code:
        _check_site_code(session, changes["code"], site.id)
    moved = "parent_id" in changes and changes["parent_id"] != site.parent_id
    relevelled = "level" in changes and changes["level"] is not site.level
    name = site.name  # messages name the site as the user knows it, not as the refused change would rename it
    _apply(site, changes, SITE_FIELDS)
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
        _repath(session, site)
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


def subtree_ids(session: so.Session, site: Site) -> list[int]:
    return list(session.scalars(sa.select(Site.id).where(Site.path.startswith(site.path))))


def ancestor_at_level(session: so.Session, site: Site, level: Level) -> Site | None:
    """The site's ancestor (or itself) at the given level: "by district" means this with the district level."""
    ids = [int(p) for p in site.path.strip("/").split("/") if p]
    if not ids:
        return None
    return session.scalar(sa.select(Site).where(Site.id.in_(ids), Site.level_id == level.id))


def group_by_ancestor(session: so.Session, sites: Iterable[Site], level: Level) -> dict[Site | None, list[Site]]:
    """Sites grouped under their ancestor at a level; sites above that level fall under None."""
    sites = list(sites)
    ancestor_ids: set[int] = set()
    for site in sites:
        ancestor_ids.update(int(p) for p in site.path.strip("/").split("/") if p)
    at_level = {s.id: s for s in session.scalars(
        sa.select(Site).where(Site.id.in_(ancestor_ids), Site.level_id == level.id))}
    groups: dict[Site | None, list[Site]] = {}
    for site in sites:
        ids = [int(p) for p in site.path.strip("/").split("/") if p]
        key = next((at_level[i] for i in ids if i in at_level), None)
        groups.setdefault(key, []).append(site)
    return groups


@dataclass
class SiteFilter:
    q: str = ""
    level: str = ""
    within: int | None = None  # a site id: its subtree
    status: str = ""
    sample: bool | None = None


def site_query(session: so.Session, f: SiteFilter) -> sa.Select[tuple[Site]]:
    stmt = sa.select(Site).join(Site.level).order_by(Level.rank, Site.code)
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Site.code.ilike(like), Site.name.ilike(like), Site.address.ilike(like)))
    if f.level:
        stmt = stmt.where(Level.code == f.level)
    if f.within:
        root = get(session, Site, f.within, "site")
        stmt = stmt.where(Site.path.startswith(root.path))
    if f.status:
        stmt = stmt.where(Site.status == Status(f.status))
    if f.sample is not None:
        stmt = stmt.where(Site.is_sample.is_(f.sample))
    return stmt


def replace_contacts(session: so.Session, site: Site, contacts: Iterable[Mapping[str, Any]]) -> None:
    site.contacts = [Contact(**dict(c)) for c in contacts]
    session.flush()


# ---------------------------------------------------------------- equipment

ENDPOINT_FIELDS = ("site_id", "room_name", "vendor", "model", "kind", "mgmt_address", "mgmt_port", "sip_uri",
                   "h323_alias", "serial", "firmware_version", "status")
BRIDGE_FIELDS = ("name", "vendor", "model", "site_id", "mgmt_address", "sip_address", "total_ports", "status")
HOST_FIELDS = ("site_id", "name", "kind", "mgmt_address", "status")
LINK_FIELDS = ("code", "site_a_id", "address_a", "site_b_id", "address_b", "provider", "medium",
               "bandwidth_kbps", "status")


def _active_site(session: so.Session, site_id: int | None, field: str = "site_id") -> Site | None:
    if site_id is None:
        return None
    site = session.get(Site, int(site_id))
    if site is None:
        raise NotFound(_("No site with id %(id)s.", id=site_id), {field: [_("no such site")]})
    if site.status is Status.RETIRED:
        raise Invalid(_("The site %(name)s is retired.", name=site.name), {field: [_("retired site")]})
    return site


def _check_room(session: so.Session, endpoint: Endpoint) -> None:
    clash = session.scalar(sa.select(Endpoint).where(
        Endpoint.site_id == endpoint.site_id, Endpoint.room_name == endpoint.room_name,
        Endpoint.id != (endpoint.id or 0)))
    if clash is not None:
        raise Conflict(_("The site already has a room named '%(room)s'.", room=endpoint.room_name),
                       {"room_name": [_("already used at this site")]}, code="duplicate")


def save_endpoint(session: so.Session, data: Mapping[str, Any], endpoint: Endpoint | None = None) -> Endpoint:
    endpoint = endpoint or Endpoint()
    if "site_id" in data and data["site_id"] != endpoint.site_id:
        _active_site(session, data["site_id"])
    _apply(endpoint, data, ENDPOINT_FIELDS)
    if endpoint.site_id is None or not endpoint.room_name:
        raise Invalid(_("An endpoint needs a site and a room name."),
                      {k: [_("required")] for k in ("site_id", "room_name") if not getattr(endpoint, k)})
    _check_room(session, endpoint)
    session.add(endpoint)
    session.flush()
    return endpoint


def save_bridge(session: so.Session, data: Mapping[str, Any], bridge: Bridge | None = None) -> Bridge:
    bridge = bridge or Bridge()
    if data.get("site_id") is not None and data.get("site_id") != bridge.site_id:
        _active_site(session, data["site_id"])
    _apply(bridge, data, BRIDGE_FIELDS)
    if not bridge.name or not bridge.total_ports:
        raise Invalid(_("A bridge needs a name and its number of video ports."),
                      {k: [_("required")] for k in ("name", "total_ports") if not getattr(bridge, k)})
    if bridge.total_ports < 1:
        raise Invalid(_("A bridge has at least one video port."), {"total_ports": [_("must be at least 1")]})
    clash = session.scalar(sa.select(Bridge).where(Bridge.name == bridge.name, Bridge.id != (bridge.id or 0)))
    if clash is not None:
        raise Conflict(_("A bridge named '%(name)s' already exists.", name=bridge.name), {"name": [_("already used")]},
                       code="duplicate")
    session.add(bridge)
    session.flush()
    return bridge


def save_host(session: so.Session, data: Mapping[str, Any], host: ManagedHost | None = None) -> ManagedHost:
    host = host or ManagedHost()
    if "site_id" in data and data["site_id"] != host.site_id:
        _active_site(session, data["site_id"])
    _apply(host, data, HOST_FIELDS)
    if host.site_id is None or not host.name or host.kind is None:
        raise Invalid(_("A managed host needs a site, a name and a kind."),
                      {k: [_("required")] for k in ("site_id", "name", "kind") if not getattr(host, k)})
    clash = session.scalar(sa.select(ManagedHost).where(ManagedHost.name == host.name,
                                                        ManagedHost.id != (host.id or 0)))
    if clash is not None:
        raise Conflict(_("A host named '%(name)s' already exists.", name=host.name), {"name": [_("already used")]},
                       code="duplicate")
    session.add(host)
    session.flush()
    return host


def save_link(session: so.Session, data: Mapping[str, Any], link: Link | None = None) -> Link:
    link = link or Link()
    for end in ("site_a_id", "site_b_id"):
        if end in data and data[end] != getattr(link, end):
            _active_site(session, data[end], end)
    _apply(link, data, LINK_FIELDS)
    missing = [k for k in ("site_a_id", "site_b_id", "bandwidth_kbps") if not getattr(link, k)]
    if missing:
        raise Invalid(_("A link needs both ends and its contracted bandwidth."),
                      {k: [_("required")] for k in missing})
    if link.site_a_id == link.site_b_id:
        raise Invalid(_("A link joins two different sites; both ends are the same site."),
                      {"site_b_id": [_("same site as site A")]}, code="same_site")
    if link.bandwidth_kbps <= 0:
        raise Invalid(_("The contracted bandwidth must be positive."), {"bandwidth_kbps": [_("must be positive")]})
    if not link.code:
        a, b = session.get(Site, link.site_a_id), session.get(Site, link.site_b_id)
        link.code = f"{a.code}-{b.code}" if a and b else ""
    clash = session.scalar(sa.select(Link).where(Link.code == link.code, Link.id != (link.id or 0)))
    if clash is not None:
        raise Conflict(_("Link code '%(code)s' is already used.", code=link.code), {"code": [_("already used")]},
                       code="duplicate")
    session.add(link)
    session.flush()
    return link


def retire(session: so.Session, obj: Endpoint | Bridge | ManagedHost | Link) -> None:
    obj.status = Status.RETIRED
    session.flush()


def uplink(session: so.Session, site: Site) -> Link | None:
    """The active link between a site and its parent (the path a meeting's media takes upwards)."""
    if site.parent_id is None:
        return None
    return session.scalar(sa.select(Link).where(
        Link.status == Status.ACTIVE,
        sa.or_(sa.and_(Link.site_a_id == site.id, Link.site_b_id == site.parent_id),
               sa.and_(Link.site_b_id == site.id, Link.site_a_id == site.parent_id))).order_by(Link.id).limit(1))


# ---------------------------------------------------------------- maintenance windows

MAINTENANCE_TARGETS = {"site": Site, "endpoint": Endpoint, "bridge": Bridge, "link": Link}


def create_maintenance(session: so.Session, target_kind: str, target_id: int, starts_at: dt.datetime,
                       ends_at: dt.datetime, reason: str, created_by_id: int | None) -> MaintenanceWindow:
    model = MAINTENANCE_TARGETS.get(target_kind)
    if model is None:
        raise Invalid(_("Maintenance applies to a site, endpoint, bridge or link, not '%(kind)s'.", kind=target_kind),
                      {"target_kind": [_("unknown kind")]})
    target = get(session, model, target_id, target_kind)
    if ends_at <= starts_at:
        raise Invalid(_("The maintenance window must end after it starts."),
                      {"ends_at": [_("must be after the start")]})
    if not reason.strip():
        raise Invalid(_("Give the reason for the maintenance."), {"reason": [_("required")]})
    window = MaintenanceWindow(starts_at=starts_at, ends_at=ends_at, reason=reason.strip(),
                               created_by_id=created_by_id, **{target_kind: target})
    session.add(window)
    session.flush()
    return window


def delete_maintenance(session: so.Session, window: MaintenanceWindow) -> None:
    session.delete(window)
    session.flush()


def update_maintenance(session: so.Session, window: MaintenanceWindow, data: Mapping[str, Any]) -> MaintenanceWindow:
    """Move or re-explain a window; its target stays (a window on another target is a new window)."""
    _apply(window, data, ("starts_at", "ends_at", "reason"))
    if window.ends_at <= window.starts_at:
        raise Invalid(_("The maintenance window must end after it starts."),
                      {"ends_at": [_("must be after the start")]})
    window.reason = window.reason.strip()
    if not window.reason:
        raise Invalid(_("Give the reason for the maintenance."), {"reason": [_("required")]})
    session.flush()
    return window


# ---------------------------------------------------------------- list queries (pages and API alike)

@dataclass
class EquipmentFilter:
    """Filters of the endpoint, host and bridge lists; `kind` applies to endpoints and hosts."""

    q: str = ""
    within: int | None = None  # a site id: equipment at that site or below it
    status: str = ""
    kind: str = ""


@dataclass
class LinkFilter:
    q: str = ""
    within: int | None = None  # a site id: links with either end in its subtree
    medium: str = ""
    status: str = ""


@dataclass
class MaintenanceFilter:
    target_kind: str = ""
    target_id: int | None = None
    ends_after: dt.datetime | None = None  # with starts_before: windows overlapping a period
    starts_before: dt.datetime | None = None


def _subtree_of(session: so.Session, site_id: int) -> sa.ColumnElement[bool]:
    root = get(session, Site, site_id, "site")
    return Site.path.startswith(root.path)


def endpoint_query(session: so.Session, f: EquipmentFilter) -> sa.Select[tuple[Endpoint]]:
    stmt = sa.select(Endpoint).join(Endpoint.site).order_by(Site.path, Endpoint.room_name)
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Endpoint.room_name.ilike(like), Endpoint.vendor.ilike(like),
                                 Endpoint.model.ilike(like), Endpoint.mgmt_address.ilike(like),
                                 Endpoint.sip_uri.ilike(like), Endpoint.serial.ilike(like),
                                 Site.code.ilike(like), Site.name.ilike(like)))
    if f.within:
        stmt = stmt.where(_subtree_of(session, f.within))
    if f.status:
        stmt = stmt.where(Endpoint.status == Status(f.status))
    if f.kind:
        stmt = stmt.where(Endpoint.kind == EndpointKind(f.kind))
    return stmt


def host_query(session: so.Session, f: EquipmentFilter) -> sa.Select[tuple[ManagedHost]]:
    stmt = sa.select(ManagedHost).join(ManagedHost.site).order_by(ManagedHost.name)
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(ManagedHost.name.ilike(like), ManagedHost.mgmt_address.ilike(like),
                                 Site.code.ilike(like), Site.name.ilike(like)))
    if f.within:
        stmt = stmt.where(_subtree_of(session, f.within))
    if f.status:
        stmt = stmt.where(ManagedHost.status == Status(f.status))
    if f.kind:
        stmt = stmt.where(ManagedHost.kind == HostKind(f.kind))
    return stmt


def bridge_query(session: so.Session, f: EquipmentFilter) -> sa.Select[tuple[Bridge]]:
    stmt = sa.select(Bridge).outerjoin(Bridge.site).order_by(Bridge.name)
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Bridge.name.ilike(like), Bridge.vendor.ilike(like), Bridge.model.ilike(like),
                                 Bridge.mgmt_address.ilike(like), Bridge.sip_address.ilike(like)))
    if f.within:
        stmt = stmt.where(_subtree_of(session, f.within))
    if f.status:
        stmt = stmt.where(Bridge.status == Status(f.status))
    return stmt


def link_query(session: so.Session, f: LinkFilter) -> sa.Select[tuple[Link]]:
    site_a, site_b = so.aliased(Site), so.aliased(Site)
    stmt = (sa.select(Link).join(site_a, Link.site_a_id == site_a.id).join(site_b, Link.site_b_id == site_b.id)
            .order_by(Link.code))
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Link.code.ilike(like), Link.provider.ilike(like), Link.address_a.ilike(like),
                                 Link.address_b.ilike(like), site_a.name.ilike(like), site_b.name.ilike(like)))
    if f.within:
        root = get(session, Site, f.within, "site")
        stmt = stmt.where(sa.or_(site_a.path.startswith(root.path), site_b.path.startswith(root.path)))
    if f.medium:
        stmt = stmt.where(Link.medium == LinkMedium(f.medium))
    if f.status:
        stmt = stmt.where(Link.status == Status(f.status))
    return stmt


def maintenance_query(session: so.Session, f: MaintenanceFilter) -> sa.Select[tuple[MaintenanceWindow]]:
    stmt = sa.select(MaintenanceWindow).order_by(MaintenanceWindow.starts_at.desc(), MaintenanceWindow.id)
    if f.target_kind:
        if f.target_kind not in MAINTENANCE_TARGETS:
            raise Invalid(_("Maintenance applies to a site, endpoint, bridge or link, not '%(kind)s'.",
                            kind=f.target_kind), {"target_kind": [_("unknown kind")]})
        column = getattr(MaintenanceWindow, f"{f.target_kind}_id")
        stmt = stmt.where(column.is_not(None) if f.target_id is None else column == f.target_id)
    if f.ends_after is not None:
        stmt = stmt.where(MaintenanceWindow.ends_at > f.ends_after)
    if f.starts_before is not None:
        stmt = stmt.where(MaintenanceWindow.starts_at < f.starts_before)
    return stmt


def maintenance_target_kind(window: MaintenanceWindow) -> str:
    return next(kind for kind in MAINTENANCE_TARGETS if getattr(window, f"{kind}_id") is not None)


# ---------------------------------------------------------------- what the inventory pages show

def site_options(session: so.Session, include_retired: bool = False) -> list[Site]:
    """Sites to choose from in a form, highest levels first."""
    stmt = sa.select(Site).join(Site.level).order_by(Level.rank, Site.code)
    if not include_retired:
        stmt = stmt.where(Site.status != Status.RETIRED)
    return list(session.scalars(stmt))


def parent_sites(session: so.Session) -> list[Site]:
    """Sites that have sites under them: the choices of a "within this subtree" filter."""
    parents = sa.select(Site.parent_id).where(Site.parent_id.is_not(None))
    return list(session.scalars(sa.select(Site).join(Site.level).where(Site.id.in_(parents))
                                .order_by(Level.rank, Site.code)))


def ancestors(session: so.Session, site: Site) -> list[Site]:
    """The site's ancestors from the root down (the breadcrumb of its place in the tree)."""
    ids = site.ancestor_ids
    found = {s.id: s for s in session.scalars(sa.select(Site).where(Site.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def endpoint_counts(session: so.Session) -> dict[int, int]:
    """Rooms per site id, retired rooms left out."""
    rows = session.execute(sa.select(Endpoint.site_id, sa.func.count()).where(Endpoint.status != Status.RETIRED)
                           .group_by(Endpoint.site_id))
    return {site_id: count for site_id, count in rows}


@dataclass
class TreeNode:
    site: Site
    endpoints: int
    children: list[TreeNode]


def site_tree(session: so.Session, root: Site | None = None) -> list[TreeNode]:
    """The site tree (or the subtree of `root`) in one query, children ordered by code."""
    stmt = sa.select(Site).order_by(Site.code)
    if root is not None:
        stmt = stmt.where(Site.path.startswith(root.path))
    sites = list(session.scalars(stmt))
    counts = endpoint_counts(session)
    nodes = {site.id: TreeNode(site, counts.get(site.id, 0), []) for site in sites}
    roots = []
    for site in sites:
        parent = nodes.get(site.parent_id) if site.parent_id is not None else None
        if parent is None or (root is not None and site.id == root.id):
            roots.append(nodes[site.id])
        else:
            parent.children.append(nodes[site.id])
    return roots


def site_links(session: so.Session, site: Site) -> list[Link]:
    """Every link with an end at the site, its uplink (towards the parent) first."""
    links = list(session.scalars(sa.select(Link).where(sa.or_(Link.site_a_id == site.id, Link.site_b_id == site.id))
                                 .order_by(Link.code)))
    up = uplink(session, site)
    return ([up] if up is not None else []) + [link for link in links if link is not up]


def site_bridges(session: so.Session, site: Site) -> list[Bridge]:
    return list(session.scalars(sa.select(Bridge).where(Bridge.site_id == site.id).order_by(Bridge.name)))


def site_maintenance(session: so.Session, site: Site, limit: int = 20) -> list[MaintenanceWindow]:
    """Maintenance windows on the site, its rooms or its links, latest first."""
    room_ids = sa.select(Endpoint.id).where(Endpoint.site_id == site.id)
    link_ids = sa.select(Link.id).where(sa.or_(Link.site_a_id == site.id, Link.site_b_id == site.id))
    stmt = (sa.select(MaintenanceWindow)
            .where(sa.or_(MaintenanceWindow.site_id == site.id, MaintenanceWindow.endpoint_id.in_(room_ids),
                          MaintenanceWindow.link_id.in_(link_ids)))
            .order_by(MaintenanceWindow.starts_at.desc()).limit(limit))
    return list(session.scalars(stmt))


MAINTENANCE_PERIODS = ("current", "upcoming", "past")


def maintenance_list_query(session: so.Session, when: str = "", q: str = "",
                           now: dt.datetime | None = None) -> sa.Select[tuple[MaintenanceWindow]]:
    """Windows that are on now, still to come or over, found by their reason or their target's name."""
    now = now or dt.datetime.now(dt.UTC)
    stmt = maintenance_query(session, MaintenanceFilter()).order_by(None)
    if when == "current":
        stmt = stmt.where(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)
    elif when == "upcoming":
        stmt = stmt.where(MaintenanceWindow.starts_at > now)
    elif when == "past":
        stmt = stmt.where(MaintenanceWindow.ends_at <= now)
    if when in ("current", "upcoming"):
        stmt = stmt.order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
    else:
        stmt = stmt.order_by(MaintenanceWindow.starts_at.desc(), MaintenanceWindow.id)
    if q.strip():
        like = f"%{q.strip()}%"
        site, room, room_site = so.aliased(Site), so.aliased(Endpoint), so.aliased(Site)
        stmt = (stmt.outerjoin(site, MaintenanceWindow.site_id == site.id)
                .outerjoin(room, MaintenanceWindow.endpoint_id == room.id)
                .outerjoin(room_site, room.site_id == room_site.id)
                .outerjoin(Bridge, MaintenanceWindow.bridge_id == Bridge.id)
                .outerjoin(Link, MaintenanceWindow.link_id == Link.id)
                .where(sa.or_(MaintenanceWindow.reason.ilike(like), site.code.ilike(like), site.name.ilike(like),
                              room.room_name.ilike(like), room_site.code.ilike(like), room_site.name.ilike(like),
                              Bridge.name.ilike(like), Link.code.ilike(like))))
    return stmt


def maintenance_targets(session: so.Session) -> dict[str, list[Any]]:
    """What a new maintenance window can be put on: everything not retired, by kind."""
    def active(model: Any, *order: Any) -> list[Any]:
        return list(session.scalars(sa.select(model).where(model.status != Status.RETIRED).order_by(*order)))

    rooms = list(session.scalars(sa.select(Endpoint).join(Endpoint.site).where(Endpoint.status != Status.RETIRED)
                                 .order_by(Site.code, Endpoint.room_name)))
    return {"site": active(Site, Site.code), "endpoint": rooms, "bridge": active(Bridge, Bridge.name),
            "link": active(Link, Link.code)}


@dataclass
class InventoryCounts:
    sites_by_level: list[tuple[Level, int]]
    endpoints: dict[Status, int]
    bridges: dict[Status, int]
    links: dict[Status, int]


def _count_by_status(session: so.Session, model: Any) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    for status, count in session.execute(sa.select(model.status, sa.func.count()).group_by(model.status)):
        counts[Status(status)] = count
    return counts


def inventory_counts(session: so.Session) -> InventoryCounts:
    """The home page's summary: sites in service by level, equipment and links by status."""
    by_level = session.execute(
        sa.select(Level.id, sa.func.count(Site.id))
        .outerjoin(Site, sa.and_(Site.level_id == Level.id, Site.status != Status.RETIRED))
        .group_by(Level.id))
    counts = dict(by_level.all())
    return InventoryCounts(
        sites_by_level=[(level, counts.get(level.id, 0)) for level in list_levels(session)],
        endpoints=_count_by_status(session, Endpoint), bridges=_count_by_status(session, Bridge),
        links=_count_by_status(session, Link))


def upcoming_maintenance(session: so.Session, limit: int = 10,
                         now: dt.datetime | None = None) -> list[MaintenanceWindow]:
    """Windows on now or still to come, soonest first."""
    now = now or dt.datetime.now(dt.UTC)
    return list(session.scalars(sa.select(MaintenanceWindow).where(MaintenanceWindow.ends_at > now)
                                .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id).limit(limit)))
