"""The Cisco profile speaks the xAPI the way VCOps needs it: status, configuration with check mode and diff,
commands, and the device's refusals as errors with its reason. Here through a pipe to the simulator (no
root); tests/devices/test_ssh_endpoints.py does the same over SSH."""

from __future__ import annotations

import time

import pytest

from app.devices.profile import (
    DeviceError,
    DeviceLogin,
    DeviceProfile,
    DeviceRefused,
    Health,
    NotSupported,
    Target,
    profile_class,
    supported_vendors,
)
from app.devices.vendors.cisco import CiscoXapi, flatten, media_quality, native_settings, quote
from simulators import endpoint_calls
from simulators.cisco_xapi import StateStore
from simulators.sip import SipAgent

PROVINCE = {
    "display_name": "UBND xã Lăng Can",
    "sip_uri": "xa.langcan@tuyenquang.vn",
    "sip_proxy": "sip.tuyenquang.vn",
    "ntp_servers": ["ntp1.tuyenquang.vn", "ntp2.tuyenquang.vn"],
    "timezone": "Asia/Ho_Chi_Minh",
    "call_rate_kbps": 2048,
    "video_dscp": 34,
}


def test_endpoints_of_vendor_cisco_get_the_cisco_profile_whatever_the_spelling():
    assert profile_class("Cisco") is CiscoXapi
    assert profile_class(" cisco ") is CiscoXapi
    assert "Cisco" in supported_vendors()
    with pytest.raises(NotSupported, match="Polycom"):
        profile_class("Polycom")


def test_the_status_reads_version_registration_and_calls(piped_device):
    device = piped_device(serial="FOC42", version="ce9.15.3.17")
    status = device.status()
    assert status["software_version"] == "ce9.15.3.17"
    assert status["serial"] == "FOC42"
    assert status["sip_registration"] == "Inactive"
    assert status["active_calls"] == 0 and status["calls"] == []
    assert isinstance(status["uptime_seconds"], int)


def test_check_mode_shows_the_diff_and_changes_nothing(piped_device):
    device = piped_device()
    change = device.apply_config(PROVINCE, check=True)
    assert change.changed
    assert change.diff["after"]["SIP DisplayName"] == "UBND xã Lăng Can"
    assert change.diff["before"]["SIP DisplayName"] == ""
    assert change.diff["after"]["Network 1 QoS Diffserv Video"] == "34"
    assert "Network 1 QoS Mode" not in change.diff["after"]  # already Diffserv: not a change
    assert StateStore(device.state_path).read()["config"] == {}


def test_applying_a_configuration_sets_it_and_a_second_run_changes_nothing(piped_device):
    device = piped_device()
    first = device.apply_config(PROVINCE)
    assert first.changed
    config = device.get_config()
    assert config["SIP DisplayName"] == "UBND xã Lăng Can"
    assert config["NetworkServices NTP Mode"] == "Manual"
    assert config["NetworkServices NTP Server 2 Address"] == "ntp2.tuyenquang.vn"
    assert config["Conference DefaultCall Rate"] == "2048"
    assert config["Time Zone"] == "Asia/Ho_Chi_Minh"
    assert device.status()["sip_registration"] == "Registered"
    second = device.apply_config(PROVINCE)
    assert not second.changed and second.diff == {"before": {}, "after": {}}


def test_native_paths_are_accepted_and_matched_whatever_their_case(piped_device):
    device = piped_device()
    assert device.apply_config({"sip displayname": "Phòng họp tầng 2"}).changed
    assert not device.apply_config({"SIP DisplayName": "Phòng họp tầng 2"}).changed
    assert device.get_config("SIP DisplayName") == {"SIP DisplayName": "Phòng họp tầng 2"}


@pytest.mark.parametrize(("desired", "reason"), [
    ({"SIP Nonsense": "x"}, "No match on address expression. (Configuration/SIP/Nonsense)"),
    ({"call_rate_kbps": 9000}, "Value out of range: 9000 (expected 64..6000)"),
    ({"timezone": "Asia/Sai_Gon"}, "Invalid value: 'Asia/Sai_Gon'"),
    ({"system_name": "x" * 60}, "Text too long: 60 characters (at most 50)"),
])
def test_the_device_refusal_reaches_the_caller_with_the_device_reason(piped_device, desired, reason):
    device = piped_device()
    with pytest.raises(DeviceRefused) as refused:
        device.apply_config(desired)
    assert reason in refused.value.reason
    assert reason in refused.value.message and refused.value.request.startswith("xConfiguration ")


def test_a_refusal_half_way_says_what_the_device_already_took(piped_device):
    device = piped_device()
    with pytest.raises(DeviceRefused) as refused:
        device.apply_config({"display_name": "Xã Thượng Lâm", "call_rate_kbps": 99999})
    assert "already applied: SIP DisplayName" in refused.value.message


def test_check_mode_refuses_a_path_the_device_does_not_have(piped_device):
    with pytest.raises(NotSupported, match="SIP Nonsense"):
        piped_device().apply_config({"SIP Nonsense": "x"}, check=True)


def test_settings_that_are_neither_common_nor_native_are_refused_before_anything_is_sent():
    with pytest.raises(NotSupported, match="colour"):
        native_settings({"colour": "blue"})
    with pytest.raises(NotSupported, match="at most 3"):
        native_settings({"ntp_servers": ["a", "b", "c", "d"]})


