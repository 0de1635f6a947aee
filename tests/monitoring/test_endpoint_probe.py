"""The probe agent reads the endpoints as operators need them: reachable, registered, in a call and how the call's
media fares (measured on a real call's packets), over SSH to a simulated Cisco room system (tests/support/hosts.py)
with the credential store and pinned host keys of the app; a key that is not the pinned one is reported and never
accepted."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.db import commit_scope, db
from app.devices.models import HostKey, HostKeyState
from app.monitoring.agent.probe import Agent, run_step
from app.monitoring.models import EndpointState
from app.monitoring.topology import Shard
from app.provisioning.credentials.service import assign_credential, create_credential
from app.sites import equipment, service
from app.sites.models import EndpointKind
from simulators.cisco_xapi import StateStore, XapiShell, new_state
from simulators.sip import SipAgent
from tests.conftest import BACKENDS
from tests.support import netlab
from tests.support.hosts import SYSTEM_PYTHON, LabHost, host_lab

SETTINGS = {"PROBE_ECHOES": 3, "PROBE_ECHO_INTERVAL": 0.02, "PROBE_TIMEOUT": 1.0, "DEVICE_CONNECT_TIMEOUT": 5,
            "DEVICE_COMMAND_TIMEOUT": 5}
SIP = {"SIP URI": "xa.langcan@tuyenquang.vn", "SIP Proxy 1 Address": "sip.tuyenquang.vn"}


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHost]:
    """One simulated room system for the module (its state is set anew by each test)."""
    with host_lab(tmp_path_factory.mktemp("probe-endpoints")) as lab:
        (host,) = lab.make(1, "xapi", boot_seconds=1.0)
        yield host


def set_device(host: LabHost, **state: Any) -> None:
    StateStore(host.state_path).write(new_state(serial=f"FOC{host.index:05d}SIM", **state))


def make_app(fresh_app: Any, backend: str = "sqlite") -> Any:
    return fresh_app(backend, **SETTINGS)


def add_endpoint(app: Any, host: LabHost, *, vendor: str = "Cisco", credential: bool = True,
                 pin: str | None = "offered", room: str = "Hội trường xã") -> int:
    """An endpoint at the host's address; with the admin login in the credential store (the default for every
    endpoint) and its host key accepted by a technician: `pin` "offered" pins the key the host offers, another
    fingerprint pins that one, None pins nothing."""
    with app.app_context():
        with commit_scope() as session:
            service.ensure_levels(session, "three-level")
            site = service.create_site(session, {"code": "TQ-LB-LC", "name": "Xã Lăng Can", "level": "commune"})
            endpoint = equipment.save_endpoint(session, {
                "site_id": site.id, "room_name": room, "vendor": vendor, "model": "Room Kit",
                "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": host.address, "mgmt_port": host.port})
            if credential:
                login = create_credential(session, "endpoint-admin", "password", host.username, host.password)
                assign_credential(session, login, "endpoint")
            if pin is not None:
                fingerprint = host.host_key_fingerprint() if pin == "offered" else pin
                session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                                    fingerprint=fingerprint, state=HostKeyState.ACCEPTED))
            endpoint_id = endpoint.id
        db.session.remove()
    return endpoint_id


def state_of(app: Any, endpoint_id: int) -> EndpointState:
    with app.app_context():
        state = db.session.get(EndpointState, endpoint_id)
        assert state is not None
        db.session.expunge(state)
        db.session.remove()
    return state


def host_keys(app: Any) -> dict[str, HostKeyState]:
    with app.app_context():
        keys = {k.fingerprint: k.state for k in db.session.scalars(sa.select(HostKey))}
        db.session.remove()
    return keys


def scrape(agent: Agent) -> dict[str, float]:
    """The agent's endpoint samples: {metric name: value} (one endpoint per test)."""
    assert agent.server is not None
    conn = http.client.HTTPConnection(agent.server.host, agent.server.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {sample.name: sample.value for family in text_string_to_metric_families(body)
            for sample in family.samples if sample.name.startswith("vcops_endpoint_")}


@contextlib.contextmanager
def sip_listener(host: LabHost) -> Iterator[None]:
    """Something answering TCP on the room's SIP port, as a room system with SIP over TCP on does."""
    script = ("import socket, sys\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              f"s.bind(({host.address!r}, 5060)); s.listen(16); print('ready', flush=True)\n"
              "while True:\n    s.accept()[0].close()\n")
    proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, SYSTEM_PYTHON, "-c", script],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def call_in_progress(host: LabHost, drop_percent: float) -> Iterator[SipAgent]:
    """The room dialled the province's bridge (a SIP agent on the machine's end of its link) over xAPI, and
    nftables drops `drop_percent` % of the media entering the room: the call runs for one whole Netstat
    interval (5 s) before the block's body."""
    with SipAgent(host.peer_address, 0, user="tinh", answer=lambda call: 200) as bridge:
        netlab.drop_udp(host.namespace, drop_percent)
        try:
            reply = XapiShell(StateStore(host.state_path)).handle(
                f'xCommand Dial Number: "tinh@{host.peer_address}:{bridge.port}" CallRate: 1920')
            assert reply.text.endswith("OK\n"), reply.text
            deadline = time.monotonic() + 10
            while not any(c.state == "connected" for c in bridge.calls()) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert any(c.state == "connected" for c in bridge.calls()), bridge.calls()
            time.sleep(6.5)  # one interval closed, and written by the room's call daemon (every second)
            yield bridge
        finally:
            netlab.clear_udp(host.namespace, f"vh{host.index}b")


