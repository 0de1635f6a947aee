"""Shared fixtures: the app on SQLite (and on PostgreSQL where the database matters), users of every role,
real-commit apps.

Each test runs inside an outer transaction that is rolled back afterwards (requests commit into a
savepoint). Tests of the queue and of concurrency use `fresh_app`, which commits for real into a
database of its own.

Which tests run on PostgreSQL too is decided here, in BOTH_BACKENDS, and nowhere else: everything else runs on
SQLite only. The suite runs in parallel (pytest-xdist, setup.cfg): every database, instance folder, queue
name, port and lab address a test makes is its own, whichever worker runs it.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import g, request_started

import app.auth.service as auth_service
from app import create_app
from app.auth.models import Role
from app.auth.service import create_token, create_user
from app.db import commit_scope, db
from app.migrate import upgrade
from app.queue.tasks import configure_queue

IN_CI = os.environ.get("CI", "").lower() == "true"

# Argon2 at its production cost makes every login in the suite take a tenth of a second or more; the tests
# check how passwords are used, not the cost, so they hash cheaply.
auth_service._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
auth_service._DUMMY_HASH = auth_service._hasher.hash("not a password of anyone")
PG_ADMIN_URL = os.environ.get("VCOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery"
BACKENDS = ["sqlite", "postgresql"]
# "gw0", "gw1", ... under pytest-xdist, "main" without it: in the names of what a worker makes, to tell them apart.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

# ------------------------------------------------------------------ which tests run on PostgreSQL too

# The tests whose behaviour depends on the database: a test module, or one test (module::name, without the
# parameters), with the reason. These run on SQLite and on PostgreSQL (through the `backend` fixture, or their
# own parametrize of `backend`); every other test runs on SQLite only. A test that names PostgreSQL in an
# explicit `parametrize("backend", ...)` must be listed here (else its PostgreSQL case is deselected, with a
# warning); tests that make a PostgreSQL app inside (fresh_app("postgresql")) are listed for the `postgres`
# marker. Add a test here when it checks SQL that differs by dialect, row or advisory locks, concurrent
# sessions, or the schema. VCOPS_TEST_BACKENDS=all runs every test on both, as the suite did before (slower).
ALL_ON_BOTH = os.environ.get("VCOPS_TEST_BACKENDS", "").lower() == "all"
BOTH_BACKENDS: dict[str, str] = {
    # the schema
    "tests/test_migrations.py":
        "migrations run batch mode on SQLite and plain ALTERs on PostgreSQL; each must give the models' schema",
    # meetings: booking.py takes advisory locks, inserts with unnest and matches ids with = ANY(array) on PostgreSQL
    "tests/meetings/test_concurrency.py":
        "simultaneous bookings: PostgreSQL advisory locks vs SQLite's single writer",
    "tests/meetings/test_api.py::test_twenty_simultaneous_posts_through_http_give_one_booking_and_nineteen_refusals":
        "PostgreSQL only (inside the test): concurrent HTTP bookings under advisory locks",
    "tests/meetings/test_booking.py":
        "the clash checks and holdings: ANY(array) queries, unnest INSERT ... SELECT and advisory locks on PostgreSQL",
    "tests/meetings/test_availability.py":
        "availability reads the holdings with = ANY(array) on PostgreSQL",
    "tests/meetings/test_pages.py::test_secretariat_books_through_the_form_and_sees_the_meeting_in_the_list_and_calendar":
        "the list's search is lower(...) LIKE, whose case folding differs (SQLite folds ASCII only)",
    # row locks (SELECT ... FOR UPDATE is a no-op on SQLite) and case-insensitive matching
    "tests/auth/test_users.py::test_last_active_admin_cannot_be_demoted_or_deactivated":
        "the last-admin check locks the other admins' rows FOR UPDATE",
    "tests/auth/test_users.py::test_admin_may_demote_another_admin_while_one_remains":
        "the last-admin check locks the other admins' rows FOR UPDATE",
    "tests/auth/test_users.py::test_admin_finds_users_by_search_and_role":
        "ILIKE is native on PostgreSQL, emulated with lower() on SQLite",
    "tests/auth/test_audit.py::test_audit_filters_by_who":
        "ILIKE is native on PostgreSQL, emulated with lower() on SQLite",
    "tests/auth/test_audit.py::test_audit_dates_are_whole_days_in_local_time":
        "day bounds compared as timestamps: the UTC datetime type is stored differently per dialect (app/db.py)",
    "tests/sites/test_api.py::test_site_lists_filter_by_level_status_sample_and_text_and_come_in_pages":
        "text search with ILIKE on Vietnamese names (native on PostgreSQL, lower() LIKE on SQLite)",
    "tests/sites/test_api.py::test_technician_adds_equipment_and_a_link_and_finds_them_by_subtree_kind_and_medium":
        "equipment search with ILIKE (native on PostgreSQL, lower() LIKE on SQLite)",
    "tests/sites/test_pages.py::test_site_list_searches_filters_and_pages_keeping_the_filters":
        "case-insensitive search with ILIKE on Vietnamese names, per dialect",
    "tests/sites/test_pages.py::test_maintenance_typed_at_eight_local_is_stored_at_one_utc_and_shown_at_eight":
        "the UTC datetime type (app/db.py) stores and reads timestamps differently per dialect",
    "tests/agenda/test_agenda.py::test_secretariat_builds_publishes_and_republishes_an_agenda":
        "agenda changes lock the meeting's row FOR UPDATE",
    "tests/provisioning/test_vault.py::test_rotation_re_encrypts_under_the_newest_key_and_old_keys_open_secrets_until_then":
        "rotation locks every credential FOR UPDATE",
    "tests/provisioning/test_vault.py::test_the_rotate_command_re_encrypts_every_secret":
        "rotation locks every credential FOR UPDATE",
    "tests/provisioning/test_state_machine.py":
        "job transitions read the job FOR UPDATE with populate_existing",
    # concurrent workers and sessions that do not wait for each other on PostgreSQL
    "tests/provisioning/test_schedules.py::test_two_workers_at_the_same_due_time_launch_the_schedule_once":
        "two workers racing for one due schedule: row locks on PostgreSQL, the single writer on SQLite",
    "tests/provisioning/test_lost_claims.py":
        "claims of hosts by concurrent jobs under row locks",
    "tests/provisioning/test_runs.py::test_a_launched_job_runs_on_the_worker_with_its_events_in_order_and_counts_per_host":
        "a worker thread writes the job's events while the test reads them: row locks and visibility",
    "tests/queue/test_outbox.py::test_work_asked_for_inside_a_savepoint_waits_for_the_outer_commit":
        "PostgreSQL only (inside the test): a worker that does not wait for the writer must not run before the commit",
    "tests/devices/test_quick_actions.py::test_a_quick_action_goes_through_the_outbox_and_the_queue_to_the_endpoint":
        "a queue worker delivers the outbox row FOR UPDATE while the request's transaction commits",
    "tests/calendar/test_worker_stops.py":
        "worker processes racing on one database: the outbox claimed FOR UPDATE, a delivery handed over by a "
        "conditional UPDATE",
    "tests/queue/test_worker_outage.py":
        "a worker retrying a refused PostgreSQL connection until the server answers; what an outage is differs by "
        "driver",
    # what the database refuses differs by dialect: PostgreSQL's integer and NUL-free text, SQLite's 64-bit INTEGER
    "tests/web/test_schemathesis.py":
        "generated requests (ids past the integer column, NUL and lone surrogates in text) must get no 5xx; the "
        "database refuses different values on each backend",
    "tests/web/test_client_mistakes.py":
        "ids past PostgreSQL's integer column and NUL in text are refused by PostgreSQL, not by SQLite: each "
        "must be the client's 4xx on both",
    # monitoring: agent/store.py writes probe results with each dialect's INSERT ... ON CONFLICT
    "tests/monitoring/test_probe_agent.py":
        "the probe results are upserted with the dialect's own INSERT ... ON CONFLICT",
    "tests/monitoring/test_endpoint_probe.py::test_a_registered_endpoint_is_reported_reachable_and_registered":
        "the probe results are upserted with the dialect's own INSERT ... ON CONFLICT",
    "tests/monitoring/test_rollups.py":
        "the rollups add to their buckets with the dialect's own INSERT ... ON CONFLICT DO UPDATE, and are pruned "
        "with a row-value IN",
}


def _listed(nodeid: str) -> bool:
    if ALL_ON_BOTH:
        return True
    path, _, rest = nodeid.partition("::")
    name = rest.split("[", 1)[0]
    return path in BOTH_BACKENDS or f"{path}::{name}" in BOTH_BACKENDS


def _parametrizes_backend(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "backend" in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The `backend` fixture's parameters: both for the tests in BOTH_BACKENDS, SQLite for the others (a test
    that parametrizes `backend` itself keeps its own)."""
    if "backend" in metafunc.fixturenames and not _parametrizes_backend(metafunc):
        backends = BACKENDS if _listed(metafunc.definition.nodeid) else ["sqlite"]
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what runs on PostgreSQL (`-m postgres`); drop an explicit PostgreSQL case of a test not listed."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        # A fixture or parametrize of its own (not `backend`) may pick the database too: any "postgresql" counts.
        on_postgres = callspec is not None and "postgresql" in callspec.params.values()
        if on_postgres and not _listed(item.nodeid):
            dropped.append(item)
            continue
        if on_postgres or (callspec is None and not ALL_ON_BOTH and _listed(item.nodeid)):
            item.add_marker(pytest.mark.postgres)
        kept.append(item)
    # An entry naming a test that is gone (renamed, moved) would silently stop guarding anything: say so (when
    # whole files were collected: `path::test` arguments collect part of one).
    collected = {item.nodeid.partition("::")[0] for item in items}
    names = {item.nodeid.split("[", 1)[0] for item in items}
    stale = [key for key in BOTH_BACKENDS if "::" not in key and not (config.rootpath / key).exists()]
    if not any("::" in arg for arg in config.args):
        stale += [key for key in BOTH_BACKENDS
                  if "::" in key and key.partition("::")[0] in collected and key not in names]
    if stale:
        warnings.warn(f"BOTH_BACKENDS (tests/conftest.py) names tests that do not exist: {', '.join(stale)}",
                      stacklevel=1)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        files = sorted({item.nodeid.partition("::")[0] for item in dropped})
        warnings.warn(f"{len(dropped)} PostgreSQL cases of tests not in BOTH_BACKENDS (tests/conftest.py) "
                      f"deselected, in {', '.join(files)}: list them there if the database matters, else let "
                      f"them use the `backend` fixture", stacklevel=1)


