"""The `vcops` command: serve, worker, db upgrade, seed-demo, user add, token create/revoke."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale

from app.errors import DomainError


@contextmanager
def _app_scope(actor: str = "cli") -> Iterator[Flask]:
    from app import create_app
    from app.auth.audit import Actor, reset_actor, set_actor

    try:
        app = create_app()
    except RuntimeError as exc:  # a setting that cannot be read: say which, without a traceback
        raise click.ClickException(str(exc)) from exc
    # The console speaks English, so the services' refusals it passes on are in English too (not in the
    # interface's default language).
    with app.app_context(), force_locale("en"):
        token = set_actor(Actor(None, actor))
        try:
            yield app
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        finally:
            reset_actor(token)


@click.group()
def main() -> None:
    """VCOps: meetings, equipment and links of a province's video-conference network."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations."""
    from app.config import load_config
    from app.migrate import upgrade

    upgrade(load_config()["DATABASE_URL"], revision)
    click.echo("database is up to date")


@db.command("revision")
@click.argument("message")
def db_revision(message: str) -> None:
    """(developers) Write a migration for what the models changed."""
    from app.config import load_config
    from app.migrate import revision

    revision(load_config()["DATABASE_URL"], message)


@main.command("seed-demo")
@click.option("--layout", type=click.Choice(["three-level", "two-level"]), default="three-level", show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has sites.")
def seed_demo(layout: str, if_empty: bool) -> None:
    """Load Tuyên Quang province as demo data, with a demo admin whose password is printed once."""
    from app.auth.models import Role, User
    from app.auth.service import create_user
    from app.db import commit_scope
    from app.sites.demo import seed
    from app.sites.models import Site

    with _app_scope(), commit_scope() as session:
        if if_empty and session.scalar(sa.select(Site.id).limit(1)) is not None:
            click.echo("the database already has sites; demo data not loaded")
            return
        seed(session, layout)
        email, password = "admin@tuyenquang.example.com", None
        if session.scalar(sa.select(User.id).where(User.email == email)) is None:
            password = secrets.token_urlsafe(12)
            create_user(session, email, Role.ADMIN, password, name="Quản trị demo")
    click.echo(f"demo data loaded ({layout})")
    if password:
        click.echo(f"demo admin: {email}  password: {password}  (shown once; change it after login)")


@main.group()
def user() -> None:
    """Users."""


@user.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r for r in
              ("admin", "secretariat", "technician", "operator", "viewer", "site_staff")]))
@click.option("--name", default="")
@click.option("--site", "site_code", default=None, help="Site code (site staff only).")
def user_add(email: str, role: str, name: str, site_code: str | None) -> None:
    """Create a user; the password comes from a prompt, or from the first line of stdin."""
    from app.auth.service import create_user
    from app.db import commit_scope

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    with _app_scope(), commit_scope() as session:
        created = create_user(session, email, role, password, name=name, site_code=site_code)
        click.echo(f"user {created.email} ({created.role.value}) created")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("email")
@click.option("--name", default="cli")
def token_create(email: str, name: str) -> None:
    """Create an API token for a user; the token is printed once."""
    from app.auth.service import create_token, get_user
    from app.db import commit_scope

    with _app_scope(), commit_scope() as session:
        token, secret = create_token(session, get_user(session, email), name)
    click.echo(f"token {token.id} created for {email}; it is shown only now:", err=True)
    click.echo(secret)


@token.command("list")
@click.argument("email")
def token_list(email: str) -> None:
    """List a user's API tokens (id, name, start of the secret, state)."""
    from app.auth.service import get_user, tokens_of
    from app.db import db as database

    with _app_scope():
        for t in tokens_of(database.session, get_user(database.session, email)):
            state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M} UTC" if t.revoked_at else "active"
            click.echo(f"{t.id}\t{t.name}\t{t.prefix}…\t{state}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token by its id."""
    from app.auth.service import revoke_token
    from app.db import commit_scope

    with _app_scope(), commit_scope() as session:
        revoke_token(session, token_id)
    click.echo(f"token {token_id} revoked")


@main.command()
@click.option("--workers", type=int, default=None, help="Worker threads (default VCOPS_QUEUE_WORKERS).")
def worker(workers: int | None) -> None:
    """Run a task-queue worker (huey consumer) with its periodic tasks."""
    from app.tasks import make_consumer

    with _app_scope("worker") as app:
        consumer = make_consumer(workers or app.config["QUEUE_WORKERS"])
        consumer.run()


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--workers", type=int, default=None, help="Web worker processes (default VCOPS_WEB_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web app with gunicorn, and a task-queue worker beside it in the embedded mode."""
    from gunicorn.app.base import BaseApplication

    from app import create_app
    from app.monitoring.webmetrics import gunicorn_hooks

    app = create_app()
    bind = f"{host or app.config['HOST']}:{port or app.config['PORT']}"
    # Before any worker starts: the workers' request metrics go to one shared, emptied folder.
    hooks = gunicorn_hooks(app.config)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers or app.config["WEB_WORKERS"])
            self.cfg.set("accesslog", "-")
            for name, hook in hooks.items():
                self.cfg.set(name, hook)

        def load(self) -> Any:
            return app

    child = None
    if app.config["EMBEDDED_WORKER"]:
        child = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=os.environ.copy())
        click.echo(f"task-queue worker started (pid {child.pid})")
    click.echo(f"VCOps on http://{bind}")
    try:
        _Server().run()
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def _register_domain_commands() -> None:
    from app.monitoring.cli import exporter_command, probe_command
    from app.provisioning.vault import credentials_cli

    main.add_command(credentials_cli)
    main.add_command(probe_command)
    main.add_command(exporter_command)


_register_domain_commands()

if __name__ == "__main__":
    main()
