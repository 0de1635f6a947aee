"""Demo data: Tuyên Quang province, in the seed's three-level shape or today's two-level shape.

District-level units are those of the seed's time; the communes are a few samples under each, marked
`is_sample`. Addresses come from 198.18.0.0/15, the range set aside for network test labs.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.sites import equipment, service
from app.sites.models import ContactRole, EndpointKind, HostKind, LinkMedium, Site

PROVINCE = ("TQ", "UBND tỉnh Tuyên Quang", "Số 160 Trần Hưng Đạo, phường Minh Xuân, TP Tuyên Quang")

DISTRICTS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("TQ-TP", "Thành phố Tuyên Quang", [("TQ-TP-MX", "Phường Minh Xuân"), ("TQ-TP-AT", "Xã An Tường")]),
    ("TQ-LB", "Huyện Lâm Bình", [("TQ-LB-LC", "Xã Lăng Can"), ("TQ-LB-TL", "Xã Thượng Lâm")]),
    ("TQ-NH", "Huyện Na Hang", [("TQ-NH-NH", "Thị trấn Na Hang"), ("TQ-NH-TT", "Xã Thanh Tương")]),
    ("TQ-CH", "Huyện Chiêm Hóa", [("TQ-CH-VL", "Thị trấn Vĩnh Lộc"), ("TQ-CH-KB", "Xã Kim Bình")]),
    ("TQ-HY", "Huyện Hàm Yên", [("TQ-HY-TY", "Thị trấn Tân Yên"), ("TQ-HY-TS", "Xã Thái Sơn")]),
    ("TQ-YS", "Huyện Yên Sơn", [("TQ-YS-TM", "Xã Trung Môn"), ("TQ-YS-MB", "Xã Mỹ Bằng")]),
    ("TQ-SD", "Huyện Sơn Dương", [("TQ-SD-SD", "Thị trấn Sơn Dương"), ("TQ-SD-TT", "Xã Tân Trào")]),
]


class _Addresses:
    """Hands out 198.18.x.y addresses in order, so every seeded host has its own."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"198.18.{self.n // 250}.{self.n % 250 + 1}"


def _site(session: so.Session, code: str, name: str, level: str, parent: Site | None, address: str,
          sample: bool, addresses: _Addresses) -> Site:
    site = service.create_site(session, {"code": code, "name": name, "level": level,
                                         "parent_id": parent.id if parent else None,
                                         "address": address, "is_sample": sample})
    slug = code.lower().replace("-", "")
    service.replace_contacts(session, site, [
        {"name": f"Văn phòng {name}", "role": ContactRole.SECRETARY, "email": f"vanphong.{slug}@example.com",
         "phone": ""},
        {"name": f"Kỹ thuật {name}", "role": ContactRole.TECHNICAL, "email": f"kythuat.{slug}@example.com",
         "phone": ""},
    ])
    rooms = ["Phòng họp trực tuyến 1", "Phòng họp trực tuyến 2"] if parent is None else ["Phòng họp trực tuyến"]
    for room in rooms:
        equipment.save_endpoint(session, {
            "site_id": site.id, "room_name": room, "vendor": "Cisco", "model": "Room Kit" if parent else "Room 70",
            "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": addresses.next(), "mgmt_port": 22,
            "sip_uri": f"{slug}{rooms.index(room) + 1}@vc.tuyenquang.example.com", "firmware_version": "ce11.9.1"})
    if parent is not None:
        equipment.save_link(session, {
            "site_a_id": site.id, "address_a": addresses.next(), "site_b_id": parent.id,
            "address_b": addresses.next(), "provider": "VNPT", "medium": LinkMedium.DEDICATED,
            "bandwidth_kbps": 20000 if level == "district" else 8000})
    return site


def seed(session: so.Session, layout: str = "three-level") -> Site:
    """Load the province; refuses to run twice (site codes are unique)."""
    if session.scalar(sa.select(Site.id).where(Site.code == PROVINCE[0])) is not None:
        from app.errors import Conflict

        raise Conflict(_("The demo province is already loaded."), code="duplicate")
    service.ensure_levels(session, layout)
    addresses = _Addresses()
    province = _site(session, *PROVINCE[:2], "province", None, PROVINCE[2], False, addresses)
    equipment.save_bridge(session, {"name": "MCU-TQ-01", "vendor": "Cisco", "model": "Meeting Server 2000",
                                    "site_id": province.id, "mgmt_address": addresses.next(),
                                    "sip_address": "hop@vc.tuyenquang.example.com", "total_ports": 60})
    equipment.save_host(session, {"site_id": province.id, "name": "rt-tq", "kind": HostKind.LINK_ROUTER,
                                  "mgmt_address": addresses.next()})
    for code, name, communes in DISTRICTS:
        parent = province
        if layout == "three-level":
            parent = _site(session, code, name, "district", province, name, False, addresses)
            equipment.save_host(session, {"site_id": parent.id, "name": f"rt-{code.lower()}",
                                          "kind": HostKind.LINK_ROUTER, "mgmt_address": addresses.next()})
        for commune_code, commune_name in communes:
            _site(session, commune_code, commune_name, "commune", parent, f"{commune_name}, {name}", True,
                  addresses)
    return province
