"""Monitoring room: the probe agent's loop (`vcops probe`, whose command is in app.monitoring.commands): every
PROBE_STEP_SECONDS it measures the links and endpoints of its shard, writes the step to the database and renders
its /metrics page once.

A step reads its targets from the inventory (so a link added on the web is probed at the next step), then, on one
event loop and at the same time: PROBE_ECHOES echoes to every link's far end and every endpoint (smokeping-style,
PROBE_ECHO_INTERVAL apart, one ICMP socket: app.monitoring.agent.icmp), TCP connects to the endpoints' SIP and
management ports, and their health over the management interface (app.monitoring.agent.endpoints). Then it writes
states, samples, rollups and pruning in one transaction (app.monitoring.agent.store) and replaces the /metrics
page. Several agents split the targets with `--shard I/N`.

    result = run_step(app, Shard(1, 2), "probe-a")     # one step, no HTTP server (tests, `--once`)
    agent = Agent(app, Shard(), listen="127.0.0.1:9561"); agent.start(); ...; agent.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_babel import force_locale

from app.db import commit_scope, read_only_intent, utcnow
from app.devices.profile import DeviceProfile
from app.devices.service import device_timing
from app.monitoring.agent.endpoints import (
    DeviceSessions,
    EndpointChecks,
    EndpointMeasurement,
    PinnedKeys,
    prepare_devices,
    record_contacts,
)
from app.monitoring.agent.icmp import EchoResult, IcmpPermissionError, ping_many
from app.monitoring.agent.metrics import ProbeCounters, families
from app.monitoring.agent.store import Written, save_step
from app.monitoring.exposition import MetricsPage, Server, render, serve
from app.monitoring.rollups import RollupSettings, echo_figures
from app.monitoring.topology import EndpointTarget, LinkTarget, Shard, endpoint_targets, link_targets

log = logging.getLogger(__name__)

# Device sessions in flight at once. paramiko's handshakes and reads hold the GIL for much of their work, so more
# threads than this would not read more endpoints per second; they would only take memory.
DEVICE_THREADS = 16


@dataclass
class LinkMeasurement:
    """The step's echoes to one link's far end."""

    target: LinkTarget
    echo: EchoResult

    @property
    def up(self) -> bool:
        return self.echo.received > 0

    @property
    def sent(self) -> int:
        return self.echo.sent

    @property
    def lost(self) -> int:
        return self.echo.lost

    @property
    def loss_ratio(self) -> float:
        return self.echo.loss_ratio

    @property
    def rtt_median(self) -> float | None:
        return self.echo.median

    @property
    def rtt_min(self) -> float | None:
        return self.echo.minimum

    @property
    def rtt_max(self) -> float | None:
        return self.echo.maximum

    @property
    def jitter(self) -> float | None:
        return self.echo.jitter

    def row(self) -> dict[str, Any]:
        """The columns of LinkState / LinkSample."""
        return {"link_id": self.target.link_id, "up": self.up, "sent": self.sent, "lost": self.lost,
                "rtt_median": self.rtt_median, "rtt_min": self.rtt_min, "rtt_max": self.rtt_max,
                "jitter": self.jitter}


@dataclass
class StepResult:
    agent: str
    shard: Shard
    measured_at: dt.datetime
    duration: float  # seconds of wall time
    links: list[LinkMeasurement]
    endpoints: list[EndpointMeasurement]
    written: Written

    def summary(self) -> str:
        """A few lines for the console (`vcops probe --once`)."""
        down = [link.target.code for link in self.links if not link.up]
        lines = [f"agent {self.agent} (shard {self.shard}), step of {self.duration:.1f} s at "
                 f"{self.measured_at:%Y-%m-%d %H:%M:%S} UTC",
                 f"links: {len(self.links)}, {len(self.links) - len(down)} up, {len(down)} down",
                 f"endpoints: {len(self.endpoints)}, {sum(e.up for e in self.endpoints)} up, "
                 f"{sum(bool(e.registered) for e in self.endpoints)} registered, "
                 f"{sum(bool(e.in_call) for e in self.endpoints)} in a call, "
                 f"{sum(bool(e.error) for e in self.endpoints)} with an error",
                 f"history: {self.written.pruned} old samples pruned"]
        if down:
            lines.append("down: " + ", ".join(down[:20]) + (" …" if len(down) > 20 else ""))
        return "\n".join(lines)


@dataclass(frozen=True)
class ProbeSettings:
    step_seconds: float
    echoes: int
    echo_interval: float
    timeout: float
    concurrency: int
    history_minutes: float
    language: str

    @classmethod
    def of(cls, config: Any) -> ProbeSettings:
        return cls(step_seconds=float(config["PROBE_STEP_SECONDS"]), echoes=int(config["PROBE_ECHOES"]),
                   echo_interval=float(config["PROBE_ECHO_INTERVAL"]), timeout=float(config["PROBE_TIMEOUT"]),
                   concurrency=int(config["PROBE_CONCURRENCY"]),
                   history_minutes=float(config["PROBE_HISTORY_MINUTES"]), language=config["DEFAULT_LANGUAGE"])


def default_agent_name(shard: Shard) -> str:
    return f"{socket.gethostname()} {shard}"


class Agent:
    """One probe agent: its shard, the device sessions and counters it keeps between steps, and its /metrics."""

    def __init__(self, app: Flask, shard: Shard = Shard(), name: str | None = None, listen: str | None = None
                 ) -> None:
        self.app = app
        self.shard = shard
        self.name = name or default_agent_name(shard)
        self.listen = listen
        settings = ProbeSettings.of(app.config)
        # /healthz turns 503 when three steps went by without a page: the loop is stuck.
        self.page = MetricsPage(stale_after=max(3 * settings.step_seconds, 60.0))
        self.counters = ProbeCounters()
        self.pins = PinnedKeys()
        self.sessions = DeviceSessions()
        self.server: Server | None = None
        self.last: StepResult | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    # ---------------------------------------------------------------- one step

    def step(self) -> StepResult:
        """Measure every target of the shard once, write the step, update /metrics; return what was measured."""
        settings = ProbeSettings.of(self.app.config)
        started = time.monotonic()
        measured_at = utcnow()
        # Errors kept on the endpoints are read by the operators: in their language, not the console's.
        with self.app.app_context(), force_locale(settings.language):
            with read_only_intent(), commit_scope() as session:
                links = link_targets(session, self.shard)
                endpoints = endpoint_targets(session, self.shard)
                self.pins.load(session)
                prepared = prepare_devices(session, endpoints, self.pins, self.sessions, device_timing())
            measured_links, measured_endpoints, echoes = self._measure(settings, links, endpoints, prepared)
            with commit_scope() as session:
                written = save_step(session, agent=self.name, shard=self.shard, measured_at=measured_at,
                                    links=[m.row() for m in measured_links],
                                    endpoints=[{**m.row(), **echo_figures(echoes.get(m.target.address))}
                                               for m in measured_endpoints],
                                    history_minutes=settings.history_minutes,
                                    rollup_settings=RollupSettings.of(self.app.config))
            self._record_contacts()
        duration = time.monotonic() - started
        self.counters.add(measured_links)
        self.page.update(render(families(measured_links, measured_endpoints, self.counters, duration)))
        result = StepResult(self.name, self.shard, measured_at, duration, measured_links, measured_endpoints,
                            written)
        self.last = result
        log.info("probe step: %d links (%d down), %d endpoints (%d down) in %.1f s", len(measured_links),
                 sum(not m.up for m in measured_links), len(measured_endpoints),
                 sum(not m.up for m in measured_endpoints), duration)
        return result

    def _measure(self, settings: ProbeSettings, links: Sequence[LinkTarget], endpoints: Sequence[EndpointTarget],
                 prepared: dict[int, DeviceProfile | str]
                 ) -> tuple[list[LinkMeasurement], list[EndpointMeasurement], dict[str, EchoResult]]:
        async def main() -> tuple[list[LinkMeasurement], list[EndpointMeasurement], dict[str, EchoResult]]:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            if self._stopping.is_set():  # stop() came between two steps' checks
                raise asyncio.CancelledError
            return await self._probe(settings, links, endpoints, prepared)

        try:
            return asyncio.run(main())
        finally:
            self._loop = self._task = None

    async def _probe(self, settings: ProbeSettings, links: Sequence[LinkTarget], endpoints: Sequence[EndpointTarget],
                     prepared: dict[int, DeviceProfile | str]
                     ) -> tuple[list[LinkMeasurement], list[EndpointMeasurement], dict[str, EchoResult]]:
        # One series of echoes per address, shared by a link's far end and an endpoint at the same address.
        addresses = [t.address for t in links] + [t.address for t in endpoints]
        checks = EndpointChecks(self.app, settings.timeout, settings.concurrency, self._pool(settings))
        echoes, measured_endpoints = await asyncio.gather(
            ping_many(addresses, count=settings.echoes, interval=settings.echo_interval, timeout=settings.timeout,
                      concurrency=settings.concurrency),
            checks.run(endpoints, prepared))
        for measured in measured_endpoints:
            measured.add_echoes(echoes.get(measured.target.address))
        # The echoes go back too: the endpoints' rollups count their echoes lost, which their rows do not keep.
        return [LinkMeasurement(t, echoes[t.address]) for t in links], measured_endpoints, echoes

    def _pool(self, settings: ProbeSettings) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=max(1, min(DEVICE_THREADS, settings.concurrency)),
                                                thread_name_prefix="probe-device")
        return self._executor

    def _record_contacts(self) -> None:
        """Refused host keys become pending keys for the technicians (in a transaction of their own: a web
        worker recording the same first contact at the same moment must not undo the step)."""
        contacts = self.pins.take_contacts()
        if not contacts:
            return
        try:
            with commit_scope() as session:
                record_contacts(session, contacts)
        except sa.exc.IntegrityError:
            log.info("host keys recorded meanwhile by another process; they are recorded at the next step")

    # ---------------------------------------------------------------- the loop

    def serve(self) -> Server | None:
        """Start serving /metrics (and /healthz) on `listen`, once."""
        if self.listen and self.server is None:
            self.server = serve(self.page, self.listen)
        return self.server

    def run(self) -> None:
        """Step every PROBE_STEP_SECONDS until stop(); a step that overruns is followed at once by the next."""
        next_start = time.monotonic()
        while not self._stopping.is_set():
            try:
                self.step()
            except asyncio.CancelledError:
                break  # stop() during the step: it is abandoned, nothing of it was written
            except IcmpPermissionError:
                raise
            except Exception:  # the database away for a moment, a bug: logged, and the next step tries again
                log.exception("probe step failed")
            step_seconds = ProbeSettings.of(self.app.config).step_seconds
            next_start += step_seconds
            now = time.monotonic()
            if now > next_start:
                log.warning("the probe step took %.1f s, more than PROBE_STEP_SECONDS (%s s): the next starts now",
                            now - next_start + step_seconds, f"{step_seconds:g}")
                next_start = now
            self._stopping.wait(next_start - now)

    def start(self) -> None:
        """Serve /metrics and run the loop in a background thread."""
        self.serve()
        self._thread = threading.Thread(target=self.run, name=f"probe-{self.shard}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop stepping (a step in progress is abandoned), then close the server, the sessions and the pool."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.sessions.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def running(self) -> bool:
        """The background loop (start()) is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def measuring(self) -> bool:
        """A step is sending its echoes and reading its endpoints right now."""
        return self._task is not None


def run_step(app: Flask, shard: Shard = Shard(), agent_name: str | None = None) -> StepResult:
    """One step of an agent made for it (no /metrics server): what `vcops probe --once` runs."""
    agent = Agent(app, shard, agent_name)
    try:
        return agent.step()
    finally:
        agent.close()
