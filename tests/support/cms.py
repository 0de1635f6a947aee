"""The simulated Cisco Meeting Server (simulators/cisco_cms.py) serving HTTPS inside a probe lab's namespace
(tests/support/netlab.py), for the tests of the bridge layer and of the conferences VCOps keeps on it.

`cms` (the running simulator, a `CmsLab`) and `bridge` (the lab's bridge in the inventory, its login from a
credential source of the test's own) are fixtures: import `cms_fixture`, `bridge_fixture` and `netlab` into the
test module. `trust` does what a technician does on the certificates page; `requests()` reads back what reached
the simulator.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.devices.bridges import service as bridges
from app.devices.bridges.base import BridgeTiming
from app.devices.bridges.tls import fingerprint_of
from app.devices.models import BridgeCertificate
from app.devices.profile import DeviceLogin
from app.sites.models import Bridge
from tests.support.netlab import SYSTEM_PYTHON, Lab

REPO = Path(__file__).resolve().parents[2]
# ASCII: the simulator compares a non-ASCII password as text and fails (hmac.compare_digest refuses it).
USER, PASSWORD = "vcops-api", "MCU-secret-1"
FAST = BridgeTiming(connect_timeout=3, read_timeout=5)


@dataclass
class CmsLab:
    """The simulated Meeting Server on `address:port` inside a lab's namespace, its state in `folder`."""

    lab: Lab
    address: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = ["ip", "netns", "exec", self.lab.namespace, SYSTEM_PYTHON, "-m", "simulators.cisco_cms",
                "--listen", f"{self.address}:{self.port}", "--user", USER, "--password", PASSWORD,
                "--state-dir", str(self.folder)]
        with (self.folder / "simulator.log").open("ab") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + 20
        while not (self.folder / "pid").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the CMS simulator did not start: {(self.folder / 'simulator.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def renew_certificate(self) -> None:
        """Restart with a new self-signed certificate (a replaced bridge, or a man in the middle)."""
        self.stop()
        (self.folder / "cert.pem").unlink()
        (self.folder / "key.pem").unlink()
        self.start()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(ssl.PEM_cert_to_DER_cert((self.folder / "cert.pem").read_text()))

    @property
    def mgmt_address(self) -> str:
        return self.address if self.port == 443 else f"{self.address}:{self.port}"

    def requests(self) -> list[str]:
        """What reached the API, one `METHOD PATH STATUS` a line."""
        log = self.folder / "requests.log"
        return log.read_text().splitlines() if log.exists() else []


# Named apart from their fixtures' names, so that a test module imports them without shadowing.
@pytest.fixture(name="cms")
def cms_fixture(netlab: Callable[..., Lab], tmp_path: Path) -> Iterator[CmsLab]:
    lab = netlab(n_addresses=1)
    simulator = CmsLab(lab, lab.addresses[0], 443, tmp_path / "cms")
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture(name="bridge")
def bridge_fixture(session: Any, cms: CmsLab) -> Iterator[Bridge]:
    """The lab's bridge in the inventory, with its login from a credential source of the test's own."""
    row = Bridge(name="MCU-LAB", vendor="Cisco", model="Meeting Server 2000", mgmt_address=cms.mgmt_address,
                 sip_address=f"sip:{cms.address}", total_ports=40)
    session.add(row)
    session.flush()
    previous = bridges.set_bridge_credential_source(lambda _s, _b: DeviceLogin(USER, password=PASSWORD))
    yield row
    bridges.set_bridge_credential_source(previous)


def trust(session: Any, bridge: Bridge) -> BridgeCertificate:
    """What a technician does on the certificates page, done by the service: fetch, then accept."""
    from app.devices import certificates

    row = bridges.fetch_certificate(session, bridge)
    certificates.accept(session, row, None)
    session.commit()
    return row


def wait_for(predicate: Callable[[], Any], seconds: float = 15, every: float = 0.2) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