# ------------------------------------------------------------------ CI: a skip is a failure

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        # A real component missing in CI means a broken install step, not a reason to pass.
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


# ------------------------------------------------------------------ databases

def _postgres_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"


class Databases:
    """Creates throw-away databases (a SQLite file or a PostgreSQL database) and drops them at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pg_databases: list[str] = []

    def new(self, backend: str) -> str:
        name = f"vcops_test_{WORKER}_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        reason = _postgres_available()
        if reason:
            pytest.skip(reason)
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.pg_databases.append(name)
        return re.sub(r"/[^/]*$", f"/{name}", PG_ADMIN_URL)

    def drop_all(self) -> None:
        if not self.pg_databases:
            return
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.pg_databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


def app_config(tmp: Path, database_url: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "WTF_CSRF_ENABLED": False,
        "LOGIN_RATE_LIMIT": "1000 per minute",
        "LOGIN_ACCOUNT_RATE_LIMIT": "1000 per minute",
        # The fixtures' users log in with a password alone; tests/auth/test_two_factor.py turns the requirement
        # on (the shipped default, admin and technician) where it is what the test is about.
        "TWO_FACTOR_REQUIRED_ROLES": "",
        "RATELIMIT_STORAGE_URI": "memory://",
        "REDIS_URL": "",
        "EMBEDDED_WORKER": False,
        # Tests read messages in English (the msgids); tests of the Vietnamese default set "vi" themselves.
        "DEFAULT_LANGUAGE": "en",
    }
    config.update(overrides)
    return config


# ------------------------------------------------------------------ the shared, rolled-back app

@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql", as pytest_generate_tests (above) parametrizes it."""
    return request.param


