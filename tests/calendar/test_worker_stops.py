"""A queue worker stopped in the middle of a province-wide send-out, then a new one started.

A real SMTP server (aiosmtpd) that takes its time over each mail, a real worker process (huey consumer, as
`vcops worker`) stopped with SIGKILL or with SIGTERM (what `vcops serve` sends its worker at an ordinary
shutdown) while the server holds one mail, and a new worker after it: the rest of the send-out is picked up
once the stopped worker's lease has passed, and no recipient gets an invitation twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app.calendar.models import Delivery, DeliveryStatus
from app.db import db
from app.queue.models import OutboxMessage
from app.queue.tasks import configure_queue, huey, sweep_outbox
from tests.calendar.conftest import book, booking
from tests.support.served import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SITES = ["TQ-NH", "TQ-CH", "TQ-HY", "TQ-LB", "TQ-SD"]  # with the host, TQ: 6 sites of 2 contacts each
LEASE_SECONDS = 1.5
DELAY = 0.3  # seconds the server takes over each mail
# Seconds it takes over the mail at which the worker is stopped: far longer than the worker takes to exit, even
# on a loaded machine (3 s was not, once), since aiosmtpd cancels the wait as soon as the connection goes away.
HOLD = 30.0


@dataclass
class SlowServer:
    """Takes DELAY seconds over each mail, at the recipient (before the end of the data: a mail cut off there
    never arrives) or at the end of the data (after the final ".": the mail is the server's once it replies);
    `holding` is set while it holds mail number `hold_at` (from 0), so a test can stop the worker then."""

    slow_at: str  # "rcpt" or "data"
    hold_at: int
    received: list[tuple[list[str], Any]] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    _started: int = 0

    async def _slow(self) -> None:
        held = self._started == self.hold_at
        self._started += 1
        if held:
            self.holding.set()
        await asyncio.sleep(HOLD if held else DELAY)  # cancelled by aiosmtpd when the client's connection goes away

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.slow_at == "rcpt":
            await self._slow()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow_at == "data":
            await self._slow()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def count(self, address: str) -> int:
        return sum(address in rcpts for rcpts, _ in self.received)


@pytest.fixture
def slow_smtp() -> Iterator[Callable[[str, int], tuple[SlowServer, int]]]:
    controllers: list[Controller] = []

    def start(slow_at: str, hold_at: int) -> tuple[SlowServer, int]:
        server, port = SlowServer(slow_at, hold_at), free_port()
        controller = Controller(server, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return server, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def workers(mail_app: Any) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    """Start worker processes on the test's database and queue, with a short lease; all stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    huey.flush()  # earlier tests' hand-offs are not this test's work

    def start(smtp_port: int) -> subprocess.Popen[bytes]:
        config = {k: mail_app.config[k] for k in ("INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "REDIS_URL",
                                                   "QUEUE_NAME", "BASE_URL", "DEFAULT_LANGUAGE")}
        config.update(TESTING=True, EMBEDDED_WORKER=False, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_port,
                      SMTP_STARTTLS=False, SMTP_TIMEOUT=10)
        process = subprocess.Popen([sys.executable, "-m", "tests.calendar.worker_process", json.dumps(config),
                                    str(LEASE_SECONDS)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    huey.flush()


def _deliveries(meeting_id: int) -> list[Delivery]:
    rows = list(db.session.scalars(sa.select(Delivery).where(Delivery.meeting_id == meeting_id)
                                   .order_by(Delivery.id)))
    db.session.remove()
    return rows


def _wait_for(predicate: Callable[[], bool], seconds: float, every: Callable[[], None] | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        if every is not None:
            every()
        time.sleep(0.2)
    return predicate()


def _stop_mid_send(mail_app: Any, week: dt.date, workers: Any, server: SlowServer, port: int,
                   how: signal.Signals) -> int:
    """Book, let a worker send until the server holds mail `hold_at`, stop it with `how`, start a new worker and
    let the sweep run as its periodic tick would, until nothing of the send-out is left to do."""
    configure_queue(mail_app)
    first = workers(port)
    meeting_id = book(booking("Hội nghị trực tuyến toàn tỉnh", SITES, week))
    assert server.holding.wait(60), "the worker never reached the mail it should be stopped at"
    os.kill(first.pid, how)
    assert first.wait(timeout=20) is not None
    stopped_with = _deliveries(meeting_id)
    assert len(stopped_with) == 12
    assert len(server.received) == server.hold_at  # the mails before the one the server held, and no more

    workers(port)

    def settled() -> bool:
        done = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.done_at.is_(None)))
        db.session.remove()
        return done == 0

    # The sweep (every minute in a worker) hands the message over once the stopped worker's lease has passed.
    assert _wait_for(settled, 60, every=sweep_outbox.call_local), "the send-out was never finished"
    return meeting_id


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_worker_stopped_mid_send_out_leaves_the_rest_to_the_next_and_every_site_gets_one_invitation(
        mail_app, week, workers, slow_smtp, how):
    server, port = slow_smtp("rcpt", hold_at=4)
    meeting_id = _stop_mid_send(mail_app, week, workers, server, port, how)

    rows = _deliveries(meeting_id)
    assert [(d.email, d.status) for d in rows] == [(d.email, DeliveryStatus.SENT) for d in rows]
    assert all(d.handed_at is None and not d.permanent for d in rows)
    assert {d.email: server.count(d.email) for d in rows} == {d.email: 1 for d in rows}
    assert len(server.received) == 12


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_mail_cut_off_after_its_end_of_data_is_never_sent_twice_and_waits_for_a_resend(
        mail_app, week, workers, slow_smtp, how):
    # The worker stops while the server holds a mail after its final ".": whether it arrived, SMTP cannot tell.
    # (This server drops a mail whose client went away before its reply; others keep it.)
    server, port = slow_smtp("data", hold_at=4)
    meeting_id = _stop_mid_send(mail_app, week, workers, server, port, how)

    rows = _deliveries(meeting_id)
    [maybe] = [d for d in rows if d.status is not DeliveryStatus.SENT]
    assert maybe.failed_for_good and maybe.maybe_sent and maybe.handed_at is not None
    assert server.count(maybe.email) == 0  # not sent again: a person resends it
    others = [d for d in rows if d is not maybe]
    assert {d.email: server.count(d.email) for d in others} == {d.email: 1 for d in others}
    assert len(server.received) == 11
