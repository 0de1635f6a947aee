"""The embedded mode end to end, as `make run` starts it: real processes, a real port, a real worker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import SETTINGS

VCOPS = Path(sys.executable).parent / "vcops"
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _session_members(session_id: int) -> list[int]:
    """Live (not zombie) processes in a session: the server started one, so all it spawned are in it."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, sid = fields[0], int(fields[3])
        if sid == session_id and state != "Z":
            members.append(int(entry.name))
    return members


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


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
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(VCOPS), "serve", "--port", str(port)], env=instance_env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    state = {"proc": proc, "url": f"http://127.0.0.1:{port}", "log": log}
    try:
        yield state
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_make_run_serves_the_app_in_vietnamese_with_a_worker_and_stops_cleanly(server):
    proc, url, log = server["proc"], server["url"], server["log"]

    deadline = time.monotonic() + STARTUP_SECONDS
    status, body = 0, ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, body = _get(f"{url}/healthz")
        except OSError:
            status = 0  # not listening yet
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200, f"/healthz never became healthy (last {status} {body}); log:\n{log.read_text()}"
    checks = json.loads(body)["checks"]
    assert checks["database"]["backend"] == "sqlite"
    assert checks["queue"]["backend"].startswith("Sqlite")  # the embedded queue, not Redis

    status, page = _get(f"{url}/login")
    assert status == 200
    assert '<html lang="vi"' in page

    members = _session_members(proc.pid)
    assert len(members) >= 3, f"expected the server, its web workers and the queue worker; got {members}"

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_members(proc.pid) == [], f"processes left behind after SIGTERM; log:\n{log.read_text()}"
    worker_pid = int(re.search(r"task-queue worker started \(pid (\d+)\)", log.read_text()).group(1))
    assert worker_pid in members
    assert not _alive(worker_pid)