@pytest.fixture(scope="session")
def base_app(backend: str, databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An app on a migrated database holding the demo province and one user (and token) per role."""
    url = databases.new(backend)
    upgrade(url)
    app = create_app(app_config(tmp_path_factory.mktemp(f"instance-{backend}"), url))
    from app.sites.demo import seed

    tokens = {}
    with app.app_context(), commit_scope() as session:
        seed(session)
        from app.sites.models import Site

        site = session.scalar(sa.select(Site).where(Site.code == "TQ-TP-MX"))
        for role in Role:
            user = create_user(session, f"{role.value}@example.com", role, PASSWORD,
                               name=role.value, site_code=site.code if role is Role.SITE_STAFF else None)
            tokens[role] = create_token(session, user, "tests")[1]
    app.config["TEST_TOKENS"] = tokens
    return app


@pytest.fixture
def app(base_app: Any) -> Iterator[Any]:
    engine = base_app.extensions["vcops_engine"]
    connection = engine.connect()
    outer = connection.begin()
    db.bind_to(connection, join_transaction_mode="create_savepoint")
    configure_queue(base_app)
    from app.extensions import limiter

    with base_app.app_context():
        limiter.reset()

    def forget_user(_sender: Any, **_extra: Any) -> None:
        # Requests made while the `session` fixture's app context is pushed share its `g`, where Flask-Login
        # keeps the user it loaded: forget it, so each request finds its own user (or none).
        for name in ("_login_user", "token_auth", "_flask_babel"):  # the user, and the language chosen for them
            g.pop(name, None)

    request_started.connect(forget_user, base_app)
    try:
        yield base_app
    finally:
        request_started.disconnect(forget_user, base_app)
        db.session.remove()
        outer.rollback()
        connection.close()
        db.bind_to(engine)


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    with app.app_context():
        yield db.session()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def login(client: Any) -> Callable[[Role | str], Any]:
    """Log the test client in as the user of a role."""

    def do(role: Role | str) -> Any:
        response = client.post("/login", data={"email": f"{Role(role).value}@example.com", "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return do


@pytest.fixture
def api(app: Any) -> Callable[[Role | str], Any]:
    """A JSON API client authenticated with the bearer token of a role."""

    class ApiClient:
        def __init__(self, token: str) -> None:
            self.client = app.test_client()
            self.headers = {"Authorization": f"Bearer {token}"}

        def __getattr__(self, method: str) -> Callable[..., Any]:
            def call(path: str, **kwargs: Any) -> Any:
                headers = {**self.headers, **kwargs.pop("headers", {})}
                return getattr(self.client, method)(path, headers=headers, **kwargs)

            return call

    return lambda role: ApiClient(app.config["TEST_TOKENS"][Role(role)])


# ------------------------------------------------------------------ apps that commit for real

@pytest.fixture
def fresh_app(databases: Databases, tmp_path: Path) -> Callable[..., Any]:
    """make(backend, **config): an app on a new, migrated, empty database of its own."""
    made: list[Any] = []

    def make(backend: str = "sqlite", **overrides: Any) -> Any:
        url = databases.new(backend)
        upgrade(url)
        instance = tmp_path / f"instance-{len(made)}"
        app = create_app(app_config(instance, url, **overrides))
        made.append(app)
        return app

    yield make
    db.session.remove()
    for app in made:
        app.extensions["vcops_engine"].dispose()
