"""The `vcops` command: serve, worker and db here; the domains' own commands (seed-demo, user, token,
credentials, probe, exporter) come from their commands.py. With the factory, the only place that assembles the
domains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

from app.auth.audit import Actor, reset_actor, set_actor
from app.errors import DomainError


class ConsoleGroup(click.Group):
    """The `vcops` group: a domain's refusal (DomainError) is printed as the console's error, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc


def console_app() -> Flask:
    """The app the commands run in (flask.cli.with_appcontext loads it). The console speaks English, so the
    services' refusals it passes on are in English too (not in the interface's default language)."""
    from app import create_app

    try:
        return create_app({"DEFAULT_LANGUAGE": "en"})
    except RuntimeError as exc:  # a setting that cannot be read: say which, without a traceback
        raise click.ClickException(str(exc)) from exc


@click.group(cls=ConsoleGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """VCOps: meetings, equipment and links of a province's video-conference network."""
    ctx.obj = ScriptInfo(create_app=console_app, set_debug_flag=False)
    token = set_actor(Actor(None, "cli"))
    ctx.call_on_close(lambda: reset_actor(token))


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


@main.command()
@click.option("--workers", type=int, default=None, help="Worker threads (default VCOPS_QUEUE_WORKERS).")
def worker(workers: int | None) -> None:
    """Run a task-queue worker (huey consumer) with its periodic tasks."""
    from app import create_app
    from app.queue.tasks import make_consumer

    try:
        app = create_app()  # in the interface's language: the worker writes the mails
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    with app.app_context():
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
    from app.web.metrics import gunicorn_hooks

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


def _add_domain_commands() -> None:
    """Each domain's own commands, from its commands.py."""
    from app.auth.commands import commands as auth_commands
    from app.monitoring.commands import commands as monitoring_commands
    from app.provisioning.credentials.commands import commands as credentials_commands
    from app.sites.commands import commands as sites_commands

    for command in (*sites_commands, *auth_commands, *credentials_commands, *monitoring_commands):
        main.add_command(command)


_add_domain_commands()

