"""The Ansible inventory of the managed equipment, built from the database: used by the job runner and by the
dynamic inventory script (inventory/vcops.py), so both see the same hosts, groups and variables.

Groups: by kind (endpoints, bridges, link_routers, media_servers, recording_servers), by level
(level_province, level_district, ...) and by site at each level of the site's ancestry (site_TQ_CH holds the
district's own equipment and its communes'). Host variables come from the models; an endpoint also carries its
vendor (which selects the device profile of the vcops_xapi module), its pinned host key (so the module refuses
any other key) and the address of its site's link towards the parent site (the readiness checks ping it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.devices.models import HostKey, HostKeyState
from app.provisioning.credentials.service import AssignmentResolver
from app.sites.models import Bridge, Endpoint, Link, ManagedHost, Site, Status

KIND_GROUPS = ("endpoints", "bridges", "link_routers", "media_servers", "recording_servers")


@dataclass
class Inventory:
    """Hosts with their variables, groups, and which credential each host logs in with."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    credential_of: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, variables: dict[str, Any], groups: Iterable[str], credential_id: int | None) -> None:
        self.hosts[name] = variables
        for group in groups:
            self.groups.setdefault(group, []).append(name)
        if credential_id is not None:
            self.credential_of[name] = credential_id

    def as_ansible(self) -> dict[str, Any]:
        """The `--list` document of a dynamic inventory (with _meta.hostvars, so no --host call is needed)."""
        document: dict[str, Any] = {"_meta": {"hostvars": self.hosts}}
        for group, names in sorted(self.groups.items()):
            document[group] = {"hosts": list(names)}
        document["all"] = {"children": sorted(["ungrouped", *self.groups])}
        return document


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def group_name(name: str) -> str:
    """A valid Ansible group name (letters, digits and underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def endpoint_hostname(endpoint: Endpoint) -> str:
    """An endpoint's name in the inventory: its site's code and its room, e.g. TQ-TP-MX.phong-hop-1."""
    return f"{endpoint.site.code}.{_slug(endpoint.room_name)}"


def _pinned_keys(session: so.Session) -> dict[tuple[str, int], HostKey]:
    return {(k.address, k.port): k for k in session.scalars(sa.select(HostKey)
                                                            .where(HostKey.state == HostKeyState.ACCEPTED))}


def _uplinks(session: so.Session, sites: dict[int, Site]) -> dict[int, tuple[str, int]]:
    """Each site's link towards its parent: (the address at the site's end, the contracted kbit/s)."""
    found: dict[int, tuple[str, int]] = {}
    for link in session.scalars(sa.select(Link).where(Link.status == Status.ACTIVE).order_by(Link.id)):
        for site_id, other_id, address in ((link.site_a_id, link.site_b_id, link.address_a),
                                           (link.site_b_id, link.site_a_id, link.address_b)):
            site = sites.get(site_id)
            if site is not None and site.parent_id == other_id and site_id not in found:
                found[site_id] = (address, link.bandwidth_kbps)
    return found


def build_inventory(session: so.Session, credential_id: int | None = None) -> Inventory:
    """The managed equipment with a management address (active or planned). `credential_id` (a template's)
    replaces every host's assigned credential."""
    sites = {s.id: s for s in session.scalars(sa.select(Site).options(so.joinedload(Site.level)))}
    resolver = AssignmentResolver(session)
    pins = _pinned_keys(session)
    uplinks = _uplinks(session, sites)
    inventory = Inventory()

    def site_groups(site: Site | None) -> list[str]:
        if site is None:
            return []
        ids = [int(p) for p in site.path.strip("/").split("/") if p] or [site.id]
        return ([f"site_{group_name(sites[i].code)}" for i in ids if i in sites]
                + [f"level_{group_name(site.level.code)}"])

    def add(name: str, device: Endpoint | Bridge | ManagedHost, kind_group: str, variables: dict[str, Any]) -> None:
        while name in inventory.hosts:  # names are unique per kind; across kinds, the later one gives way
            name = f"{name}-{kind_group}"
        site = sites.get(device.site_id) if device.site_id else None
        variables = {"vcops_kind": kind_group, "vcops_id": device.id,
                     "vcops_site_code": site.code if site else "", "vcops_site_name": site.name if site else "",
                     **variables}
        if site is not None and site.id in uplinks:
            variables["vcops_link_address"], variables["vcops_link_kbps"] = uplinks[site.id]
        port = int(variables.get("ansible_port") or 22)
        pin = pins.get((device.mgmt_address, port))
        if pin is not None:
            variables["vcops_host_key"] = {"type": pin.key_type, "fingerprint": pin.fingerprint}
        inventory.add(name, variables, [kind_group, *site_groups(site)],
                      credential_id if credential_id is not None else resolver.credential_id(device))

    live = (Status.ACTIVE, Status.PLANNED)
    for e in session.scalars(sa.select(Endpoint).options(so.joinedload(Endpoint.site))
                             .where(Endpoint.status.in_(live), Endpoint.mgmt_address != "").order_by(Endpoint.id)):
        bitrate = uplinks.get(e.site_id, ("", 0))[1]
        add(endpoint_hostname(e), e, "endpoints", {
            "ansible_host": e.mgmt_address, "ansible_port": e.mgmt_port, "vcops_endpoint_id": e.id,
            "vcops_vendor": e.vendor, "vcops_sip_uri": e.sip_uri, "vcops_display_name": e.site.name,
            "vcops_room_name": e.room_name, **({"vcops_bitrate_kbps": bitrate} if bitrate else {})})
    for b in session.scalars(sa.select(Bridge).options(so.joinedload(Bridge.site))
                             .where(Bridge.status.in_(live), Bridge.mgmt_address != "").order_by(Bridge.id)):
        add(b.name, b, "bridges", {"ansible_host": b.mgmt_address, "vcops_bridge_id": b.id,
                                   "vcops_vendor": b.vendor, "vcops_sip_address": b.sip_address})
    for h in session.scalars(sa.select(ManagedHost).options(so.joinedload(ManagedHost.site))
                             .where(ManagedHost.status.in_(live), ManagedHost.mgmt_address != "")
                             .order_by(ManagedHost.id)):
        add(h.name, h, f"{h.kind.value}s", {"ansible_host": h.mgmt_address})
    return inventory
