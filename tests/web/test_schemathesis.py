"""Whatever a client sends to any operation of the API, it never gets a server error, and every answer is one the
published document (/api/v1/openapi.json) describes: its status, its body's schema and its content type.

Schemathesis generates the requests from the document itself (valid ones and ones that break it: ids past the
column, NUL and lone surrogates in text, wrong types, missing fields), as an admin with an API token, over the
demo province and a booked meeting, on SQLite and PostgreSQL. The run is derandomized (the same cases every
time) and bounded per operation to keep the suite fast; bench/schemathesis_run.py runs many more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.auth.models import Role

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# Cases per operation and per mode (valid, then invalid data): about 1,000 requests per backend, some 30 s.
EXAMPLES = 7
SEED = 12
# Operations left out of the run, with the reason. None: every operation of the document is exercised.
EXCLUDED: dict[str, str] = {}


@pytest.fixture
def known_ids(api) -> dict[str, int]:
    """Ids that exist, by the name of the path parameter: the demo province's sites and equipment, and a meeting
    of three sites booked here (its occurrence and participations), so that a run reaches the views' own work,
    not only their 404."""
    admin = api(Role.ADMIN)
    sites = admin.get("/api/v1/sites?page_size=3").get_json()["items"]
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=20)
    response = admin.post("/api/v1/meetings", json={
        "title": "Họp giao ban", "site_ids": [site["id"] for site in sites],
        "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat()})
    assert response.status_code == 201, response.get_json()
    meeting = response.get_json()
    occurrence = meeting["occurrences"][0]
    ids = {"meeting_id": meeting["id"], "occurrence_id": occurrence["id"],
           "participation_id": occurrence["participations"][0]["id"]}
    for name, path in (("site_id", "sites"), ("endpoint_id", "endpoints"), ("bridge_id", "bridges"),
                       ("host_id", "hosts"), ("link_id", "links"), ("template_id", "job-templates")):
        listed = admin.get(f"/api/v1/{path}").get_json()
        items = listed["items"] if isinstance(listed, dict) else listed
        if items:
            ids[name] = items[0]["id"]
    return ids


def _run(operation: Any, mode: GenerationMode, send: Any, **fixed: Any) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis.seed(SEED)
    def each(case: schemathesis.Case) -> None:
        send(case)

    each()


def test_no_generated_request_to_any_operation_gets_a_server_error_or_an_answer_the_document_does_not_describe(
        app, known_ids):
    # A 500 is an answer to check (and count), not an exception that ends the operation's cases at the first one.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    headers = {"Authorization": f"Bearer {app.config['TEST_TOKENS'][Role.ADMIN]}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: dict[str, str] = {}
    sent = 0

    def send(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.setdefault(f"{case.operation.label}: {failure.title} ({response.status_code})",
                                    f"{case.as_curl_command(headers=headers)}\n    {response.text[:400]}")

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 60, "the document lists the API's operations"
    try:
        for operation in operations:
            if operation.label in EXCLUDED:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(operation, mode, send)
            # and valid requests about rows that exist, where the address names them
            names = {parameter.name for parameter in operation.path_parameters}
            if names and names <= set(known_ids):
                _run(operation, GenerationMode.POSITIVE, send,
                     path_parameters={name: known_ids[name] for name in names})
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None

    assert sent > 500
    assert not failures, "\n".join(f"{kind}\n    {example}" for kind, example in failures.items())
