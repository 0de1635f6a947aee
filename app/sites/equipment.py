"""Sites room: the equipment of the sites — room systems (endpoints), bridges, managed hosts — and the links
between sites: saved (created or changed) and retired.

Plain functions on a session: they validate, change and flush; the caller's commit point commits. Which link
is a site's uplink is app.sites.tree's rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.errors import Conflict, Invalid, NotFound
from app.sites.models import Bridge, Endpoint, Link, ManagedHost, Site, Status
from app.sites.service import apply_changes

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
    apply_changes(endpoint, data, ENDPOINT_FIELDS)
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
    apply_changes(bridge, data, BRIDGE_FIELDS)
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
    apply_changes(host, data, HOST_FIELDS)
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
    apply_changes(link, data, LINK_FIELDS)
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
