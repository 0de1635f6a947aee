"""The device layer against simulated Cisco endpoints over real SSH, each in a network namespace of its own
(tests.support.hosts; root, sshd and iproute2 needed, else these skip with the reason)."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from app.devices import hostkeys
from app.devices.hostkeys import DatabasePins
from app.devices.models import HostKey, HostKeyState
from app.devices.profile import (
    AuthenticationFailed,
    DeviceLogin,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyChanged,
    HostKeyPending,
    PinnedFingerprint,
    Target,
    Timing,
)
from app.devices.vendors.cisco import CiscoXapi
from tests.devices.conftest import FAST, MemoryPins, device_on

SETTINGS = {
    "display_name": "UBND xã Lăng Can",
    "sip_uri": "xa.langcan@tuyenquang.vn",
    "sip_proxy": "sip.tuyenquang.vn",
    "ntp_servers": ["ntp.tuyenquang.vn"],
    "timezone": "Asia/Ho_Chi_Minh",
    "call_rate_kbps": 2048,
    "video_dscp": 34,
}


def test_a_technician_reads_the_status_of_each_endpoint_over_ssh(endpoints):
    pins = MemoryPins()
    versions = set()
    for host in endpoints:
        pins.trust(host)
        with device_on(host, pins) as device:
            status = device.status()
        assert status["serial"] == f"FOC{host.index:05d}SIM"
        assert status["sip_registration"] == "Inactive"
        versions.add(status["software_version"])
    assert versions == {"ce9.15.3.17"}
    assert len({h.address for h in endpoints}) == 3 and all(h.address.startswith("198.1") for h in endpoints)


def test_a_configuration_set_over_ssh_reads_back_and_one_use_opens_one_connection(endpoints):
    host = endpoints[0]
    pins = MemoryPins()
    pins.trust(host)
    before = host.ssh_connections()
    with device_on(host, pins, use_key=True) as device:
        assert device.apply_config(SETTINGS, check=True).changed
        change = device.apply_config(SETTINGS)
        assert change.diff["after"]["SIP DisplayName"] == "UBND xã Lăng Can"
        config = device.get_config("SIP")
        assert config["SIP DisplayName"] == "UBND xã Lăng Can" and config["SIP URI"] == "xa.langcan@tuyenquang.vn"
        assert device.get_config("Network 1 QoS Diffserv Video") == {"Network 1 QoS Diffserv Video": "34"}
        assert device.status()["sip_registration"] == "Registered"
        assert not device.apply_config(SETTINGS).changed
    assert host.ssh_connections() - before == 1
    assert host.read_state()["config"]["Time Zone"] == "Asia/Ho_Chi_Minh"  # kept in the host's own state file


@pytest.mark.parametrize(("desired", "reason"), [
    ({"SIP Nonsense": "1"}, "No match on address expression."),
    ({"Network 1 QoS Diffserv Video": 64}, "Value out of range: 64 (expected 0..63)"),
    ({"timezone": "Mars/Olympus"}, "Invalid value: 'Mars/Olympus'"),
])
def test_unknown_paths_and_bad_values_are_refused_with_the_device_reason(endpoints, desired, reason):
    host = endpoints[1]
    pins = MemoryPins()
    pins.trust(host)
    with device_on(host, pins) as device, pytest.raises(DeviceRefused) as refused:
        device.apply_config(desired)
    assert reason in refused.value.reason


def test_a_wrong_password_is_refused_clearly(endpoints):
    host = endpoints[2]
    pins = MemoryPins()
    pins.trust(host)
    device = CiscoXapi(Target(host.address, label="Xã Thượng Lâm"), DeviceLogin("admin", password="wrong"), pins, FAST)
    with pytest.raises(AuthenticationFailed, match="refused the login of admin"):
        device.status()


def test_first_contact_is_pending_until_a_technician_accepts_the_key(endpoints, session):
    host = endpoints[2]
    device = device_on(host, DatabasePins())
    with pytest.raises(HostKeyPending) as pending:
        device.status()
    fingerprint = host.host_key_fingerprint()
    assert pending.value.message == (f"First contact with {host.address}: fingerprint {fingerprint} awaits a "
                                     "technician's acceptance.")
    key = session.scalar(sa.select(HostKey).where(HostKey.address == host.address))
    assert (key.state, key.fingerprint, key.key_type, key.port) == (HostKeyState.PENDING, fingerprint,
                                                                     "ssh-ed25519", 22)
    with pytest.raises(HostKeyPending):  # asking again changes nothing until someone accepts
        device.status()
    hostkeys.accept(session, key, None)
    session.commit()
    assert device.status()["software_version"] == "ce9.15.3.17"


def test_a_changed_host_key_is_refused_naming_both_fingerprints_and_never_replaced(ssh_hosts, session):
    (host,) = ssh_hosts(1, "xapi")
    old = host.host_key_fingerprint()
    session.add(HostKey(address=host.address, port=22, key_type="ssh-ed25519", fingerprint=old,
                        state=HostKeyState.ACCEPTED))
    session.commit()
    with device_on(host, DatabasePins()) as device:
        assert device.status()["active_calls"] == 0
    new = host.regenerate_host_key()
    assert new != old
    device = device_on(host, DatabasePins())
    with pytest.raises(HostKeyChanged) as changed:
        device.status()
    assert (changed.value.pinned, changed.value.offered) == (old, new)
    assert old in changed.value.message and new in changed.value.message
    with pytest.raises(HostKeyChanged):
        device.status()
    keys = {k.fingerprint: k.state for k in hostkeys.keys_of(session, host.address, 22)}
    assert keys == {old: HostKeyState.ACCEPTED, new: HostKeyState.PENDING}
    # The device was replaced: a technician accepts the new key, which replaces the pin.
    (candidate,) = [k for k, pinned in hostkeys.pending_keys(session) if k.fingerprint == new]
    hostkeys.accept(session, candidate, None)
    session.commit()
    assert device.status()["software_version"]
    assert [k.fingerprint for k in hostkeys.keys_of(session, host.address, 22)] == [new]


def test_a_software_upgrade_drops_the_session_and_the_endpoint_returns_with_the_new_version(ssh_hosts):
    (host,) = ssh_hosts(1, "xapi", boot_seconds=1.5)
    pins = MemoryPins()
    pins.trust(host)
    device = device_on(host, pins)
    device.command("Dial", Number="tinh@tuyenquang.vn")
    assert device.status()["active_calls"] == 1
    device.upgrade_software("https://vcops.example/firmware/s53200ce9_16_1_2.k4.pkg", checksum="0f" * 64)
    gone = time.monotonic()
    with pytest.raises(OSError):  # nothing answers while it restarts
        socket.create_connection((host.address, 22), timeout=1).close()
    with pytest.raises(DeviceUnreachable, match="refused the connection"):
        device.status()
    status = device.wait_until_back(timeout=20, interval=0.2)
    assert time.monotonic() - gone >= 1.0
    assert status["software_version"] == "ce9.16.1.2"
    assert status["active_calls"] == 0 and status["uptime_seconds"] < 10
    assert host.read_state()["boots"] == 1
    device.close()


def test_a_device_whose_ssh_is_down_is_reported_unreachable(ssh_hosts):
    (host,) = ssh_hosts(1, "xapi")
    pins = MemoryPins()
    pins.trust(host)
    host.stop_ssh()
    with pytest.raises(DeviceUnreachable, match="refused the connection"):
        device_on(host, pins).status()
    host.start_ssh()
    assert device_on(host, pins).status()["software_version"]


def test_a_host_that_never_finishes_its_answer_times_out_instead_of_hanging(ssh_hosts):
    (host,) = ssh_hosts(1, "linux")  # a plain shell: it never says OK
    pins = MemoryPins()
    pins.trust(host)
    device = device_on(host, pins, use_key=True, timing=Timing(connect_timeout=1.5, command_timeout=1.5, keepalive=5))
    started = time.monotonic()
    with pytest.raises(DeviceTimeout, match="did not finish its answer"):
        device.status()
    assert time.monotonic() - started < 5
    device.close()


def test_a_host_that_now_offers_a_key_of_another_type_is_refused_as_changed(ssh_hosts):
    (host,) = ssh_hosts(1, "xapi")
    pin = PinnedFingerprint("ssh-ed25519", host.host_key_fingerprint())
    assert device_on(host, pin).status()["software_version"]
    rsa = host.regenerate_host_key("rsa")
    with pytest.raises(HostKeyChanged) as changed:
        device_on(host, pin).status()
    assert (changed.value.pinned, changed.value.offered) == (pin.fingerprint, rsa)
