"""The `vcops` command: serve, worker and db here; the domains' own commands (seed-demo, user, token,
credentials, probe, exporter) come from their commands.py. With the factory, the only place that assembles the
domains."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

from app.auth.audit import Actor, reset_actor, set_actor
from app.errors import DomainError

log = logging.getLogger(__name__)


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


class WorkerSupervisor:
    """serve's task-queue worker process, started again whenever it exits, until serve stops.

    A worker that died (killed, out of memory, a bug) used to leave serve serving with nobody working the queue:
    invitations piled up unsent until /healthz noticed the stale check-in. The supervisor waits on the child in a
    thread of its own, says why it ended, and restarts it after 1, 2, 4 … up to `max_delay` seconds (back to 1 s
    once a worker has run for `steady_seconds`, so a crash a day does not grow the delay).

    gunicorn's arbiter reaps every child it is told about by SIGCHLD, ours included: this thread is normally the
    one blocked in waitpid() and so gets the status first, but when the arbiter wins Popen reports 0."""

    def __init__(self, argv: list[str], env: dict[str, str], max_delay: float = 60.0,
                 steady_seconds: float = 60.0) -> None:
        self.argv, self.env = argv, env
        self.max_delay, self.steady_seconds = max_delay, steady_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # spawning vs stopping: a worker is never started after stop() began
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
        self._owner = os.getpid()

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None else None

    def start(self) -> None:
        self._spawn()  # the first one at once, in the caller, so serve prints its pid before gunicorn's lines
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            # argv is serve's own interpreter running `app.cli worker`, never input from outside
            self._child = subprocess.Popen(self.argv, env=self.env)  # noqa: S603
            click.echo(f"task-queue worker started (pid {self._child.pid})")
            return self._child

    def _supervise(self) -> None:
        delay = 1.0
        child = self._child
        while child is not None:  # ends when stop() has been called (_spawn then gives None)
            started = time.monotonic()
            status = child.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= self.steady_seconds:
                delay = 1.0
            # gunicorn's arbiter reaps every child of this process, ours too when it gets there first; the status
            # is then lost and Popen reports 0, so 0 says only that the worker ended.
            how = (f" (killed by {signal.Signals(-status).name})" if status < 0
                   else f" (exit status {status})" if status > 0 else "")
            log.warning("task-queue worker (pid %d) ended%s; restarting it in %d s", child.pid, how, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.max_delay)
            child = self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop supervising and end the worker: SIGTERM (huey finishes its running tasks), SIGKILL after timeout."""
        if os.getpid() != self._owner:
            # A gunicorn web worker is a fork of serve and leaves through serve's `finally` too: the worker is not
            # its child, and the copy of Popen's lock it inherited is held, so it would signal ours to death.
            return
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._thread.join(timeout=5)


def _json_error_worker(app: Flask) -> type[Any]:
    """gunicorn's sync worker answering the requests it cannot parse (a request line or headers over its limits,
    a malformed line) in the app's one error format instead of its own HTML page: API clients read one format."""
    from flask_babel import gettext as _
    from gunicorn import util
    from gunicorn.http.errors import (
        ConfigurationProblem,
        InvalidResponseHeader,
        InvalidResponseHeaderName,
        LimitRequestHeaders,
        LimitRequestLine,
        ParseException,
    )
    from gunicorn.workers.sync import SyncWorker

    from app.errors import error_body
    from app.extensions import library_message

    class JsonErrorWorker(SyncWorker):
        def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
            app_fault = isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName | ConfigurationProblem)
            with app.app_context():  # no request could be read: the message is in the default language
                if isinstance(exc, ParseException) and not app_fault:
                    self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
                    if isinstance(exc, LimitRequestLine):
                        status, code = 414, "uri_too_long"
                        message = _("The request line (the address with its query) is longer than the %(limit)s "
                                    "characters the server accepts.", limit=self.cfg.limit_request_line)
                    elif isinstance(exc, LimitRequestHeaders):
                        status, code = 431, "headers_too_large"
                        message = _("The request's headers are larger than the server accepts.")
                    else:
                        status, code = 400, "bad_request"
                        message = library_message(
                            "The browser (or proxy) sent a request that this server could not understand.")
                else:
                    self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
                    status, code = 500, "error"
                    message = library_message(
                        "The server encountered an internal error and was unable to complete your request. Either "
                        "the server is overloaded or there is an error in the application.")
            body = json.dumps(error_body(status, code, message), ensure_ascii=False).encode()
            head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
            try:
                util.write_nonblock(client, head + body)
            except Exception:
                self.log.debug("Failed to send error message.")

    return JsonErrorWorker


@main.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.option("--workers", type=int, default=None, help="Web worker processes (default VCOPS_WEB_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web app with gunicorn, and a task-queue worker beside it in the embedded mode (restarted
    whenever it ends)."""
    from gunicorn.app.base import BaseApplication

    from app import create_app
    from app.web.metrics import gunicorn_hooks

    app = create_app()
    bind = f"{host or app.config['HOST']}:{port or app.config['PORT']}"
    # Before any worker starts: the workers' request metrics go to one shared, emptied folder.
    hooks = gunicorn_hooks(app.config)
    worker_class = _json_error_worker(app)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers or app.config["WEB_WORKERS"])
            self.cfg.set("worker_class", worker_class)
            self.cfg.set("accesslog", "-")
            for name, hook in hooks.items():
                self.cfg.set(name, hook)

        def load(self) -> Any:
            return app

    supervisor = None
    if app.config["EMBEDDED_WORKER"]:
        supervisor = WorkerSupervisor([sys.executable, "-m", "app.cli", "worker"], os.environ.copy())
        supervisor.start()
    click.echo(f"VCOps on http://{bind}")
    try:
        _Server().run()
    finally:
        if supervisor is not None:
            supervisor.stop()


def _add_domain_commands() -> None:
    """Each domain's own commands, from its commands.py."""
    from app.auth.commands import commands as auth_commands
    from app.monitoring.commands import commands as monitoring_commands
    from app.provisioning.credentials.commands import commands as credentials_commands
    from app.sites.commands import commands as sites_commands

    for command in (*sites_commands, *auth_commands, *credentials_commands, *monitoring_commands):
        main.add_command(command)


_add_domain_commands()

