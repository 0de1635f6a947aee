"""Sites room: the read side of the inventory — the filtered lists (pages and API alike) and what the inventory
pages show (the tree, a site's links, bridges and maintenance, the home page's counts).

Read-only functions on a session; nothing here changes a row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.db import get_or_raise
from app.errors import Invalid
from app.sites import tree
from app.sites.maintenance import MAINTENANCE_TARGETS
from app.sites.models import (
    Bridge,
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
from app.sites.scope import Scope, within
from app.sites.service import list_levels


@dataclass
class SiteFilter:
    q: str = ""
    level: str = ""
    within: int | None = None  # a site id: its subtree
    status: str = ""
    sample: bool | None = None
    scope: Scope | None = None  # the user's: always applied


def site_query(session: so.Session, f: SiteFilter) -> sa.Select[tuple[Site]]:
    stmt = sa.select(Site).join(Site.level).order_by(Level.rank, Site.code).where(within(f.scope, Site.id))
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Site.code.ilike(like), Site.name.ilike(like), Site.address.ilike(like)))
    if f.level:
        stmt = stmt.where(Level.code == f.level)
    if f.within:
        root = get_or_raise(session, Site, f.within, _("No site with id %(id)s.", id=f.within))
        stmt = stmt.where(Site.path.startswith(root.path))
    if f.status:
        stmt = stmt.where(Site.status == Status(f.status))
    if f.sample is not None:
        stmt = stmt.where(Site.is_sample.is_(f.sample))
    return stmt


@dataclass
class EquipmentFilter:
    """Filters of the endpoint, host and bridge lists; `kind` applies to endpoints and hosts."""

    q: str = ""
    within: int | None = None  # a site id: equipment at that site or below it
    status: str = ""
    kind: str = ""
    scope: Scope | None = None  # the user's: always applied


@dataclass
class LinkFilter:
    q: str = ""
    within: int | None = None  # a site id: links with either end in its subtree
    medium: str = ""
    status: str = ""
    scope: Scope | None = None  # the user's: links with either end in it


@dataclass
class MaintenanceFilter:
    target_kind: str = ""
    target_id: int | None = None
    ends_after: dt.datetime | None = None  # with starts_before: windows overlapping a period
    starts_before: dt.datetime | None = None
    scope: Scope | None = None  # the user's: windows on what lies in it


def _subtree_of(session: so.Session, site_id: int) -> sa.ColumnElement[bool]:
    root = get_or_raise(session, Site, site_id, _("No site with id %(id)s.", id=site_id))
    return Site.path.startswith(root.path)


def endpoint_query(session: so.Session, f: EquipmentFilter) -> sa.Select[tuple[Endpoint]]:
    stmt = (sa.select(Endpoint).join(Endpoint.site).order_by(Site.path, Endpoint.room_name)
            .where(within(f.scope, Endpoint.site_id)))
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
    stmt = (sa.select(ManagedHost).join(ManagedHost.site).order_by(ManagedHost.name)
            .where(within(f.scope, ManagedHost.site_id)))
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
    if f.scope is not None:  # bridges without a site are shared: everybody sees them
        stmt = stmt.where(sa.or_(Bridge.site_id.is_(None), f.scope.clause(Bridge.site_id)))
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
    if f.scope is not None:
        stmt = stmt.where(sa.or_(f.scope.clause(Link.site_a_id), f.scope.clause(Link.site_b_id)))
    if f.q:
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(sa.or_(Link.code.ilike(like), Link.provider.ilike(like), Link.address_a.ilike(like),
                                 Link.address_b.ilike(like), site_a.name.ilike(like), site_b.name.ilike(like)))
    if f.within:
        root = get_or_raise(session, Site, f.within, _("No site with id %(id)s.", id=f.within))
        stmt = stmt.where(sa.or_(site_a.path.startswith(root.path), site_b.path.startswith(root.path)))
    if f.medium:
        stmt = stmt.where(Link.medium == LinkMedium(f.medium))
    if f.status:
        stmt = stmt.where(Link.status == Status(f.status))
    return stmt


def maintenance_query(session: so.Session, f: MaintenanceFilter) -> sa.Select[tuple[MaintenanceWindow]]:
    stmt = sa.select(MaintenanceWindow).order_by(MaintenanceWindow.starts_at.desc(), MaintenanceWindow.id)
    if f.scope is not None:
        stmt = stmt.where(maintenance_in(f.scope))
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


def maintenance_in(scope: Scope) -> sa.ColumnElement[bool]:
    """Windows on what the scope sees: its sites, their rooms and hosts, links with an end in it, shared
    bridges and bridges at its sites."""
    rooms = sa.select(Endpoint.id).where(scope.clause(Endpoint.site_id))
    bridges = sa.select(Bridge.id).where(sa.or_(Bridge.site_id.is_(None), scope.clause(Bridge.site_id)))
    links = sa.select(Link.id).where(sa.or_(scope.clause(Link.site_a_id), scope.clause(Link.site_b_id)))
    return sa.or_(scope.clause(MaintenanceWindow.site_id), MaintenanceWindow.endpoint_id.in_(rooms),
                  MaintenanceWindow.bridge_id.in_(bridges), MaintenanceWindow.link_id.in_(links))


MAINTENANCE_PERIODS = ("current", "upcoming", "past")


def maintenance_list_query(session: so.Session, when: str = "", q: str = "",
                           now: dt.datetime | None = None,
                           scope: Scope | None = None) -> sa.Select[tuple[MaintenanceWindow]]:
    """Windows that are on now, still to come or over, found by their reason or their target's name."""
    now = now or dt.datetime.now(dt.UTC)
    stmt = maintenance_query(session, MaintenanceFilter(scope=scope)).order_by(None)
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