# ---------------------------------------------------------------- what operators read

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_registered_endpoint_is_reported_reachable_and_registered(backend, fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app, backend)
    endpoint_id = add_endpoint(app, room)
    with sip_listener(room):
        result = run_step(app, Shard(), "probe-test")
    (measured,) = result.endpoints
    assert measured.error == ""
    state = state_of(app, endpoint_id)
    assert (state.up, state.icmp_up, state.sip_port_open, state.mgmt_port_open) == (True, True, True, True)
    assert (state.registered, state.in_call, state.call_loss_ratio, state.call_jitter) == (True, False, None, None)
    assert 0 < state.rtt < SETTINGS["PROBE_TIMEOUT"] and state.error == "" and state.agent == "probe-test"
    assert host_keys(app) == {room.host_key_fingerprint(): HostKeyState.ACCEPTED}


def test_an_endpoint_that_loses_its_registration_or_is_in_a_lossy_call_is_reported_so(fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app)
    endpoint_id = add_endpoint(app, room)
    logins = room.ssh_connections()
    agent = Agent(app, Shard(), "board", listen="127.0.0.1:0")
    agent.serve()
    try:
        agent.step()
        assert state_of(app, endpoint_id).registered is True
        assert scrape(agent)["vcops_endpoint_registered"] == 1

        with StateStore(room.state_path).edit() as device:
            device["registrar"] = "reject"  # the registrar refuses it (403): the device reports Failed
        agent.step()
        state = state_of(app, endpoint_id)
        assert (state.up, state.registered, state.in_call, state.error) == (True, False, False, "")
        metrics = scrape(agent)
        assert (metrics["vcops_endpoint_up"], metrics["vcops_endpoint_registered"]) == (1, 0)

        with StateStore(room.state_path).edit() as device:
            device["registrar"] = "accept"
        # A real call whose incoming media lose 8 % on the room's link. Its last interval holds ~1,200 packets
        # (50 audio and ~190 video a second, 5 s): the measured ratio's standard deviation is 0.8 points.
        with call_in_progress(room, drop_percent=8):
            agent.step()
        state = state_of(app, endpoint_id)
        assert (state.registered, state.in_call) == (True, True)
        assert state.call_loss_ratio == pytest.approx(0.08, abs=0.035)
        assert state.call_jitter is not None and 0 <= state.call_jitter < 0.05  # measured, in seconds
        metrics = scrape(agent)
        assert metrics["vcops_endpoint_in_call"] == 1
        assert metrics["vcops_endpoint_call_packet_loss_ratio"] == pytest.approx(state.call_loss_ratio)
        assert metrics["vcops_endpoint_call_jitter_seconds"] == pytest.approx(state.call_jitter)
    finally:
        agent.close()
    # The agent kept its session from step to step: one login for three steps.
    assert room.ssh_connections() - logins == 1


