"""bench/schemathesis_run: the JSON API under schemathesis for longer than the suite's run, on both backends.

The same checks as tests/web/test_schemathesis.py (no 5xx, every status and body as the OpenAPI document says,
the content type the document names), with more examples per operation, positive and negative data. Each
backend gets a migrated database of its own, the demo province, a meeting, and an admin's API token. Prints the
requests made and the failures per kind, per backend; zero 5xx is expected.

    python bench/schemathesis_run.py [--backend sqlite|postgresql|both] [--examples 100] [--seed 12]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import hypothesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.auth.models import Role
from app.auth.service import create_token, create_user
from app.db import commit_scope
from app.migrate import upgrade

PG_ADMIN = os.environ.get("VCOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


def database(backend: str, tmp: Path) -> tuple[str, Any]:
    """A new database's URL and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'fuzz.db'}", lambda: None
    name = f"vcops_fuzz_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def seeded_app(url: str, tmp: Path) -> tuple[Any, str, dict[str, int]]:
    """The app on `url` with the demo province, one meeting and an admin; returns the app, the admin's token and
    ids that exist, by the name of the path parameter."""
    upgrade(url)
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp / "instance"), "DATABASE_URL": url,
                      "SECRET_KEY": "fuzz", "RATELIMIT_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://",
                      "REDIS_URL": "", "EMBEDDED_WORKER": False, "DEFAULT_LANGUAGE": "en"})
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a 500 is an answer to count, not an exception that stops the run
    from app.sites.demo import seed

    with app.app_context(), commit_scope() as session:
        seed(session)
        admin = create_user(session, "fuzz-admin@example.com", Role.ADMIN, "correct horse battery", name="fuzz")
        token = create_token(session, admin, "fuzz")[1]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    sites = client.get("/api/v1/sites?page_size=3", headers=headers).get_json()["items"]
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=20)
    booked = client.post("/api/v1/meetings", headers=headers, json={
        "title": "Họp giao ban", "site_ids": [site["id"] for site in sites],
        "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat()})
    assert booked.status_code == 201, booked.get_json()
    occurrence = booked.get_json()["occurrences"][0]
    ids = {"meeting_id": booked.get_json()["id"], "occurrence_id": occurrence["id"],
           "participation_id": occurrence["participations"][0]["id"]}
    for name, path in (("site_id", "sites"), ("endpoint_id", "endpoints"), ("bridge_id", "bridges"),
                       ("host_id", "hosts"), ("link_id", "links"), ("template_id", "job-templates")):
        listed = client.get(f"/api/v1/{path}", headers=headers).get_json()
        items = listed["items"] if isinstance(listed, dict) else listed
        if items:
            ids[name] = items[0]["id"]
    return app, token, ids


def cases(operation: Any, mode: GenerationMode, examples: int, seed: int, send: Any, **fixed: Any) -> None:
    """Hand `examples` generated cases of `operation` to `send`, the same ones on every run (derandomized)."""

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
              verbosity=hypothesis.Verbosity.quiet)
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis.seed(seed)
    def each(case: schemathesis.Case) -> None:
        send(case)

    each()


def fuzz(app: Any, token: str, ids: dict[str, int], examples: int,
         seed: int) -> tuple[collections.Counter[int], collections.Counter[str], list[str]]:
    """Every operation of the document, `examples` cases of each mode (and valid ones about rows that exist, where
    the address names them); the responses by status, failures by kind, and one example of each kind."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: collections.Counter[int] = collections.Counter()
    failures: collections.Counter[str] = collections.Counter()
    examples_of: dict[str, str] = {}

    def send(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                kind = f"{case.operation.label}: {failure.title} ({response.status_code})"
                failures[kind] += 1
                examples_of.setdefault(kind, f"{kind}\n    {case.as_curl_command(headers=headers)}\n    "
                                             f"{response.text[:300]}")

    for result in schema.get_all_operations():
        operation = result.ok()
        names = {parameter.name for parameter in operation.path_parameters}
        runs: list[tuple[GenerationMode, dict[str, Any]]] = [(GenerationMode.POSITIVE, {}),
                                                             (GenerationMode.NEGATIVE, {})]
        if names and names <= set(ids):
            runs.append((GenerationMode.POSITIVE, {"path_parameters": {name: ids[name] for name in names}}))
        for mode, fixed in runs:
            try:
                cases(operation, mode, examples, seed, send, **fixed)
            except Exception as exc:  # an exception inside the app reaches here: count it, go on
                kind = f"{operation.label}: {type(exc).__name__}"
                failures[kind] += 1
                examples_of.setdefault(kind, f"{kind}: {exc!r}")
    return statuses, failures, list(examples_of.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--examples", type=int, default=100, help="cases per operation and mode")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--verbose", action="store_true", help="print a reproduction of each kind of failure")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.ERROR)  # the app logs each 500's traceback: counted below instead
    print(f"{dt.date.today()} {platform.machine()}, {os.cpu_count()} cores; {args.examples} examples per "
          f"operation and mode, seed {args.seed}")
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = database(backend, Path(tmp))
            try:
                app, token, ids = seeded_app(url, Path(tmp))
                started = time.monotonic()
                statuses, failures, examples = fuzz(app, token, ids, args.examples, args.seed)
                elapsed = time.monotonic() - started
                app.extensions["vcops_engine"].dispose()
            finally:
                drop()
        server_errors = sum(n for status, n in statuses.items() if status >= 500)
        print(f"{backend}: {statuses.total()} requests in {elapsed:.0f} s, {server_errors} 5xx, "
              f"{sum(failures.values())} failures in {len(failures)} kinds; by status: "
              + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())))
        for kind, n in failures.most_common():
            print(f"  {n:6d}  {kind}")
        if args.verbose:
            for example in examples:
                print(example)


if __name__ == "__main__":
    main()
