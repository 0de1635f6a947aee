"""Monitoring room: the console commands, `vcops probe` and `vcops exporter`, the operators' long-running processes
(separate from the web workers).

Only the console's part is here (options, the acting identity, signals, what is printed); the work is the probe
agent's (app.monitoring.agent.probe) and the exporter's (app.monitoring.exporter). The CLI reads `commands`.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext

from app.auth.audit import acting_as
from app.monitoring import exporter
from app.monitoring.agent.icmp import IcmpPermissionError
from app.monitoring.agent.probe import Agent
from app.monitoring.exposition import MetricsPage, serve
from app.monitoring.topology import Shard

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- vcops probe

@click.command("probe")
@with_appcontext
@click.option("--shard", "shard_text", default="1/1", show_default=True,
              help="Probe the I-th of N shares of the targets (run N agents, 1/N to N/N).")
@click.option("--once", is_flag=True, help="Run one step, write it, print a summary and exit.")
@click.option("--listen", default=None, help="HOST:PORT of /metrics (default PROBE_LISTEN).")
@click.option("--agent", "agent_name", default=None,
              help="Name recorded with the measurements (default: the host name and the shard).")
def probe_command(shard_text: str, once: bool, listen: str | None, agent_name: str | None) -> None:
    """Probe the links and endpoints: ICMP, ports and device health, into the database and /metrics."""
    app = current_app._get_current_object()
    with acting_as("probe"):
        shard = Shard.parse(shard_text)
        agent = Agent(app, shard, agent_name, listen or app.config["PROBE_LISTEN"])
        try:
            if once:
                click.echo(agent.step().summary())
                return
            _run_until_signalled(agent)
        except IcmpPermissionError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            agent.close()


def _run_until_signalled(agent: Agent) -> None:
    try:
        server = agent.serve()
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: the probe agent stops", signal.Signals(signum).name)
        agent.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        where = f" /metrics on {server.url}/metrics" if server is not None else ""
        click.echo(f"probe agent {agent.name} (shard {agent.shard}) started;{where}")
        agent.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("probe agent stopped")


# ---------------------------------------------------------------- vcops exporter

@click.command("exporter")
@with_appcontext
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Where to serve /metrics (default: the EXPORTER_LISTEN setting).")
@click.option("--refresh-seconds", type=click.FloatRange(min=0.5), default=exporter.REFRESH_SECONDS,
              show_default=True, help="How often the database is read again.")
def exporter_command(listen: str | None, refresh_seconds: float) -> None:
    """Serve the link tree, meetings and maintenance windows from the database as Prometheus metrics."""
    app = current_app._get_current_object()
    with acting_as("exporter"):
        listen = listen or app.config["EXPORTER_LISTEN"]
        horizon = float(app.config["EXPORTER_HORIZON_HOURS"])
        # /healthz turns 503 when the database has not been read for a while (the page itself stays served).
        page = MetricsPage(stale_after=max(60.0, 10 * refresh_seconds))
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        # Before anything is announced: a supervisor may stop the exporter as soon as it says it serves.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        exporter.read_once(page, horizon)
        try:
            server = serve(page, listen)
        except (OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"vcops exporter: serving {server.url}/metrics, reading the database every {refresh_seconds:g} s")
        try:
            exporter.run(page, horizon, refresh_seconds, stop)
        finally:
            server.close()


commands = [probe_command, exporter_command]
