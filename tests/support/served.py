"""`vcops serve` (or any `vcops` command) as a real process for the tests: a free loopback port, its own session,
and everything it spawned killed afterwards, also when the test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil

VCOPS = Path(sys.executable).parent / "vcops"


def free_port() -> int:
    """A loopback port nobody listens on now (released at once: connecting to it is refused until taken)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_members(session_id: int) -> list[int]:
    """Live (not zombie) processes of a session: the server started one, so all it spawned are in it."""
    members = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(process.pid) == session_id:
                members.append(process.pid)
    return members


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def serving(env: Mapping[str, str], log: Path, *serve_args: str) -> Iterator[dict]:
    """`vcops serve --port P *serve_args` in a session of its own, its output in `log`; yields its process, URL
    and log, and kills the whole session when the block ends."""
    assert VCOPS.exists(), f"{VCOPS} is missing: install the package (make test does)"
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([str(VCOPS), "serve", "--port", str(port), *serve_args], env=dict(env),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "log": log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