def test_a_value_can_never_smuggle_a_second_command(piped_device):
    device = piped_device()
    with pytest.raises(DeviceError, match="single line"):
        device.apply_config({"display_name": 'x"\nxCommand SystemUnit Boot'})
    with pytest.raises(DeviceError, match="not an xAPI path"):
        device.get_config("SIP\nxCommand SystemUnit Boot")
    with pytest.raises(DeviceError, match="parameter name"):
        device.command("Dial", **{"Number: x\nxCommand": "y"})
    assert quote('Xã "Lăng" Can') == '"Xã \\"Lăng\\" Can"'
    assert quote("sip.tuyenquang.vn") == "sip.tuyenquang.vn"


def test_commands_return_their_result_and_a_call_shows_in_the_status(piped_device):
    device = piped_device()
    result = device.command("Dial", Number="tinh@tuyenquang.vn", CallRate=1920)
    assert result == {"CallId": "1", "ConferenceId": "1"}
    status = device.status()
    assert status["active_calls"] == 1
    # No call daemon behind the piped device (simulators/endpoint_calls.py places calls): the call is dialling.
    assert status["calls"] == [{"id": 1, "remote": "tinh@tuyenquang.vn", "status": "Dialling", "rate_kbps": 1920}]
    device.command("Call Disconnect", CallId=1)
    assert device.status()["active_calls"] == 0
    with pytest.raises(DeviceRefused, match="No active call"):
        device.command("Call Disconnect")


def test_flatten_reads_numbered_nodes_and_values():
    tree = {"Network": [{"id": "1", "QoS": {"Diffserv": {"Video": {"Value": "34"}}}}], "SIP": {"URI": {"Value": "a"}}}
    assert flatten(tree) == {"Network 1 QoS Diffserv Video": "34", "SIP URI": "a"}


def test_ntp_servers_may_come_as_a_list_or_as_comma_separated_text():
    as_list = native_settings({"ntp_servers": ["ntp1.tuyenquang.vn", "ntp2.tuyenquang.vn"]})
    assert native_settings({"ntp_servers": "ntp1.tuyenquang.vn, ntp2.tuyenquang.vn"}) == as_list
    assert as_list["NetworkServices NTP Server 3 Address"] == ""
    assert native_settings({"ntp_servers": []})["NetworkServices NTP Mode"] == "Auto"


SIP_SET = {"SIP URI": "xa.langcan@tuyenquang.vn", "SIP Proxy 1 Address": "sip.tuyenquang.vn"}


def test_health_tells_registered_and_idle_without_call_figures(piped_device):
    health = piped_device(config=SIP_SET).health()
    assert health == Health(registered=True, in_call=False, call_loss_ratio=None, call_jitter=None,
                            registration="Registered")


@pytest.mark.parametrize(("state", "word"), [({"config": SIP_SET, "registrar": "reject"}, "Failed"),
                                             ({}, "Inactive")])
def test_health_tells_an_endpoint_that_is_not_registered_with_the_device_word(piped_device, state, word):
    health = piped_device(**state).health()
    assert (health.registered, health.registration) == (False, word)


def test_health_in_a_call_reports_the_loss_and_jitter_measured_on_the_incoming_media(piped_device):
    device = piped_device(config=SIP_SET)
    # The device's call daemon and a bridge answering it, on this machine's loopback: a real call, no loss.
    with endpoint_calls.running(StateStore(device.state_path), "127.0.0.1"), \
            SipAgent("127.0.0.1", 0, answer=lambda call: 200) as bridge:
        device.command("Dial", Number=f"tinh@127.0.0.1:{bridge.port}", CallRate=1920)
        deadline = time.monotonic() + 5
        while not (bridge.calls() and bridge.calls()[0].state == "connected") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # the daemon writes its figures every second
        health = device.health()
        assert health.registered and health.in_call
        assert health.call_loss_ratio == 0.0
        assert health.call_jitter is not None and 0 <= health.call_jitter < 0.02
        device.command("Call Disconnect")
        assert device.health().in_call is False


def test_media_quality_prefers_the_last_interval_and_ignores_outgoing_channels():
    incoming = {"Direction": "Incoming", "Netstat Loss": "900", "Netstat Packets": "100", "Netstat Jitter": "12",
                "Netstat LastIntervalLost": "1", "Netstat LastIntervalReceived": "99"}
    outgoing = {"Direction": "Outgoing", "Netstat Jitter": "80", "Netstat LastIntervalLost": "50",
                "Netstat LastIntervalReceived": "50"}
    flat = {f"MediaChannels Call 1 Channel {n} {name}": value
            for n, fields in ((7, incoming), (8, outgoing)) for name, value in fields.items()}
    assert media_quality(flat) == (pytest.approx(0.01), pytest.approx(0.012))
    assert media_quality({}) == (None, None)


class OtherVendor(DeviceProfile):
    """A second vendor written with status() only, as a new profile module would start."""

    vendor = "Other"

    def status(self):
        return {"sip_registration": "Registered", "active_calls": 1}

    def get_config(self, path=""):
        return {}

    def apply_config(self, desired, check=False):
        raise NotSupported("no")

    def command(self, name, **params):
        return {}

    def reboot(self):
        pass

    def upgrade_software(self, url, checksum=""):
        pass

    def close(self):
        pass


def test_a_second_vendor_gets_health_from_its_status_without_writing_more():
    health = OtherVendor(Target("192.0.2.1"), DeviceLogin("admin", password="x"), None).health()
    assert (health.registered, health.in_call, health.call_loss_ratio, health.registration) == (
        True, True, None, "Registered")
