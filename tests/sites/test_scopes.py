"""Users confined to a province (or a district): what they see, book, change and launch, and what stays outside."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import Role, User
from app.db import commit_scope
from app.meetings.models import Meeting
from app.provisioning.models import Job, JobTemplate
from app.sites.models import Link, Site
from tests.support.scopes import PASSWORD, other_province, scoped_user

TQ_NAME = "UBND tỉnh Tuyên Quang"


def _site(session, code: str) -> Site:
    return session.scalar(sa.select(Site).where(Site.code == code))


def _booking(host_id: int, *site_ids: int, days: int = 4) -> dict:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).replace(hour=2, minute=0, second=0, microsecond=0)
    return {"title": "Giao ban tháng", "host_site_id": host_id, "site_ids": list(site_ids),
            "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat()}


def _client(app, token: str):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_tuyen_quang_secretariat_cannot_book_a_meeting_hosted_in_another_province(app, session):
    outside = other_province(session)
    _user, token = scoped_user(session, Role.SECRETARIAT)
    tq = _site(session, "TQ")
    with commit_scope():
        pass
    client = _client(app, token)

    refused = client.post("/api/v1/meetings", json=_booking(outside.province.id, outside.commune.id))
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "out_of_scope"
    assert error["message"] == f"Outside your scope ({TQ_NAME})."
    assert session.scalar(sa.select(sa.func.count()).select_from(Meeting)
                          .where(Meeting.title == "Giao ban tháng")) == 0

    booked = client.post("/api/v1/meetings", json=_booking(tq.id, _site(session, "TQ-TP").id))
    assert booked.status_code == 201, booked.get_json()


def test_inviting_an_outside_site_is_refused_unless_the_province_allows_it(app, session):
    # A district's secretariat: the setting is the province's (its top-level site), the sites outside are the
    # other districts' (a meeting's media needs a path through the tree, so outside means elsewhere in it).
    _user, token = scoped_user(session, Role.SECRETARIAT, "TQ-TP")
    tq, tp, other = _site(session, "TQ"), _site(session, "TQ-TP"), _site(session, "TQ-LB-LC")
    with commit_scope():
        pass
    client = _client(app, token)

    refused = client.post("/api/v1/meetings", json=_booking(tp.id, other.id))
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["message"].startswith("Outside your scope (Thành phố Tuyên Quang): Xã Lăng Can.")
    assert error["fields"] == {"site_ids": ["outside your scope"]}
    # The booking form offers only the district's own sites meanwhile.
    login = app.test_client()
    login.post("/login", data={"email": "secretariat.tq-tp@example.com", "password": PASSWORD})
    assert "Xã Lăng Can" not in login.get("/meetings/new").get_data(as_text=True)

    tq.invites_outside_scope = True
    with commit_scope():
        pass
    allowed = client.post("/api/v1/meetings", json=_booking(tp.id, other.id))
    assert allowed.status_code == 201, allowed.get_json()
    assert "Xã Lăng Can" in login.get("/meetings/new").get_data(as_text=True)
    # Hosting stays the district's own, whatever the province allows.
    assert client.post("/api/v1/meetings", json=_booking(other.id, days=5)).status_code == 403


def test_a_meeting_hosted_outside_that_invites_the_district_is_seen_but_changed_only_by_its_host(app, session, api):
    _user, token = scoped_user(session, Role.SECRETARIAT, "TQ-TP")
    with commit_scope():
        pass
    booked = api(Role.ADMIN).post("/api/v1/meetings", json=_booking(_site(session, "TQ-LB").id,
                                                                   _site(session, "TQ-TP-MX").id))
    assert booked.status_code == 201, booked.get_json()
    meeting_id = booked.get_json()["id"]
    elsewhere = api(Role.ADMIN).post("/api/v1/meetings", json=_booking(_site(session, "TQ-LB").id, days=5))
    assert elsewhere.status_code == 201, elsewhere.get_json()
    client = _client(app, token)

    assert client.get(f"/api/v1/meetings/{meeting_id}").status_code == 200
    listed = [m["id"] for m in client.get("/api/v1/meetings?page_size=100").get_json()["items"]]
    assert meeting_id in listed and elsewhere.get_json()["id"] not in listed
    assert client.get(f"/api/v1/meetings/{elsewhere.get_json()['id']}").status_code == 404
    cancel = client.post(f"/api/v1/meetings/{meeting_id}/cancel", json={})
    assert cancel.status_code == 403
    assert cancel.get_json()["error"]["message"] == "Outside your scope (Thành phố Tuyên Quang)."


def test_a_scoped_operators_board_shows_only_their_sites(app, session):
    outside = other_province(session)
    _user, token = scoped_user(session, Role.OPERATOR, "TQ-TP")
    with commit_scope():
        pass
    client = _client(app, token)

    board = client.get("/api/v1/monitoring/board")
    assert board.status_code == 200
    assert sorted(s["code"] for s in board.get_json()["sites"]) == ["TQ-TP", "TQ-TP-AT", "TQ-TP-MX"]
    assert client.get("/api/v1/monitoring/board?under=TQ-LB").status_code == 404
    assert client.get("/api/v1/incidents?status=all").get_json()["items"] == []
    assert client.get(f"/api/v1/incidents/{outside.ids['incident_id']}").status_code == 404


def test_a_scoped_technician_cannot_launch_a_job_on_an_endpoint_outside(app, session):
    other_province(session)
    _user, token = scoped_user(session, Role.TECHNICIAN)
    template = session.scalar(sa.select(JobTemplate).where(JobTemplate.name == "scope-walk"))
    with commit_scope():
        pass
    client = _client(app, token)

    refused = client.post("/api/v1/jobs", json={"template_id": template.id, "limit": "site_HG_DV"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == f"Outside your scope ({TQ_NAME})."
    # A limit that reaches past the province is refused whole, not cut down to what is inside.
    assert client.post("/api/v1/jobs", json={"template_id": template.id, "limit": "endpoints"}).status_code == 403

    launched = client.post("/api/v1/jobs", json={"template_id": template.id, "limit": "site_TQ_TP"})
    assert launched.status_code == 202, launched.get_json()
    job_id = launched.get_json()["id"]
    listed = [j["id"] for j in client.get("/api/v1/jobs?page_size=100").get_json()["items"]]
    hidden = session.scalar(sa.select(Job.id).where(Job.limit == "site_HG"))
    assert job_id in listed and hidden not in listed
    assert client.get(f"/api/v1/jobs/{hidden}").status_code == 404


def test_a_district_technician_sees_its_uplink_but_may_not_change_it(app, session):
    _user, token = scoped_user(session, Role.TECHNICIAN, "TQ-TP")
    tp, lb = _site(session, "TQ-TP"), _site(session, "TQ-LB")
    uplink = session.scalar(sa.select(Link).where(Link.site_a_id == tp.id, Link.site_b_id == tp.parent_id))
    with commit_scope():
        pass
    client = _client(app, token)

    assert client.get(f"/api/v1/links/{uplink.id}").status_code == 200
    changed = client.patch(f"/api/v1/links/{uplink.id}", json={"provider": "Viettel"})
    assert changed.status_code == 403
    assert changed.get_json()["error"]["message"] == "Outside your scope (Thành phố Tuyên Quang)."
    assert client.get(f"/api/v1/sites/{lb.id}").status_code == 404
    # Nothing can be put outside either: a room moved to another district is refused and stays.
    room = tp.endpoints[0]
    moved = client.patch(f"/api/v1/endpoints/{room.id}", json={"site_id": lb.id, "room_name": "Phòng mới"})
    assert moved.status_code == 403
    assert client.get(f"/api/v1/endpoints/{room.id}").get_json()["site_id"] == tp.id
    codes = [s["code"] for s in client.get("/api/v1/sites?page_size=100").get_json()["items"]]
    assert sorted(codes) == ["TQ-TP", "TQ-TP-AT", "TQ-TP-MX"]


def test_an_admin_without_a_scope_sees_everything(app, session, api):
    outside = other_province(session)
    with commit_scope():
        pass
    admin = api(Role.ADMIN)
    codes = {s["code"] for s in admin.get("/api/v1/sites?page_size=100").get_json()["items"]}
    assert {"TQ", "TQ-TP-MX", "HG", "HG-DV"} <= codes
    board = {s["code"] for s in admin.get("/api/v1/monitoring/board").get_json()["sites"]}
    assert {"TQ", "HG-DV"} <= board
    assert admin.get(f"/api/v1/meetings/{outside.ids['meeting_id']}").status_code == 200
    assert admin.get(f"/api/v1/jobs/{outside.ids['job_id']}").status_code == 200


def test_admin_confines_a_user_to_a_province_on_the_user_form_and_the_change_is_audited(app, session, login):
    viewer = session.scalar(sa.select(User).where(User.email == "viewer@example.com"))
    tq = _site(session, "TQ")
    client = login("admin")
    page = client.get(f"/users/{viewer.id}").get_data(as_text=True)
    assert "The whole tree" in page and f"TQ · {TQ_NAME}" in page

    saved = client.post(f"/users/{viewer.id}", data={"name": viewer.name, "role": "viewer", "site": "",
                                                     "scope": "TQ", "active": "y"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    session.expire_all()
    assert session.get(User, viewer.id).scope_site_id == tq.id
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "User",
                                                       AuditEntry.object_id == str(viewer.id))
                           .order_by(AuditEntry.id.desc()))
    assert entry is not None and "scope_site_id" in str(entry.after)

    client.post(f"/users/{viewer.id}", data={"name": viewer.name, "role": "viewer", "site": "", "scope": "",
                                             "active": "y"})
    session.expire_all()
    assert session.get(User, viewer.id).scope_site_id is None


def test_only_an_admin_without_a_scope_lets_a_province_invite_outside_it(app, session, api):
    _user, token = scoped_user(session, Role.TECHNICIAN)
    tq = _site(session, "TQ")
    with commit_scope():
        pass
    widened = _client(app, token).patch(f"/api/v1/sites/{tq.id}", json={"invites_outside_scope": True})
    assert widened.status_code == 403
    assert api(Role.ADMIN).get(f"/api/v1/sites/{tq.id}").get_json()["invites_outside_scope"] is False

    allowed = api(Role.ADMIN).patch(f"/api/v1/sites/{tq.id}", json={"invites_outside_scope": True})
    assert allowed.status_code == 200 and allowed.get_json()["invites_outside_scope"] is True
