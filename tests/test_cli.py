"""The `vcops` command as an administrator uses it: schema, demo data, users and API tokens."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from app import create_app
from app.auth.models import ApiToken, User
from app.cli import main
from app.config import SETTINGS
from app.db import db
from app.sites.models import Bridge, Endpoint, HostKind, Level, Link, ManagedHost, Site

PASSWORD = "a long enough password"
ADMIN_LOGIN = re.compile(r"demo admin: (\S+)\s+password: (\S+)")


@pytest.fixture
def cli_env(backend, databases, tmp_path, monkeypatch) -> str:
    """VCOPS_* pointing at a new empty database (of the backend tests/conftest.py picks: SQLite, the commands do
    not depend on the database) and a tmp instance folder; returns the database URL."""
    for setting in SETTINGS:
        monkeypatch.delenv(f"VCOPS_{setting.key}", raising=False)
    url = databases.new(backend)
    monkeypatch.setenv("VCOPS_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("VCOPS_DATABASE_URL", url)
    return url


@pytest.fixture
def vcops(cli_env) -> Iterator[Callable[..., Result]]:
    """vcops(*args, input=None): run the command in-process as `vcops ARGS` would."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        _dispose()
        return result

    yield run
    _dispose()


def _dispose() -> None:
    # Each command builds its own app and engine; close its connections so test databases can be dropped.
    db.session.remove()
    if db.engine is not None:
        db.engine.dispose()


@pytest.fixture
def query(cli_env) -> Callable[[Any], Any]:
    """Run a read against the command's database and return plain results."""

    def run(statement: Any) -> Any:
        engine = sa.create_engine(cli_env)
        try:
            with engine.connect() as conn:
                return conn.execute(statement).all()
        finally:
            engine.dispose()

    return run


def _count(query: Callable[[Any], Any], model: Any, *where: Any) -> int:
    return query(sa.select(sa.func.count()).select_from(model).where(*where))[0][0]


@pytest.fixture
def migrated(vcops) -> Callable[..., Result]:
    result = vcops("db", "upgrade")
    assert result.exit_code == 0, result.output
    return vcops


