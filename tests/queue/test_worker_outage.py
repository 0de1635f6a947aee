"""A task-queue worker started while the database does not answer waits for it, and works once it is back."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.config import SETTINGS
from app.migrate import upgrade
from app.queue.models import WorkerCheckin
from tests.support.served import free_port

VCOPS = Path(sys.executable).parent / "vcops"
SECRET = "s3cret-db-password"
WAIT_SECONDS = 30


class Forwarder:
    """A TCP relay from a local port to the PostgreSQL server, started late: until then nothing listens on the
    port, which is what a client sees of a database host that is down."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.stopping = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)
        self.sockets.append(listener)
        self._thread(self._accept, listener)

    def _thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            self._thread(self._pump, client, server)
            self._thread(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # the other side closed, or stop() did
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopping.set()
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def unreachable_database(backend, databases, tmp_path) -> Iterator[tuple[str, str, Callable[[], None]]]:
    """(the URL the worker is given, a URL to read what it wrote, bring_back()): a migrated database the worker
    cannot reach until bring_back() is called."""
    if backend == "sqlite":
        # The database's folder is not there yet (a volume not mounted); bring_back() moves it into place.
        staging, final = tmp_path / "staging", tmp_path / "mounted"
        staging.mkdir()
        upgrade(f"sqlite:///{staging / 'vcops.db'}")
        url = f"sqlite:///{final / 'vcops.db'}"
        yield url, url, lambda: staging.rename(final)
        return
    real = databases.new("postgresql")
    upgrade(real)
    parsed = sa.make_url(real)
    port = free_port()
    forwarder = Forwarder(port, (parsed.host or "127.0.0.1", parsed.port or 5432))
    # The worker's URL carries a password: it must never reach the log.
    given = parsed.set(port=port, password=SECRET).render_as_string(hide_password=False)
    try:
        yield given, real, forwarder.start
    finally:
        forwarder.stop()


@pytest.fixture
def worker_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(k == f"VCOPS_{s.key}" for s in SETTINGS)}
    env.update(VCOPS_INSTANCE_PATH=str(tmp_path / "instance"), VCOPS_QUEUE_WORKERS="1", PYTHONUNBUFFERED="1")
    return env


def _wait_for(condition: Callable[[], object], what: str, log: Path) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} within {WAIT_SECONDS} s; log:\n{log.read_text()}")


def _checked_in(url: str, pid: int) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.scalars(sa.select(WorkerCheckin.name)).all()
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
    return any(name.endswith(f":{pid}") for name in names)


def test_a_worker_started_while_the_database_is_down_keeps_retrying_and_checks_in_once_it_answers(
        unreachable_database, worker_env, tmp_path):
    given_url, read_url, bring_back = unreachable_database
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(VCOPS), "worker"], env={**worker_env, "VCOPS_DATABASE_URL": given_url},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # It says why it waits, and waits longer each time instead of giving up.
        _wait_for(lambda: re.search(r"database unreachable: .*retrying in 2 s", log.read_text()),
                  "the worker never retried a second time", log)
        assert proc.poll() is None, f"the worker exited instead of waiting; log:\n{log.read_text()}"
        assert "retrying in 1 s" in log.read_text()

        bring_back()
        _wait_for(lambda: _checked_in(read_url, proc.pid), "the worker never checked in", log)
        assert proc.poll() is None
        assert SECRET not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
