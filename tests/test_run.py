"""The embedded mode end to end, as `make run` starts it: real processes, a real port, a real worker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from app.config import SETTINGS
from tests.support.served import VCOPS, alive, serving, session_members

STARTUP_SECONDS = 30


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def instance_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(k == f"VCOPS_{s.key}" for s in SETTINGS)}
    env.update(VCOPS_INSTANCE_PATH=str(tmp_path / "instance"), VCOPS_WEB_WORKERS="2", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def server(instance_env, tmp_path) -> Iterator[dict]:
    """`vcops serve` on a free port in its own session; whatever it leaves behind is killed afterwards."""
    assert VCOPS.exists(), f"{VCOPS} is missing: install the package (make test does)"
    for args in (["db", "upgrade"], ["seed-demo", "--if-empty"]):
        done = subprocess.run([str(VCOPS), *args], env=instance_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    with serving(instance_env, tmp_path / "serve.log") as state:
        yield state


def test_make_run_serves_the_app_in_vietnamese_with_a_worker_and_stops_cleanly(server):
    proc, url, log = server["proc"], server["url"], server["log"]
    body = _wait_healthy(server)
    checks = json.loads(body)["checks"]
    assert checks["database"]["backend"] == "sqlite"
    assert checks["queue"]["backend"].startswith("Sqlite")  # the embedded queue, not Redis

    status, page = _get(f"{url}/login")
    assert status == 200
    assert '<html lang="vi"' in page

    members = session_members(proc.pid)
    assert len(members) >= 3, f"expected the server, its web workers and the queue worker; got {members}"

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(proc.pid) == [], f"processes left behind after SIGTERM; log:\n{log.read_text()}"
    worker_pid = int(re.search(r"task-queue worker started \(pid (\d+)\)", log.read_text()).group(1))
    assert worker_pid in members
    assert not alive(worker_pid)


def _wait_healthy(server: dict) -> str:
    """The body of /healthz once it answers 200; the test fails with the server's log otherwise."""
    proc, url, log = server["proc"], server["url"], server["log"]
    deadline = time.monotonic() + STARTUP_SECONDS
    status, body = 0, ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, body = _get(f"{url}/healthz")
        except OSError:
            status = 0  # not listening yet
        if status == 200:
            return body
        time.sleep(0.3)
    pytest.fail(f"/healthz never became healthy (last {status} {body}); log:\n{log.read_text()}")


def _worker_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"task-queue worker started \(pid (\d+)\)", log.read_text())]


def _checked_in(instance: Path, pid: int) -> bool:
    import sqlite3

    with closing(sqlite3.connect(instance / "vcops.db", timeout=5)) as conn:
        names = [name for (name,) in conn.execute("SELECT name FROM worker_checkins")]
    return any(name.endswith(f":{pid}") for name in names)


def test_serve_starts_a_new_worker_when_its_worker_dies_and_stops_it_on_shutdown(server, instance_env):
    proc, log = server["proc"], server["log"]
    _wait_healthy(server)
    [first] = _worker_pids(log)

    os.kill(first, signal.SIGKILL)  # as the OOM killer would
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(_worker_pids(log)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = _worker_pids(log)
    assert len(pids) == 2, f"no new worker after the first was killed; log:\n{log.read_text()}"
    second = pids[1]
    assert second != first and not alive(first)
    # Why it ended is said when serve, not gunicorn's arbiter (which reaps every child), collected its status.
    assert re.search(rf"task-queue worker \(pid {first}\) ended( \(killed by SIGKILL\))?; restarting it in 1 s",
                     log.read_text()), log.read_text()
    instance = Path(instance_env["VCOPS_INSTANCE_PATH"])
    while not _checked_in(instance, second) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _checked_in(instance, second), f"the new worker never checked in; log:\n{log.read_text()}"

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(proc.pid) == [], f"processes left behind after SIGTERM; log:\n{log.read_text()}"
    assert not alive(second)
    assert len(_worker_pids(log)) == 2, "a worker was started again while serve was stopping"


def test_a_request_line_over_the_limit_is_answered_in_the_one_json_error_format(server):
    _wait_healthy(server)
    host, port = server["url"].removeprefix("http://").split(":")
    path = "/api/v1/sites?q=" + "x" * 5000  # over gunicorn's 4094-byte request line
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
    assert status_line.startswith("HTTP/1.1 414"), raw[:300]
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["status"] == 414 and error["code"] == "uri_too_long" and error["fields"] == {}
    assert "4094" in error["message"]
    assert error["message"].startswith("Dòng yêu cầu")  # the default language: the request could not be read