def test_db_upgrade_creates_the_schema_in_an_empty_database(vcops, cli_env):
    result = vcops("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    engine = sa.create_engine(cli_env)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "levels", "sites", "endpoints", "bridges", "links", "users", "api_tokens"} <= tables
    assert vcops("db", "upgrade").exit_code == 0  # a second run has nothing to do and says so


def test_seed_demo_loads_the_province_and_prints_the_admin_login_once(migrated, query):
    result = migrated("seed-demo", "--if-empty")
    assert result.exit_code == 0, result.output
    login = ADMIN_LOGIN.search(result.output)
    assert login, result.output

    sites_by_level = dict(query(sa.select(Level.code, sa.func.count(Site.id)).join(Site.level).group_by(Level.code)))
    assert sites_by_level == {"province": 1, "district": 7, "commune": 14}
    assert _count(query, Site, Site.is_sample.is_(True)) == 14
    province = query(sa.select(Site.id).join(Site.level).where(Level.code == "province"))[0][0]
    assert _count(query, Endpoint, Endpoint.site_id == province) == 2
    sites_without_endpoint = query(sa.select(Site.code).where(~sa.exists().where(Endpoint.site_id == Site.id)))
    assert sites_without_endpoint == []
    assert _count(query, Bridge) == 1
    districts_without_router = query(
        sa.select(Site.code).join(Site.level).where(Level.code == "district", ~sa.exists().where(
            ManagedHost.site_id == Site.id, ManagedHost.kind == HostKind.LINK_ROUTER)))
    assert districts_without_router == []
    links = set(query(sa.select(Link.site_a_id, Link.site_b_id)))
    parents = set(query(sa.select(Site.id, Site.parent_id).where(Site.parent_id.is_not(None))))
    assert links == parents  # one link from each site to its parent, and no other

    with create_app().app_context():
        from app.auth.service import authenticate

        assert authenticate(db.session, login.group(1), login.group(2)) is not None
    _dispose()

    again = migrated("seed-demo", "--if-empty")
    assert again.exit_code == 0, again.output
    assert "password" not in again.output
    assert _count(query, Site) == 22


def test_seed_demo_two_level_puts_communes_directly_under_the_province(migrated, query):
    result = migrated("seed-demo", "--layout", "two-level")
    assert result.exit_code == 0, result.output
    levels = [code for (code,) in query(sa.select(Level.code).order_by(Level.rank))]
    assert levels == ["province", "commune"]
    province = query(sa.select(Site.id).join(Site.level).where(Level.code == "province"))
    assert len(province) == 1
    communes = query(sa.select(Site.parent_id).join(Site.level).where(Level.code == "commune"))
    assert len(communes) == 14
    assert {parent for (parent,) in communes} == {province[0][0]}
    assert _count(query, Site) == 15


def test_user_add_reads_the_password_from_stdin_and_the_user_can_log_in(migrated, query):
    result = migrated("user", "add", "Kythuat@Example.com", "--role", "technician", "--name", "Kỹ thuật",
                      input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "kythuat@example.com (technician) created" in result.output
    assert PASSWORD not in result.output

    app = create_app({"WTF_CSRF_ENABLED": False})
    response = app.test_client().post("/login", data={"email": "kythuat@example.com", "password": PASSWORD})
    assert response.status_code == 302


def test_user_add_with_an_unknown_role_says_which_roles_exist_and_creates_nothing(migrated, query):
    result = migrated("user", "add", "someone@example.com", "--role", "wizard", input=PASSWORD + "\n")
    assert result.exit_code != 0
    assert "Invalid value for '--role'" in result.output
    assert "technician" in result.output
    assert _count(query, User) == 0


def test_user_add_with_a_short_password_says_so_and_creates_nothing(migrated, query):
    result = migrated("user", "add", "someone@example.com", "--role", "viewer", input="short\n")
    assert result.exit_code == 1
    assert "at least 10 characters" in result.output
    assert "Traceback" not in result.output
    assert _count(query, User) == 0


def test_user_add_refuses_a_duplicate_email(migrated, query):
    assert migrated("user", "add", "a@example.com", "--role", "viewer", input=PASSWORD + "\n").exit_code == 0
    result = migrated("user", "add", "A@example.com", "--role", "admin", input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert query(sa.select(User.role)) == [("viewer",)]


def test_an_api_token_works_once_created_and_is_refused_once_revoked(migrated, query):
    assert migrated("user", "add", "tech@example.com", "--role", "technician", input=PASSWORD + "\n").exit_code == 0
    created = migrated("token", "create", "tech@example.com")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()  # the secret alone on stdout, for scripts; the note goes to stderr
    assert len(secret.splitlines()) == 1 and len(secret) > 30
    assert "shown only now" in created.stderr
    assert secret not in str(query(sa.select(ApiToken.token_hash)))  # stored hashed, never as given
    listed = migrated("token", "list", "tech@example.com")
    [line] = listed.stdout.splitlines()
    token_id, name, prefix, state = line.split("\t")
    assert (name, state) == ("cli", "active") and secret.startswith(prefix.rstrip("…"))
    assert secret not in listed.output

    app = create_app()
    headers = {"Authorization": f"Bearer {secret}"}
    assert app.test_client().get("/api/v1/levels", headers=headers).status_code == 200
    _dispose()

    revoked = migrated("token", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in migrated("token", "list", "tech@example.com").stdout
    app = create_app()
    response = app.test_client().get("/api/v1/levels", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_token_create_for_an_unknown_user_says_so(migrated):
    result = migrated("token", "create", "nobody@example.com")
    assert result.exit_code == 1
    assert "No user with email nobody@example.com" in result.output


def test_serve_restarts_a_worker_that_keeps_failing_ever_more_slowly_and_stops_with_serve(caplog, capsys):
    """The supervisor `vcops serve` puts around its task-queue worker, on a worker that fails at once."""
    import logging
    import sys
    import time

    from app.cli import WorkerSupervisor

    supervisor = WorkerSupervisor([sys.executable, "-c", "raise SystemExit(3)"], {}, max_delay=2)
    with caplog.at_level(logging.WARNING, logger="app.cli"):
        supervisor.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("restarting" in r.getMessage() for r in caplog.records) < 4:
            time.sleep(0.1)
        supervisor.stop()
    delays = [re.search(r"restarting it in (\d+) s", r.getMessage()).group(1) for r in caplog.records
              if "restarting" in r.getMessage()]
    assert delays[:4] == ["1", "2", "2", "2"]  # doubled each time, up to the ceiling
    assert all("(exit status 3)" in r.getMessage() for r in caplog.records if "restarting" in r.getMessage())
    started = capsys.readouterr().out.count("task-queue worker started")
    time.sleep(2.5)  # longer than the ceiling: a stopped supervisor starts nothing more
    assert capsys.readouterr().out.count("task-queue worker started") == 0
    assert started >= 4
