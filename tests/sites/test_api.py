"""The inventory's JSON API as its clients use it: scripts of technicians and operators with a bearer token."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.sites.models import (
    Bridge,
    Contact,
    Endpoint,
    Link,
    MaintenanceWindow,
    ManagedHost,
    Site,
)
from app.web.access import rule_for

INVENTORY_TABLES = [Site, Contact, Endpoint, Bridge, ManagedHost, Link, MaintenanceWindow]


def site_id(session, code: str) -> int:
    return session.scalar(sa.select(Site.id).where(Site.code == code))


def snapshot(session) -> dict[str, list[tuple]]:
    """Every inventory row, to show that a refused request wrote nothing."""
    return {model.__tablename__: sorted(tuple(row) for row in session.execute(sa.select(model.__table__)))
            for model in INVENTORY_TABLES}


def error_of(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"status", "code", "message", "fields"}
    assert body["error"]["status"] == response.status_code
    return body["error"]


# ---------------------------------------------------------------- a technician's day

def test_technician_creates_a_district_and_a_commune_then_edits_and_retires_them(api, session):
    tech = api(Role.TECHNICIAN)
    province = site_id(session, "TQ")

    response = tech.post("/api/v1/sites", json={
        "code": "TQ-XX", "name": "Huyện Thử Nghiệm", "level": "district", "parent_id": province,
        "address": "Tuyên Quang"})
    assert response.status_code == 201, response.get_json()
    district = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/sites/{district['id']}")
    assert (district["level"], district["parent_id"], district["ancestor_ids"]) == ("district", province, [province])

    response = tech.post("/api/v1/sites", json={
        "code": "TQ-XX-01", "name": "Xã Thử Nghiệm", "level": "commune", "parent_id": district["id"],
        "latitude": 21.82, "longitude": 105.21, "is_sample": True,
        "contacts": [{"name": "Nguyễn Văn A", "role": "secretary", "email": "a@example.com"}]})
    assert response.status_code == 201, response.get_json()
    commune = tech.get(response.headers["Location"]).get_json()
    assert commune["ancestor_ids"] == [province, district["id"]]
    assert commune["contacts"] == [{"name": "Nguyễn Văn A", "role": "secretary", "email": "a@example.com",
                                    "phone": ""}]

    listed = tech.get(f"/api/v1/sites?within={district['id']}").get_json()
    assert [s["code"] for s in listed["items"]] == ["TQ-XX", "TQ-XX-01"]
    assert listed["total"] == 2
    only_communes = tech.get(f"/api/v1/sites?within={district['id']}&level=commune").get_json()
    assert [s["code"] for s in only_communes["items"]] == ["TQ-XX-01"]

    response = tech.patch(f"/api/v1/sites/{commune['id']}", json={
        "name": "Xã Thử Nghiệm Mới",
        "contacts": [{"name": "Trần Thị B", "role": "technical", "phone": "0207 000 000"}]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "Xã Thử Nghiệm Mới"
    assert [c["name"] for c in response.get_json()["contacts"]] == ["Trần Thị B"]
    # A PATCH without contacts leaves them alone.
    assert tech.patch(f"/api/v1/sites/{commune['id']}", json={"notes": "x"}).get_json()["contacts"][0]["name"] \
        == "Trần Thị B"

    refused = tech.post(f"/api/v1/sites/{district['id']}/retire")
    assert refused.status_code == 409
    assert "Xã Thử Nghiệm Mới" in error_of(refused)["message"]
    assert tech.post(f"/api/v1/sites/{commune['id']}/retire").get_json()["status"] == "retired"
    assert tech.post(f"/api/v1/sites/{district['id']}/retire").get_json()["status"] == "retired"
    assert session.get(Site, district["id"]).status == "retired"


def test_site_lists_filter_by_level_status_sample_and_text_and_come_in_pages(api):
    viewer = api(Role.VIEWER)
    districts = viewer.get("/api/v1/sites?level=district&page_size=3&page=3").get_json()
    assert (districts["total"], districts["page"], districts["page_size"]) == (7, 3, 3)
    assert len(districts["items"]) == 1  # 7 districts: pages of 3, 3 and 1
    assert viewer.get("/api/v1/sites?sample=true").get_json()["total"] == 14
    assert viewer.get("/api/v1/sites?sample=false&status=active").get_json()["total"] == 8
    found = viewer.get("/api/v1/sites", query_string={"q": "Lăng Can"}).get_json()
    assert [s["code"] for s in found["items"]] == ["TQ-LB-LC"]
    assert viewer.get("/api/v1/sites?page=99").get_json()["items"] == []

    too_big = viewer.get("/api/v1/sites?page_size=201")
    assert too_big.status_code == 422
    assert list(error_of(too_big)["fields"]) == ["page_size"]


def test_technician_adds_equipment_and_a_link_and_finds_them_by_subtree_kind_and_medium(api, session):
    tech = api(Role.TECHNICIAN)
    na_hang, commune = site_id(session, "TQ-NH"), site_id(session, "TQ-NH-TT")

    endpoint = tech.post("/api/v1/endpoints", json={
        "site_id": commune, "room_name": "Phòng 2", "kind": "software_client", "mgmt_port": 443})
    assert endpoint.status_code == 201, endpoint.get_json()
    assert endpoint.get_json()["site_code"] == "TQ-NH-TT"
    host = tech.post("/api/v1/hosts", json={"site_id": commune, "name": "rec-nh-tt", "kind": "recording_server"})
    assert host.status_code == 201, host.get_json()
    bridge = tech.post("/api/v1/bridges", json={"name": "MCU-NH", "site_id": na_hang, "total_ports": 12})
    assert bridge.status_code == 201, bridge.get_json()
    link = tech.post("/api/v1/links", json={
        "site_a_id": commune, "site_b_id": site_id(session, "TQ"), "medium": "mobile_backup", "bandwidth_kbps": 4000})
    assert link.status_code == 201, link.get_json()
    link = link.get_json()
    assert (link["code"], link["site_a_code"], link["site_b_code"]) == ("TQ-NH-TT-TQ", "TQ-NH-TT", "TQ")

    clients = tech.get(f"/api/v1/endpoints?within={na_hang}&kind=software_client").get_json()
    assert [e["room_name"] for e in clients["items"]] == ["Phòng 2"]
    assert tech.get(f"/api/v1/endpoints?within={na_hang}").get_json()["total"] == 4
    assert [h["name"] for h in tech.get(f"/api/v1/hosts?within={na_hang}&kind=recording_server")
            .get_json()["items"]] == ["rec-nh-tt"]
    assert [b["name"] for b in tech.get("/api/v1/bridges?q=nh").get_json()["items"]] == ["MCU-NH"]
    assert [x["code"] for x in tech.get("/api/v1/links?medium=mobile_backup").get_json()["items"]] \
        == ["TQ-NH-TT-TQ"]

    patched = tech.patch(f"/api/v1/bridges/{bridge.get_json()['id']}", json={"total_ports": 24, "site_id": None})
    assert (patched.get_json()["total_ports"], patched.get_json()["site_code"]) == (24, None)
    assert tech.patch(f"/api/v1/links/{link['id']}", json={"bandwidth_kbps": 8000}).get_json()["bandwidth_kbps"] \
        == 8000
    for path in (f"/api/v1/endpoints/{endpoint.get_json()['id']}", f"/api/v1/hosts/{host.get_json()['id']}",
                 f"/api/v1/bridges/{bridge.get_json()['id']}", f"/api/v1/links/{link['id']}"):
        retired = tech.post(f"{path}/retire")
        assert (retired.status_code, retired.get_json()["status"]) == (200, "retired"), path
        assert tech.get(path).get_json()["status"] == "retired"
    assert tech.get("/api/v1/links?medium=mobile_backup&status=active").get_json()["total"] == 0


def test_operator_plans_moves_and_deletes_a_maintenance_window_in_local_time(api, session):
    operator = api(Role.OPERATOR)
    link = session.scalar(sa.select(Link.id).where(Link.code == "TQ-LB-TQ"))
    response = operator.post("/api/v1/maintenance", json={
        "target_kind": "link", "target_id": link, "starts_at": "2030-03-01T22:00:00+07:00",
        "ends_at": "2030-03-02T02:00:00+07:00", "reason": "VNPT thay cáp quang"})
    assert response.status_code == 201, response.get_json()
    window = response.get_json()
    assert (window["target_kind"], window["target_id"]) == ("link", link)
    assert window["starts_at"].startswith("2030-03-01T15:00:00")  # stored and shown by the API in UTC

    listed = operator.get(f"/api/v1/maintenance?target_kind=link&target_id={link}").get_json()
    assert [w["id"] for w in listed["items"]] == [window["id"]]
    moved = operator.patch(response.headers["Location"], json={"ends_at": "2030-03-02T04:00:00+07:00"})
    assert moved.get_json()["ends_at"].startswith("2030-03-01T21:00:00")
    backwards = operator.patch(response.headers["Location"], json={"ends_at": "2030-03-01T20:00:00+07:00"})
    assert (backwards.status_code, error_of(backwards)["fields"]) == (422, {"ends_at": ["must be after the start"]})

    assert operator.delete(response.headers["Location"]).status_code == 204
    assert operator.get(response.headers["Location"]).status_code == 404
    assert api(Role.VIEWER).get("/api/v1/levels").get_json()["items"][0]["code"] == "province"


# ---------------------------------------------------------------- bad input: the reason, and nothing written

def _bad_input_cases(session) -> list[tuple]:
    """(method, path, body, status, code, fields expected, words the message must contain)"""
    nh, nh_commune, tq = site_id(session, "TQ-NH"), site_id(session, "TQ-NH-NH"), site_id(session, "TQ")
    endpoint = session.scalar(sa.select(Endpoint.id).where(Endpoint.site_id == nh))
    return [
        ("post", "/api/v1/sites", {"code": "TQ-Z", "name": "Z", "level": "district", "colour": "red"},
         422, "validation_error", {"colour": ["Unknown field."]}, "colour"),
        ("post", "/api/v1/bridges", {"name": "MCU-Z", "total_ports": "many"},
         422, "validation_error", {"total_ports": ["Not a valid integer."]}, "total_ports"),
        ("post", "/api/v1/endpoints", {"vendor": "Cisco"}, 422, "validation_error",
         {"site_id": ["Missing data for required field."], "room_name": ["Missing data for required field."]},
         "room_name"),
        ("post", "/api/v1/sites", {"code": "TQ-Z", "name": "Z", "level": "commune", "parent_id": nh,
                                   "contacts": [{"name": "A", "role": "secretary", "email": "not-an-email"}]},
         422, "validation_error", {"contacts.0.email": ["Not a valid email address."]}, "contacts.0.email"),
        ("patch", f"/api/v1/endpoints/{endpoint}", {"status": "retired"}, 422, "validation_error",
         {"status": ["Must be planned or active; retire with POST …/<id>/retire."]}, "retire"),
        ("get", "/api/v1/sites/999999", None, 404, "not_found", {}, "999999"),
        ("patch", "/api/v1/links/999999", {"provider": "Viettel"}, 404, "not_found", {}, "999999"),
        ("post", "/api/v1/links", {"site_a_id": nh, "site_b_id": 999999, "bandwidth_kbps": 1000},
         404, "not_found", {"site_b_id": ["no such site"]}, "999999"),
        ("post", "/api/v1/sites", {"code": "TQ-NH", "name": "Trùng", "level": "district", "parent_id": tq},
         409, "duplicate", {"code": ["already used"]}, "TQ-NH"),
        ("post", "/api/v1/bridges", {"name": "MCU-TQ-01", "total_ports": 10},
         409, "duplicate", {"name": ["already used"]}, "MCU-TQ-01"),
        ("post", "/api/v1/links", {"code": "TQ-NH-TQ", "site_a_id": nh_commune, "site_b_id": tq,
                                   "bandwidth_kbps": 1000}, 409, "duplicate", {"code": ["already used"]}, "TQ-NH-TQ"),
        ("patch", f"/api/v1/sites/{nh}", {"name": "Đổi tên", "parent_id": nh_commune,
                                          "contacts": [{"name": "X", "role": "leader"}]},
         422, "cycle", {"parent_id": ["would make a cycle"]}, "cycle"),
        ("post", "/api/v1/links", {"site_a_id": nh, "site_b_id": nh, "bandwidth_kbps": 1000},
         422, "same_site", {"site_b_id": ["same site as site A"]}, "same site"),
        ("post", "/api/v1/sites", {"code": "TQ-Z", "name": "Z", "level": "district", "parent_id": nh_commune,
                                   "contacts": [{"name": "X", "role": "leader"}]},
         422, "invalid", {"parent_id": ["must be at a higher level"]}, "higher level"),
        ("post", "/api/v1/sites", {"code": "TQ-Z", "name": "Z", "level": "hamlet"},
         422, "invalid", {"level": ["unknown level"]}, "hamlet"),
        ("post", "/api/v1/sites", [{"code": "TQ-Z"}], 422, "validation_error", {}, "Invalid input type"),
        ("get", "/api/v1/sites?colour=red", None, 422, "validation_error", {"colour": ["Unknown field."]}, "colour"),
        ("post", f"/api/v1/sites/{nh}/retire?force=1", None, 422, "validation_error", {"force": ["Unknown field."]},
         "force"),
    ]


def test_each_bad_input_gets_its_status_code_message_and_fields_and_writes_nothing(api, session):
    tech = api(Role.TECHNICIAN)
    before = snapshot(session)
    for method, path, body, status, code, fields, words in _bad_input_cases(session):
        response = getattr(tech, method)(path, json=body) if body is not None else getattr(tech, method)(path)
        case = f"{method.upper()} {path} {body}"
        assert response.status_code == status, (case, response.get_json())
        error = error_of(response)
        assert error["code"] == code, (case, error)
        assert error["fields"] == fields, (case, error)
        assert words in error["message"], (case, error)
        assert snapshot(session) == before, case


def test_a_malformed_json_body_is_a_400_and_writes_nothing(api, session):
    before = snapshot(session)
    response = api(Role.TECHNICIAN).post("/api/v1/sites", data='{"code": "TQ-Z", "name": ',
                                         content_type="application/json")
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["fields"]) == ("invalid_json", {})
    assert "JSON" in error["message"]
    assert snapshot(session) == before


# ---------------------------------------------------------------- who may do what

def test_viewer_reads_the_inventory_but_cannot_change_it(api, session):
    viewer = api(Role.VIEWER)
    assert viewer.get("/api/v1/sites").status_code == 200
    assert viewer.get(f"/api/v1/sites/{site_id(session, 'TQ')}").status_code == 200
    refused = viewer.post("/api/v1/sites", json={"code": "TQ-Z", "name": "Z", "level": "district"})
    assert (refused.status_code, error_of(refused)["code"]) == (403, "forbidden")
    refused = viewer.post("/api/v1/maintenance", json={})
    assert refused.status_code == 403


def test_site_staff_cannot_read_the_inventory(api):
    staff = api(Role.SITE_STAFF)
    for path in ("/api/v1/sites", "/api/v1/endpoints", "/api/v1/links", "/api/v1/levels"):
        response = staff.get(path)
        assert (response.status_code, error_of(response)["code"]) == (403, "forbidden"), path


def test_a_request_without_a_valid_token_gets_401_in_the_json_format(client):
    response = client.get("/api/v1/sites")
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.get("/api/v1/endpoints", headers={"Authorization": "Bearer not-a-token"})
    assert (response.status_code, error_of(response)["code"]) == (401, "unauthorized")


def test_a_logged_in_browser_cannot_change_the_inventory_through_the_api_without_a_token(login):
    browser = login(Role.TECHNICIAN)
    assert browser.get("/api/v1/sites").status_code == 200
    response = browser.post("/api/v1/bridges", json={"name": "MCU-Z", "total_ports": 2})
    assert (response.status_code, error_of(response)["code"]) == (401, "unauthorized")


def test_every_api_operation_carries_the_rule_of_its_kind(app):
    expected = {"GET": "inventory.view", "HEAD": "inventory.view", "POST": "inventory.edit",
                "PATCH": "inventory.edit", "DELETE": "maintenance.edit"}
    from app.sites.api import blueprints

    inventory = {bp.name for bp in blueprints}
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in inventory:
            continue
        for method in rule.methods - {"OPTIONS"}:
            access = rule_for(app.view_functions[rule.endpoint], method)
            assert access is not None, (rule.endpoint, method)
            wanted = expected[method]
            if rule.endpoint.startswith("api_maintenance.") and method not in ("GET", "HEAD"):
                wanted = "maintenance.edit"
            assert (access.kind, access.permission) == ("permission", wanted), (rule.endpoint, method)
            checked += 1
    assert checked >= 40


# ---------------------------------------------------------------- the OpenAPI document

def test_the_openapi_document_describes_every_operation_and_is_valid(client):
    validator = pytest.importorskip("openapi_spec_validator")
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validator.validate(spec)

    operations = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    for resource, key in (("sites", "site_id"), ("endpoints", "endpoint_id"), ("bridges", "bridge_id"),
                          ("hosts", "host_id"), ("links", "link_id")):
        base = f"/api/v1/{resource}"
        assert {(base, "get"), (base, "post"), (f"{base}/{{{key}}}", "get"), (f"{base}/{{{key}}}", "patch"),
                (f"{base}/{{{key}}}/retire", "post")} <= operations, resource
    assert {("/api/v1/maintenance", "get"), ("/api/v1/maintenance", "post"),
            ("/api/v1/maintenance/{window_id}", "get"), ("/api/v1/maintenance/{window_id}", "patch"),
            ("/api/v1/maintenance/{window_id}", "delete"), ("/api/v1/levels", "get")} <= operations

    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"] == "#/components/schemas/ErrorDetail"
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"status", "code", "message", "fields"}
    assert set(detail["properties"]) == {"status", "code", "message", "fields", "clashes"}  # clashes: a booking's
    create_site = spec["paths"]["/api/v1/sites"]["post"]
    assert create_site["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SiteCreate")
    assert {"201", "409", "422"} <= set(create_site["responses"])
    assert spec["components"]["responses"]["CONFLICT"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/Error"