def maintenance_targets(session: so.Session, scope: Scope | None = None) -> dict[str, list[Any]]:
    """What a new maintenance window can be put on: everything not retired (and changeable from the scope), by
    kind."""
    def active(model: Any, *where: Any) -> list[Any]:
        order = {Site: Site.code, Bridge: Bridge.name, Link: Link.code}[model]
        return list(session.scalars(sa.select(model).where(model.status != Status.RETIRED, *where).order_by(order)))

    rooms = list(session.scalars(sa.select(Endpoint).join(Endpoint.site).where(Endpoint.status != Status.RETIRED)
                                 .where(within(scope, Endpoint.site_id)).order_by(Site.code, Endpoint.room_name)))
    bridges = active(Bridge) if scope is None else active(Bridge, scope.clause(Bridge.site_id))
    return {"site": active(Site, within(scope, Site.id)), "endpoint": rooms, "bridge": bridges,
            "link": active(Link, within(scope, Link.site_a_id), within(scope, Link.site_b_id))}


def site_options(session: so.Session, include_retired: bool = False, scope: Scope | None = None) -> list[Site]:
    """Sites to choose from in a form, highest levels first."""
    stmt = sa.select(Site).join(Site.level).order_by(Level.rank, Site.code).where(within(scope, Site.id))
    if not include_retired:
        stmt = stmt.where(Site.status != Status.RETIRED)
    return list(session.scalars(stmt))


def parent_sites(session: so.Session, scope: Scope | None = None) -> list[Site]:
    """Sites that have sites under them: the choices of a "within this subtree" filter."""
    parents = sa.select(Site.parent_id).where(Site.parent_id.is_not(None))
    return list(session.scalars(sa.select(Site).join(Site.level).where(Site.id.in_(parents), within(scope, Site.id))
                                .order_by(Level.rank, Site.code)))


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


def site_tree(session: so.Session, root: Site | None = None, scope: Scope | None = None) -> list[TreeNode]:
    """The site tree (or the subtree of `root`) in one query, children ordered by code."""
    stmt = sa.select(Site).order_by(Site.code).where(within(scope, Site.id))
    if root is None and scope is not None:
        root = scope.site
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
    """Every link with an end at the site, its uplink (towards the parent) first (a link is seen from either
    end, so a scope hides none of them)."""
    links = list(session.scalars(sa.select(Link).where(sa.or_(Link.site_a_id == site.id, Link.site_b_id == site.id))
                                 .order_by(Link.code)))
    up = tree.uplink(session, site)
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


@dataclass
class InventoryCounts:
    sites_by_level: list[tuple[Level, int]]
    endpoints: dict[Status, int]
    bridges: dict[Status, int]
    links: dict[Status, int]


def _count_by_status(session: so.Session, model: Any, *where: Any) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    for status, count in session.execute(sa.select(model.status, sa.func.count()).where(*where)
                                         .group_by(model.status)):
        counts[Status(status)] = count
    return counts


def inventory_counts(session: so.Session, scope: Scope | None = None) -> InventoryCounts:
    """The home page's summary: sites in service by level, equipment and links by status (what the scope sees)."""
    by_level = session.execute(
        sa.select(Level.id, sa.func.count(Site.id))
        .outerjoin(Site, sa.and_(Site.level_id == Level.id, Site.status != Status.RETIRED, within(scope, Site.id)))
        .group_by(Level.id))
    counts = dict(by_level.all())
    bridges = () if scope is None else (sa.or_(Bridge.site_id.is_(None), scope.clause(Bridge.site_id)),)
    links = () if scope is None else (sa.or_(scope.clause(Link.site_a_id), scope.clause(Link.site_b_id)),)
    return InventoryCounts(
        sites_by_level=[(level, counts.get(level.id, 0)) for level in list_levels(session)],
        endpoints=_count_by_status(session, Endpoint, within(scope, Endpoint.site_id)),
        bridges=_count_by_status(session, Bridge, *bridges), links=_count_by_status(session, Link, *links))


def upcoming_maintenance(session: so.Session, limit: int = 10, now: dt.datetime | None = None,
                         scope: Scope | None = None) -> list[MaintenanceWindow]:
    """Windows on now or still to come, soonest first."""
    now = now or dt.datetime.now(dt.UTC)
    return list(session.scalars(sa.select(MaintenanceWindow).where(MaintenanceWindow.ends_at > now)
                                .where(maintenance_in(scope) if scope is not None else sa.true())
                                .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id).limit(limit)))
