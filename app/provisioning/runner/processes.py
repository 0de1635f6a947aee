"""A run's processes: the worker's name, whether a process lives, which processes belong to a run (its
process group, any process carrying the run's mark, its shared SSH connections), and ending them."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import psutil

from app.provisioning.runner.settings import RUN_MARK, control_dir

TERM_GRACE_SECONDS = 5.0


def worker_name() -> str:
    """The name the worker checks in under (app.queue.tasks): host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pgid_of(pid: int) -> int | None:
    """The process group of a process, or None when it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def process_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists, under another user


def _belongs(process: psutil.Process, pgid: int | None, run_dir: str, sockets: str) -> bool:
    if pgid is not None and pgid_of(process.pid) == pgid:
        return True
    if not run_dir:
        return False
    try:
        # ssh rewrites its masters' command line over the memory that held its environment, so they are
        # known by their control socket's folder rather than by the mark.
        return process.environ().get(RUN_MARK) == run_dir or " ".join(process.cmdline()).startswith(sockets)
    except psutil.Error:  # gone meanwhile, or another user's
        return False


def run_processes(pgid: int | None, run_dir: str) -> list[int]:
    """Live processes of a run: its process group, any process carrying the run's mark, and the run's shared
    SSH connections (ssh names its masters "ssh: <control socket> [mux]")."""
    sockets = f"ssh: {control_dir(Path(run_dir))}/" if run_dir else ""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            pass
        if _belongs(process, pgid, run_dir, sockets):
            found.append(process.pid)
    return found


def end_processes(pgid: int | None, run_dir: str) -> bool:
    """SIGTERM to the run's processes, SIGKILL to what is left after a grace period; True when none remain."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
        pids = run_processes(pgid, run_dir)
        if not pids:
            return True
        if pgid is not None:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and run_processes(pgid, run_dir):
            time.sleep(0.1)
    return not run_processes(pgid, run_dir)

