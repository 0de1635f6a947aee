"""Fixtures of the device tests: simulated endpoints in network namespaces (tests.support.hosts), and the same simulator
on a pipe (no SSH, no root) so that the xAPI client is tested everywhere."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.devices.profile import (
    DeviceLogin,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyChanged,
    HostKeyPending,
    Target,
    Timing,
)
from app.devices.vendors.cisco import CiscoXapi
from simulators import cisco_xapi
from tests.support.hosts import SIMULATOR, LabHost, host_lab, ssh_hosts  # noqa: F401 - ssh_hosts: a fixture

FAST = Timing(connect_timeout=5, command_timeout=5, keepalive=5)


class PipeConnection:
    """The simulator as a child process on a pipe: the device's shell without SSH."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.process: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    def open(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(SIMULATOR), "--state", str(self.state)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def read_line(self, deadline: float, waiting_for: str) -> str:
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise DeviceTimeout(f"no answer to {waiting_for}")
                data = os.read(fd, 65536)
                if not data:
                    raise DeviceUnreachable(f"the simulator ended while answering {waiting_for}")
                self.buffer += data
        line, _sep, self.buffer = self.buffer.partition(b"\n")
        return line.decode().rstrip("\r")

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
            self.process = None

    @property
    def is_open(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NoPins:
    """For the pipe: there is no host key."""

    def pinned_type(self, address: str, port: int) -> str | None:
        return None

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        return None


class MemoryPins:
    """Host keys pinned in memory, with the database policy's verdicts (tests of the SSH layer alone)."""

    def __init__(self) -> None:
        self.accepted: dict[tuple[str, int], tuple[str, str]] = {}
        self.seen: list[str] = []

    def trust(self, host: LabHost) -> None:
        self.accepted[(host.address, host.port)] = ("ssh-ed25519", host.host_key_fingerprint())

    def pinned_type(self, address: str, port: int) -> str | None:
        pinned = self.accepted.get((address, port))
        return pinned[0] if pinned else None

    def check(self, address: str, port: int, key_type: str, fingerprint: str) -> None:
        self.seen.append(fingerprint)
        pinned = self.accepted.get((address, port))
        if pinned is None:
            raise HostKeyPending(address, fingerprint)
        if pinned[1] != fingerprint:
            raise HostKeyChanged(address, pinned[1], fingerprint)


@pytest.fixture
def piped_device(tmp_path: Path) -> Iterator[Callable[..., CiscoXapi]]:
    """make(**state) -> a Cisco profile talking to a fresh simulated device through a pipe."""
    made: list[CiscoXapi] = []

    def make(**state: Any) -> CiscoXapi:
        path = tmp_path / f"device-{len(made)}.json"
        cisco_xapi.StateStore(path).write(cisco_xapi.new_state(**state))
        device = CiscoXapi(Target("pipe", label="Phòng họp"), DeviceLogin("admin", password="x"), NoPins(), FAST,
                           connect=lambda: PipeConnection(path))
        device.state_path = path  # type: ignore[attr-defined]
        made.append(device)
        return device

    yield make
    for device in made:
        device.close()


def login_of(host: LabHost, use_key: bool = False) -> DeviceLogin:
    if use_key:
        return DeviceLogin(host.username, private_key=host.private_key_text)
    return DeviceLogin(host.username, password=host.password)


def device_on(host: LabHost, pins: Any, use_key: bool = False, timing: Timing = FAST) -> CiscoXapi:
    return CiscoXapi(Target(host.address, host.port, label=host.namespace), login_of(host, use_key), pins, timing)


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LabHost]]:
    """Three simulated endpoints shared by a module's tests (each test uses its own settings on them)."""
    with host_lab(tmp_path_factory.mktemp("endpoints")) as lab:
        yield lab.make(3, "xapi", boot_seconds=1.0)

