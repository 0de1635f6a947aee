"""Monitoring room: the network as the probes and the alerts see it, read from the inventory.

A site's uplink is an active link between it and its parent; which one is the primary and which back it up is
the sites' rule (app.sites.tree.primary_links), the same one booking reserves bandwidth by. A link's far end
is its end at the child site: the probe agents sit at the province and measure the path down to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.errors import Invalid
from app.sites.models import Endpoint, EndpointKind, Link, LinkMedium, Site, Status
from app.sites.tree import primary_links

SIP_PORT = 5060


@dataclass(frozen=True)
class Shard:
    """Agent `index` of `count` (1-based, as `--shard 2/3` reads): it probes the targets whose id falls to it."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise Invalid(f"--shard takes I/N with whole numbers, such as 1/3, not {text!r}.") from None
        if not 1 <= shard.index <= shard.count:
            raise Invalid(f"--shard {text}: I must be between 1 and N.")
        return shard

    def owns(self, target_id: int) -> bool:
        return target_id % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class LinkTarget:
    link_id: int
    code: str
    address: str  # the far end's address, which the echoes go to
    site_code: str  # the site at the far end (the child)
    parent_code: str  # the site at the near end; "" for a link between two sites that are not parent and child
    backup_of: str = ""  # code of the primary link this one backs up; "" for a primary


@dataclass(frozen=True)
class EndpointTarget:
    endpoint_id: int
    site_code: str
    room_name: str
    address: str
    mgmt_port: int
    vendor: str
    sip_port: int = SIP_PORT


@dataclass
class Topology:
    links: list[LinkTarget] = field(default_factory=list)
    uplink_of_site: dict[str, str] = field(default_factory=dict)  # site code -> its primary uplink's code
    parent_of_site: dict[str, str] = field(default_factory=dict)  # site code -> parent site code

    def ancestor_links(self, site_code: str) -> list[str]:
        """The primary uplinks above a site's own, nearest first (a commune: its district's uplink)."""
        found: list[str] = []
        parent = self.parent_of_site.get(site_code)
        while parent:
            if parent in self.uplink_of_site:
                found.append(self.uplink_of_site[parent])
            parent = self.parent_of_site.get(parent)
        return found


def topology(session: so.Session) -> Topology:
    """Every active link with an address at its far end, with the roles primary/backup, in one pass."""
    sites = {row.id: row for row in session.execute(sa.select(Site.id, Site.code, Site.parent_id))}
    result = Topology(parent_of_site={s.code: sites[s.parent_id].code for s in sites.values()
                                      if s.parent_id is not None and s.parent_id in sites})
    rows = session.execute(sa.select(Link.id, Link.code, Link.site_a_id, Link.address_a, Link.site_b_id,
                                     Link.address_b, Link.medium).where(Link.status == Status.ACTIVE)
                           .order_by(Link.id)).all()
    uplinks: list[tuple[int, int, int, LinkMedium]] = []  # (link id, child, parent, medium)
    entries = []
    for row in rows:
        a, b = sites[row.site_a_id], sites[row.site_b_id]
        if b.parent_id == a.id:  # b is the child: the far end is b's
            child, parent, address = b, a, row.address_b
        elif a.parent_id == b.id:
            child, parent, address = a, b, row.address_a
        else:  # a cross link: probe the b end
            child, parent, address = b, None, row.address_b
        if parent is not None:
            uplinks.append((row.id, child.id, parent.id, row.medium))
        entries.append((row, child, parent, address))
    code_of = {row.id: row.code for row in rows}
    primary_of_site = {child_id: code_of[link_id] for (child_id, parent_id), link_id in primary_links(uplinks).items()
                       if sites[child_id].parent_id == parent_id}
    for site_id, code in primary_of_site.items():
        result.uplink_of_site[sites[site_id].code] = code
    for row, child, parent, address in entries:
        if not address:
            continue
        primary = primary_of_site.get(child.id, "") if parent is not None else ""
        result.links.append(LinkTarget(
            link_id=row.id, code=row.code, address=address, site_code=child.code,
            parent_code=parent.code if parent is not None else "",
            backup_of=primary if primary and primary != row.code else ""))
    return result


def link_targets(session: so.Session, shard: Shard = Shard()) -> list[LinkTarget]:
    return [t for t in topology(session).links if shard.owns(t.link_id)]


def endpoint_targets(session: so.Session, shard: Shard = Shard()) -> list[EndpointTarget]:
    """Active room systems with a management address (software clients have nothing to probe)."""
    rows = session.execute(sa.select(Endpoint.id, Site.code, Endpoint.room_name, Endpoint.mgmt_address,
                                     Endpoint.mgmt_port, Endpoint.vendor)
                           .join(Site, Site.id == Endpoint.site_id)
                           .where(Endpoint.status == Status.ACTIVE, Endpoint.kind == EndpointKind.ROOM_SYSTEM,
                                  Endpoint.mgmt_address != "")
                           .order_by(Endpoint.id))
    return [EndpointTarget(r.id, r.code, r.room_name, r.mgmt_address, r.mgmt_port, r.vendor)
            for r in rows if shard.owns(r.id)]
