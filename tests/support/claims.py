"""Claiming an address block for a test lab, safe between test runs, pytest-xdist workers and other users.

The SSH test hosts (hosts.py: /30s of 198.18.0.0/16) and the probe labs (netlab.py: /22s of 198.19.0.0/16) number
their blocks; a block is claimed with a lock file named by its index in a folder under /run, created with O_EXCL
and holding "<pid> <namespace> <interface> <index>" (the owner, and what it makes there). A lock whose owner
died (a killed run) is reclaimed: `teardown(namespace, interface, index)` removes what it left, then the lock
goes. A block that someone set up by hand (`in_use`) is left to them. Names derive from the index, so they
never clash either.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Teardown = Callable[[str, str, int], None]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Claim:
    index: int
    namespace: str
    host_if: str
    lock: Path

    def release(self) -> None:
        self.lock.unlink(missing_ok=True)


def claim(locks: Path, indices: range, names: Callable[[int], tuple[str, str]], in_use: Callable[[int, str], bool],
          teardown: Teardown, what: str) -> Claim:
    """The first free index of `indices` (from a random start: concurrent runs spread over the range, the lock
    decides), locked for this process; `names(index)` gives its (namespace, interface)."""
    locks.mkdir(mode=0o755, exist_ok=True)
    start = random.randrange(len(indices))
    for step in range(len(indices)):
        index = indices[(start + step) % len(indices)]
        namespace, host_if = names(index)
        lock = locks / str(index)
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            reclaim_if_stale(lock, teardown)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {namespace} {host_if} {index}\n")
        if in_use(index, host_if):
            lock.unlink()  # someone set this block up by hand: leave it to them
            continue
        return Claim(index=index, namespace=namespace, host_if=host_if, lock=lock)
    raise RuntimeError(f"no free {what}")


def reclaim_if_stale(lock: Path, teardown: Teardown) -> None:
    """A lock whose owner is gone (a killed test run): remove what it left and free the index."""
    try:
        fields = lock.read_text().split()
        pid, namespace, host_if = int(fields[0]), fields[1], fields[2]
        index = int(fields[3]) if len(fields) > 3 else int(lock.name)  # (older locks held three fields)
    except (OSError, ValueError, IndexError):
        return  # being written right now, or not ours to judge
    if _alive(pid):
        return
    teardown(namespace, host_if, index)
    lock.unlink(missing_ok=True)


def reclaim_stale(locks: Path, teardown: Teardown) -> None:
    """Remove what killed test runs left behind (before a new lab is made; a failure here does not stop it)."""
    if locks.is_dir():
        for lock in locks.iterdir():
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                reclaim_if_stale(lock, teardown)
