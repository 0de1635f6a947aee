"""Fixtures of the simulator tests: the Cisco Meeting Server simulator on a test host, endpoints beside it, and
a client that speaks its API over HTTPS (the simulator's own certificate pinned) as a CMS client does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import pytest
import requests

from tests.support.hosts import CmsSimulator, HostLab, LabHost, connect_hosts, host_lab, start_cms_simulator

SIP_TIMEOUT = 4.0  # seconds before an unanswered INVITE fails (the server's timer B): unreachable sites fail fast
RING_TIMEOUT = 5.0  # seconds a site may ring before the bridge gives the leg up


@dataclass
class Answer:
    status: int
    location: str | None
    xml: ET.Element | None

    @property
    def failure(self) -> ET.Element | None:
        """The one element inside <failureDetails>, if the answer carries it."""
        if self.xml is None or self.xml.tag != "failureDetails" or len(self.xml) == 0:
            return None
        return self.xml[0]


class CmsClient:
    """The API as a client sees it: Basic auth, form-encoded bodies, XML answers."""

    def __init__(self, simulator: CmsSimulator, auth: tuple[str, str] | None = None) -> None:
        self.base = simulator.url + "/api/v1"
        # Per request: a session's `verify` loses to REQUESTS_CA_BUNDLE in the environment (requests' rule).
        self.certificate = str(simulator.certificate)
        self.session = requests.Session()
        self.session.auth = auth if auth is not None else (simulator.user, simulator.password)

    def request(self, method: str, path: str, data: dict[str, str] | None = None,
                params: dict[str, str | int] | None = None) -> Answer:
        response = self.session.request(method, self.base + path, data=data, params=params, timeout=10,
                                        verify=self.certificate)
        body = ET.fromstring(response.content) if response.content else None
        return Answer(response.status_code, response.headers.get("Location"), body)

    def get(self, path: str, **params: str | int) -> Answer:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, **data: str) -> Answer:
        return self.request("POST", path, data=data)

    def put(self, path: str, **data: str) -> Answer:
        return self.request("PUT", path, data=data)

    def delete(self, path: str) -> Answer:
        return self.request("DELETE", path)

    def created(self, path: str, **data: str) -> str:
        """POST, and the new object's path from its Location."""
        answer = self.post(path, **data)
        assert answer.status == 200, (answer.status, answer.xml is not None and ET.tostring(answer.xml))
        assert answer.location is not None
        return answer.location.removeprefix("/api/v1")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostLab]:
    with host_lab(tmp_path_factory.mktemp("cms-lab")) as made:
        yield made


@pytest.fixture(scope="module")
def cms(lab: HostLab) -> Iterator[CmsSimulator]:
    """The simulated Meeting Server on a test host of its own (shared by a module's tests)."""
    host = lab.make(1, "linux")[0]
    simulator = start_cms_simulator(host, sip_timeout=SIP_TIMEOUT, ring_timeout=RING_TIMEOUT)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def sites(lab: HostLab, cms: CmsSimulator) -> list[LabHost]:
    """Two simulated room systems that the bridge reaches over the test network (and they it)."""
    endpoints = lab.make(2, "xapi", boot_seconds=1.0)
    connect_hosts(cms.host, *endpoints)
    return endpoints


@pytest.fixture
def api(cms: CmsSimulator) -> CmsClient:
    return CmsClient(cms)
