"""A second province beside the demo's Tuyên Quang, with something of every kind in it, and users confined to
Tuyên Quang: what the scope tests walk (tests/test_access.py, tests/sites/test_scopes.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.auth.models import Role, User
from app.auth.service import create_token, create_user
from app.devices.models import ActionKind, DeviceAction
from app.meetings.service import BookingRequest, book_meeting
from app.monitoring.models import Incident, IncidentStatus
from app.provisioning.models import Job, JobSite, JobTemplate
from app.sites import equipment, maintenance, service
from app.sites.models import ContactRole, EndpointKind, HostKind, LinkMedium, Site

MARK = "Hà Giang"  # in the name of everything outside the scope: a page showing it shows what it should not
PASSWORD = "correct horse battery"


@dataclass
class Outside:
    """Ids of the other province's objects, by the name of the route parameter that would carry them."""

    ids: dict[str, Any]
    province: Site
    commune: Site


def other_province(session: so.Session) -> Outside:
    """Hà Giang (HG), a commune under it, a room, a host, a bridge and a link of each, a maintenance window, a
    booked meeting, a job that worked there, an incident and a device action; flushed."""
    province = service.create_site(session, {"code": "HG", "name": f"UBND tỉnh {MARK}", "level": "province"})
    commune = service.create_site(session, {"code": "HG-DV", "name": f"Xã Đồng Văn {MARK}", "level": "commune",
                                            "parent_id": province.id})
    service.replace_contacts(session, commune, [{"name": f"Văn phòng {MARK}", "role": ContactRole.SECRETARY,
                                                 "email": "vanphong.hgdv@example.com", "phone": ""}])
    room = equipment.save_endpoint(session, {"site_id": commune.id, "room_name": f"Phòng họp {MARK}",
                                             "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": "198.19.0.10"})
    equipment.save_endpoint(session, {"site_id": province.id, "room_name": f"Hội trường {MARK}",
                                      "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": "198.19.0.11"})
    host = equipment.save_host(session, {"site_id": commune.id, "name": "rt-hg-dv", "kind": HostKind.LINK_ROUTER,
                                         "mgmt_address": "198.19.0.12"})
    bridge = equipment.save_bridge(session, {"name": "MCU-HG-01", "site_id": province.id, "total_ports": 20,
                                             "mgmt_address": "198.19.0.13"})
    link = equipment.save_link(session, {"site_a_id": commune.id, "address_a": "198.19.0.14",
                                         "site_b_id": province.id, "address_b": "198.19.0.15",
                                         "medium": LinkMedium.DEDICATED, "bandwidth_kbps": 8000})
    now = dt.datetime.now(dt.UTC)
    window = maintenance.create_maintenance(session, "site", commune.id, now + dt.timedelta(days=2),
                                            now + dt.timedelta(days=2, hours=2), f"Bảo trì {MARK}", None)
    start = (now + dt.timedelta(days=3)).replace(hour=2, minute=0, second=0, microsecond=0)
    meeting = book_meeting(session, BookingRequest(title=f"Giao ban {MARK}", host_site_id=province.id,
                                                   starts_at=start, ends_at=start + dt.timedelta(hours=1),
                                                   site_ids=[commune.id]))
    occurrence = meeting.occurrences[0]
    template = session.scalar(sa.select(JobTemplate).where(JobTemplate.name == "scope-walk"))
    if template is None:
        template = JobTemplate(name="scope-walk", playbook="ping.yml", launch_roles=["technician"])
        session.add(template)
        session.flush()
    job = Job(template=template, playbook="ping.yml", limit="site_HG")
    session.add(job)
    session.flush()
    session.add(JobSite(job_id=job.id, site_id=commune.id))
    incident = Incident(fingerprint="hg", alertname="LinkDown", status=IncidentStatus.FIRING, site_code="HG-DV",
                        link_code=link.code, summary=f"Mất kết nối {MARK}", starts_at=now)
    action = DeviceAction(endpoint_id=room.id, action=ActionKind.STATUS)
    session.add_all([incident, action])
    session.flush()
    ids = {"site_id": commune.id, "endpoint_id": room.id, "host_id": host.id, "bridge_id": bridge.id,
           "link_id": link.id, "code": link.code, "window_id": window.id, "meeting_id": meeting.id,
           "occurrence_id": occurrence.id, "participation_id": occurrence.participations[-1].id,
           "job_id": job.id, "incident_id": incident.id, "action_id": action.id}
    return Outside(ids=ids, province=province, commune=commune)


def scoped_user(session: so.Session, role: Role, site_code: str = "TQ", email: str = "") -> tuple[User, str]:
    """A user of the role confined to the site's subtree, with an API token (returned)."""
    site = session.scalar(sa.select(Site).where(Site.code == site_code))
    user = create_user(session, email or f"{role.value}.{site_code.lower()}@example.com", role, PASSWORD,
                       site_code="TQ-TP-MX" if role is Role.SITE_STAFF else None)
    user.scope_site_id = site.id
    session.flush()
    return user, create_token(session, user, "scope")[1]
