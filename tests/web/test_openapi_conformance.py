"""What the API answers is what its published document (/api/v1/openapi.json) says: a refused booking's 409
carries its clashes where ErrorDetail documents them (words in `fields`, objects in `clashes`), and a PATCH
without the body the document requires is refused in the one error format, naming the body.

Each body is checked against the schema the document gives for that operation and status."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.db import db
from app.sites.models import Site

validators = pytest.importorskip("openapi_schema_validator")
spec_validator = pytest.importorskip("openapi_spec_validator")
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def document(client) -> dict[str, Any]:
    spec = client.get("/api/v1/openapi.json").get_json()
    spec_validator.validate(spec)
    return spec


@pytest.fixture
def ids(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(Site.code, Site.id)).all())


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    """The node with every $ref replaced by what it names (the document's schemas have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(spec, target)
        return {key: _resolve(spec, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, value) for value in node]
    return node


def conforms(spec: dict[str, Any], path: str, method: str, response: Any) -> None:
    """Fail unless the response's status is documented for the operation and its body matches the schema."""
    operation = spec["paths"][path][method]
    documented = _resolve(spec, operation["responses"].get(str(response.status_code)))
    assert documented is not None, f"{method.upper()} {path} does not document {response.status_code}"
    schema = documented["content"]["application/json"]["schema"]
    # Every property the document lists and no other: a field the document does not name is a drift too.
    validators.validate(response.get_json(), _closed(schema), cls=validators.OAS30Validator)


def _closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(value) for value in schema]
    return schema


def _booking(ids: dict[str, int], day: dt.date, title: str) -> dict[str, Any]:
    start = dt.datetime.combine(day, dt.time(8, 0), tzinfo=LOCAL)
    return {"title": title, "site_ids": [ids["TQ-NH"]], "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(hours=2)).isoformat(), "recurrence": {"frequency": "daily", "count": 2}}


def test_a_refused_booking_answers_409_as_the_document_says_with_its_clashes_in_words_and_as_objects(
        api, ids, document):
    secretariat = api(Role.SECRETARIAT)
    day = dt.date.today() + dt.timedelta(days=9)
    held = secretariat.post("/api/v1/meetings", json={**_booking(ids, day, "Họp về phòng chống lũ"),
                                                      "recurrence": None})
    assert held.status_code == 201, held.get_json()

    refused = secretariat.post("/api/v1/meetings", json=_booking(ids, day, "Họp chuyển đổi số"))

    assert refused.status_code == 409
    conforms(document, "/api/v1/meetings", "post", refused)
    error = refused.get_json()["error"]
    assert error["code"] == "clash"
    assert all(isinstance(reason, str) for reasons in error["fields"].values() for reason in reasons)
    [occurrence] = error["clashes"]  # only the first day clashes
    assert occurrence["clashes"][0]["meeting_id"] == held.get_json()["id"]
    assert occurrence["clashes"][0]["kind"] == "room"
    assert error["fields"]["clashes"] == [f"{day:%d/%m/%Y} 08:00: {occurrence['clashes'][0]['message']}"]


def test_a_patch_without_a_body_is_refused_naming_the_body_as_the_document_requires_one(api, ids, document):
    tech = api(Role.TECHNICIAN)
    path = "/api/v1/sites/{site_id}"
    assert document["paths"][path]["patch"]["requestBody"]["required"] is True

    response = tech.patch(f"/api/v1/sites/{ids['TQ-YS']}")

    assert response.status_code == 422, response.get_json()
    conforms(document, path, "patch", response)
    error = response.get_json()["error"]
    assert list(error["fields"]) == ["body"] and "body" in error["message"]
    # An empty object is a body: it changes nothing, and says so with 200.
    unchanged = tech.patch(f"/api/v1/sites/{ids['TQ-YS']}", json={})
    assert unchanged.status_code == 200
    conforms(document, path, "patch", unchanged)


def test_every_patch_of_the_api_refuses_a_missing_body(api, ids, document, app):
    tech = api(Role.TECHNICIAN)
    with app.app_context():
        from app.sites.models import Bridge, Link

        bridge_id = db.session.scalar(sa.select(Bridge.id).limit(1))
        link_id = db.session.scalar(sa.select(Link.id).limit(1))
    for path, concrete in (("/api/v1/bridges/{bridge_id}", f"/api/v1/bridges/{bridge_id}"),
                           ("/api/v1/links/{link_id}", f"/api/v1/links/{link_id}")):
        assert document["paths"][path]["patch"]["requestBody"]["required"] is True
        response = tech.patch(concrete)
        assert response.status_code == 422 and list(response.get_json()["error"]["fields"]) == ["body"], concrete
        conforms(document, path, "patch", response)


def test_posts_that_take_no_body_are_documented_so(document):
    for path in ("/api/v1/meetings/{meeting_id}/cancel", "/api/v1/meetings/{meeting_id}/schedule"):
        assert document["paths"][path]["post"]["requestBody"].get("required") is not True
