"""Sites room: the rules of the site tree — materialised paths, ancestors, subtrees, and which link is a
site's uplink.

A site's uplink is one of the active links between it and its parent. When there are several (a dedicated
line and a 4G or internet backup), the dedicated line with the lowest id is the primary and carries the
site's media; the others back it up. When no dedicated line is active (the site has failed over), the
lowest-id other link is the primary. Booking (the bandwidth it reserves), the site page and monitoring (which
link backs up which) all read this one rule, `uplink_rank`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.sites.models import Level, Link, LinkMedium, Site, Status


def path_ids(site: Site) -> list[int]:
    """Ids from the root down to the site itself."""
    return [int(p) for p in site.path.strip("/").split("/") if p]


def repath(session: so.Session, site: Site) -> None:
    """Recompute the materialised path of a site and of its whole subtree."""
    old = site.path
    parent = session.get(Site, site.parent_id) if site.parent_id else None
    site.path = f"{parent.path if parent else '/'}{site.id}/"
    if old not in ("/", site.path):
        for child in session.scalars(sa.select(Site).where(Site.path.startswith(old), Site.id != site.id)):
            child.path = site.path + child.path[len(old):]


def subtree_ids(session: so.Session, site: Site) -> list[int]:
    return list(session.scalars(sa.select(Site.id).where(Site.path.startswith(site.path))))


def ancestor_at_level(session: so.Session, site: Site, level: Level) -> Site | None:
    """The site's ancestor (or itself) at the given level: "by district" means this with the district level."""
    ids = path_ids(site)
    if not ids:
        return None
    return session.scalar(sa.select(Site).where(Site.id.in_(ids), Site.level_id == level.id))


def group_by_ancestor(session: so.Session, sites: Iterable[Site], level: Level) -> dict[Site | None, list[Site]]:
    """Sites grouped under their ancestor at a level; sites above that level fall under None."""
    sites = list(sites)
    ancestor_ids: set[int] = set()
    for site in sites:
        ancestor_ids.update(path_ids(site))
    at_level = {s.id: s for s in session.scalars(
        sa.select(Site).where(Site.id.in_(ancestor_ids), Site.level_id == level.id))}
    groups: dict[Site | None, list[Site]] = {}
    for site in sites:
        key = next((at_level[i] for i in path_ids(site) if i in at_level), None)
        groups.setdefault(key, []).append(site)
    return groups


def ancestors(session: so.Session, site: Site) -> list[Site]:
    """The site's ancestors from the root down (the breadcrumb of its place in the tree)."""
    ids = site.ancestor_ids
    found = {s.id: s for s in session.scalars(sa.select(Site).where(Site.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


# ---------------------------------------------------------------- uplinks: primary and backups

def uplink_rank(medium: LinkMedium, link_id: int) -> tuple[int, int]:
    """Where an active link between a site and its parent stands among them: the lowest is the primary.

    The lowest id alone is not the rule: when a district's dedicated line is replaced, its 4G backup (older,
    so with a lower id) must not become the line that carries the meetings."""
    return (0 if medium == LinkMedium.DEDICATED else 1, link_id)


def primary_links(links: Iterable[tuple[int, int, int, LinkMedium]]) -> dict[tuple[int, int], int]:
    """The primary link of each pair of sites, from active links given as (id, site_a_id, site_b_id, medium),
    under both (a, b) and (b, a). The caller passes only active links (and, for uplinks, parent-child pairs)."""
    best: dict[tuple[int, int], tuple[tuple[int, int], int]] = {}
    for link_id, a, b, medium in links:
        rank = uplink_rank(medium, link_id)
        for pair in ((a, b), (b, a)):
            if pair not in best or rank < best[pair][0]:
                best[pair] = (rank, link_id)
    return {pair: link_id for pair, (_rank, link_id) in best.items()}


def uplinks(session: so.Session, site: Site) -> list[Link]:
    """The active links between a site and its parent, the primary first, then its backups."""
    if site.parent_id is None:
        return []
    links = session.scalars(sa.select(Link).where(
        Link.status == Status.ACTIVE,
        sa.or_(sa.and_(Link.site_a_id == site.id, Link.site_b_id == site.parent_id),
               sa.and_(Link.site_b_id == site.id, Link.site_a_id == site.parent_id))))
    return sorted(links, key=lambda link: uplink_rank(link.medium, link.id))


def uplink(session: so.Session, site: Site) -> Link | None:
    """The site's primary uplink: the link a meeting's media takes upwards (None for the root, or none active)."""
    found = uplinks(session, site)
    return found[0] if found else None