# ---------------------------------------------------------------- host keys

def test_an_endpoint_whose_host_key_is_not_pinned_reports_it_and_the_key_is_not_accepted(fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app)
    endpoint_id = add_endpoint(app, room, pin=None)
    logins = room.ssh_connections()
    run_step(app)
    fingerprint = room.host_key_fingerprint()
    state = state_of(app, endpoint_id)
    assert state.error == (f"First contact with {room.address}: fingerprint {fingerprint} awaits a technician's "
                           "acceptance.")
    assert (state.up, state.mgmt_port_open, state.registered, state.in_call) == (True, True, None, None)
    # Recorded for a technician to compare and accept; not accepted, and no password was sent.
    assert host_keys(app) == {fingerprint: HostKeyState.PENDING}
    assert room.ssh_connections() == logins
    run_step(app)
    assert host_keys(app) == {fingerprint: HostKeyState.PENDING}
    assert state_of(app, endpoint_id).registered is None


def test_an_endpoint_offering_another_key_than_the_pinned_one_is_refused_and_the_pin_kept(fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app)
    pinned = "SHA256:" + "A" * 43  # the key of the device that was there before
    endpoint_id = add_endpoint(app, room, pin=pinned)
    logins = room.ssh_connections()
    run_step(app)
    offered = room.host_key_fingerprint()
    state = state_of(app, endpoint_id)
    assert state.error.startswith(f"The host key of {room.address} has changed: pinned {pinned}, offered {offered}.")
    assert state.registered is None and state.up
    assert host_keys(app) == {pinned: HostKeyState.ACCEPTED, offered: HostKeyState.PENDING}
    assert room.ssh_connections() == logins


# ---------------------------------------------------------------- what cannot be read

def test_endpoints_without_a_credential_or_with_an_unknown_vendor_say_why(fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app)
    no_login = add_endpoint(app, room, credential=False)
    with app.app_context():
        with commit_scope() as session:
            site_id = session.scalar(sa.text("SELECT site_id FROM endpoints WHERE id = :id"), {"id": no_login})
            other = equipment.save_endpoint(session, {
                "site_id": site_id, "room_name": "Phòng họp 2", "vendor": "Polycom", "model": "Group 500",
                "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": room.address, "mgmt_port": room.port})
            polycom = other.id
        db.session.remove()
    run_step(app)
    state = state_of(app, no_login)
    assert state.error == "No credential is assigned to Hội trường xã; assign one on the credentials page."
    assert (state.up, state.registered, state.in_call) == (True, None, None)
    state = state_of(app, polycom)
    assert state.error.startswith("VCOps cannot talk to Polycom equipment yet")
    assert (state.up, state.mgmt_port_open, state.registered) == (True, True, None)


def test_an_endpoint_whose_management_port_is_closed_is_reported_by_its_echoes(fresh_app, room):
    set_device(room, config=SIP)
    app = make_app(fresh_app)
    endpoint_id = add_endpoint(app, room)
    room.stop_ssh()
    try:
        run_step(app)
    finally:
        room.start_ssh()
    state = state_of(app, endpoint_id)
    assert (state.up, state.icmp_up, state.mgmt_port_open, state.sip_port_open) == (True, True, False, False)
    assert state.error == "The management port 22 does not answer." and state.registered is None
