"""The room-system simulator behaves like the device's xAPI shell, driven here without SSH (no root needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from simulators import cisco_xapi, endpoint_calls
from simulators.cisco_xapi import StateStore, XapiShell, new_state
from simulators.sip import SipAgent
from tests.support.hosts import SIMULATOR


@pytest.fixture
def store(tmp_path):
    store = StateStore(tmp_path / "xapi.json")
    store.write(new_state(serial="FOC123", version="ce9.15.3.17"))
    return store


def shell(store, **kwargs) -> XapiShell:
    return XapiShell(store, **kwargs)


def lines(text: str) -> list[str]:
    return text.splitlines()


def json_body(text: str) -> dict:
    body = text[:text.index("** end")]
    return json.loads(body)


def test_a_technician_typing_on_the_shell_gets_the_device_greeting_and_answers_ending_in_end_and_ok(store):
    run = subprocess.run([sys.executable, str(SIMULATOR), "--state", str(store.path)], input=(
        'xStatus SystemUnit Software Version\nxConfiguration SIP DisplayName: "Xã Lăng Can"\n'
        "xConfiguration SIP DisplayName\nbye\n").encode(), capture_output=True, timeout=20, check=True)
    out = run.stdout.decode()
    assert out.startswith("Welcome to")
    assert "Cisco Codec Release ce9.15.3.17" in out and "*r Login successful" in out
    assert '*s SystemUnit Software Version: "ce9.15.3.17"\n** end\n\nOK\n' in out
    assert '*c xConfiguration SIP DisplayName: "Xã Lăng Can"\n** end\n\nOK\n' in out
    assert out.rstrip().endswith("Goodbye.")


def test_in_json_mode_a_configuration_reads_back_as_the_device_nests_it(store):
    sh = shell(store)
    assert sh.handle("xPreferences OutputMode JSON").text == "\nOK\n"
    assert lines(sh.handle("xConfiguration Network 1 QoS Diffserv Video: 34").text)[-2:] == ["", "OK"]
    reply = sh.handle("xConfiguration Network[1] QoS Diffserv Video").text
    assert reply.endswith("** end\n\nOK\n")
    assert json_body(reply) == {"Configuration": {"Network": [
        {"id": "1", "QoS": {"Diffserv": {"Video": {"Value": "34"}}}}]}}


@pytest.mark.parametrize(("line", "reason"), [
    ("xConfiguration SIP Nonsense: 1", "No match on address expression."),
    ("xConfiguration Conference DefaultCall Rate: 9000", "Value out of range: 9000 (expected 64..6000)"),
    ("xConfiguration Conference DefaultCall Rate: fast", "Not a number: 'fast' (expected 64..6000)"),
    ("xConfiguration SIP Mode: Maybe", "Invalid value: 'Maybe' (expected one of Off, On)"),
    ("xConfiguration Time Zone: Asia/Sai_Gon", "Invalid value: 'Asia/Sai_Gon' (not in the value space; ask with ?)"),
    ("xConfiguration SystemUnit Name: " + "x" * 51, "Text too long: 51 characters (at most 50)"),
    ("xConfiguration SIP: x", "No match on address expression."),
])
def test_unknown_paths_and_bad_values_are_refused_with_error_and_the_reason(store, line, reason):
    sh = shell(store)
    before = store.read()
    terminal = sh.handle(line).text
    assert terminal.endswith("** end\n\nERROR\n")
    assert f'*r Configuration Reason: "{reason}"' in terminal
    sh.handle("xPreferences OutputMode JSON")
    body = json_body(sh.handle(line).text)["CommandResponse"]["Configuration"]
    assert body["status"] == "Error" and body["Reason"]["Value"] == reason
    assert store.read()["config"] == before["config"]  # nothing was written


def test_values_are_read_the_device_way_case_insensitive_paths_canonical_choices(store):
    sh = shell(store)
    assert sh.handle("xconf time zone: asia/ho_chi_minh").text.endswith("OK\n")
    assert sh.handle("xconf networkservices ntp mode: manual").text.endswith("OK\n")
    out = sh.handle("xConfiguration Time Zone").text
    assert "*c xConfiguration Time Zone: Asia/Ho_Chi_Minh" in out
    assert "*c xConfiguration NetworkServices NTP Mode: Manual" in sh.handle("xConfiguration NetworkServices").text
    assert "*? xConfiguration Conference DefaultCall Rate: <64..6000>" in sh.handle(
        "xConfiguration Conference DefaultCall Rate ?").text


def test_sip_registration_follows_the_sip_settings(store):
    sh = shell(store)
    assert "*s SIP Registration 1 Status: Inactive" in sh.handle("xStatus SIP Registration").text
    sh.handle('xConfiguration SIP URI: "xa.langcan@tuyenquang.vn"')
    sh.handle("xConfiguration SIP Proxy 1 Address: sip.tuyenquang.vn")
    out = sh.handle("xStatus SIP Registration").text
    assert "*s SIP Registration 1 Status: Registered" in out
    assert '*s SIP Registration 1 URI: "xa.langcan@tuyenquang.vn"' in out
    sh.handle("xConfiguration SIP Mode: Off")
    assert "*s SIP Registration 1 Status: Inactive" in sh.handle("xStatus SIP Registration").text


def test_a_call_shows_in_the_status_until_it_is_disconnected(store):
    sh = shell(store)
    sh.handle("xConfiguration Conference DefaultCall Rate: 2048")
    dial = sh.handle('xCommand Dial Number: "tinh@tuyenquang.vn"').text
    assert "*r DialResult (status=OK): " in dial and "*r DialResult CallId: 1" in dial
    status = sh.handle("xStatus Call").text
    # No call daemon here (simulators/endpoint_calls.py places calls): the call waits, dialling.
    assert "*s Call 1 Status: Dialling" in status and "*s Call 1 TransmitCallRate: 2048" in status
    assert "NumberOfActiveCalls: 1" in sh.handle("xStatus SystemUnit State").text
    busy = sh.handle("xCommand Dial Number: other@tuyenquang.vn").text
    assert busy.endswith("ERROR\n") and "Maximum number of calls reached" in busy
    assert sh.handle("xCommand Call Disconnect CallId: 1").text.endswith("OK\n")
    assert sh.handle("xStatus Call").text == "** end\n\nOK\n"
    assert "No active call" in sh.handle("xCommand Call Disconnect").text


def test_commands_check_their_parameters(store):
    sh = shell(store)
    assert "Missing parameter: Number" in sh.handle("xCommand Dial").text
    assert "Unknown parameter: Speed" in sh.handle("xCommand Dial Number: a Speed: 3").text
    assert "Unknown command" in sh.handle("xCommand Teleport Now").text
    assert sh.handle("xfly").text == "Command not recognized.\nERROR\n"
    assert "Invalid URL" in sh.handle("xCommand SystemUnit SoftwareUpgrade URL: file.pkg").text
    assert "Invalid checksum" in sh.handle(
        "xCommand SystemUnit SoftwareUpgrade URL: http://fw.example/s53200ce9_16_1_2.k4.pkg Checksum: abc").text
    assert "No software version" in sh.handle("xCommand SystemUnit SoftwareUpgrade URL: http://fw.example/a.pkg").text
    assert store.read()["software"]["version"] == "ce9.15.3.17"


def test_a_software_upgrade_records_the_version_of_the_file_and_reboots(store):
    reboots = []
    sh = shell(store, reboot=lambda: reboots.append(1), boot_seconds=2)
    sh.handle('xCommand Dial Number: "a@b"')
    checksum = "ab" * 64
    reply = sh.handle(f"xCommand SystemUnit SoftwareUpgrade URL: https://vcops.example/firmware/"
                      f"cmterm-s53200ce9_16_1_2.k4.cop.sgn Checksum: {checksum}")
    assert reply.text.endswith("** end\n\nOK\n") and reply.ended, "the session drops after the answer"
    assert reboots == [1]
    state = store.read()
    assert state["software"]["version"] == "ce9.16.1.2" and state["calls"] == [] and state["boots"] == 1
    fresh = shell(store)
    assert "Cisco Codec Release ce9.16.1.2" in fresh.welcome()
    assert "*s SystemUnit Uptime: 0" in fresh.handle("xStatus SystemUnit Uptime").text  # still booting


def test_two_sessions_see_one_device(store):
    first, second = shell(store), shell(store)
    first.handle("xConfiguration SystemUnit Name: Phong-hop-1")
    assert '"Phong-hop-1"' in second.handle("xConfiguration SystemUnit Name").text


@pytest.mark.parametrize(("url", "version"), [
    ("http://fw/s53200ce9_15_3_17.k4.pkg", "ce9.15.3.17"),
    ("https://fw/a/cmterm-s53200ce9_16_1_2.k4.cop.sgn", "ce9.16.1.2"),
    ("https://fw/RoomOS_11.14.1.5.pkg", "roomos11.14.1.5"),
])
def test_the_version_is_read_from_the_upgrade_file_name(url, version):
    assert cisco_xapi.version_from_url(url) == version


@pytest.mark.parametrize(("registrar", "status", "reason", "proxy"), [
    ("accept", "Registered", "", "Active"),
    ("reject", "Failed", "403 Forbidden", "AuthenticationFailed"),
    ("silent", "Failed", "Timeout: no answer from the proxy", "Timeout"),
])
def test_the_registration_shows_how_the_registrar_answered(tmp_path, registrar, status, reason, proxy):
    store = StateStore(tmp_path / "xapi.json")
    store.write(new_state(registrar=registrar, config={"SIP URI": "xa.langcan@tuyenquang.vn",
                                                       "SIP Proxy 1 Address": "sip.tuyenquang.vn"}))
    out = shell(store).handle("xStatus SIP").text
    assert f"*s SIP Registration 1 Status: {status}" in out
    assert f'*s SIP Registration 1 Reason: "{reason}"' in out
    assert f"*s SIP Proxy 1 Status: {proxy}" in out


def test_a_call_reports_its_media_channels_with_the_figures_measured_on_its_packets(store):
    sh = shell(store)
    assert sh.handle("xStatus MediaChannels").text == "** end\n\nOK\n"  # no call: nothing, not an error
    # The call daemon of the device, and a bridge answering it, on this machine's loopback (no root needed).
    with endpoint_calls.running(store, "127.0.0.1"), SipAgent("127.0.0.1", 0, answer=lambda call: 200) as bridge:
        sh.handle(f'xCommand Dial Number: "tinh@127.0.0.1:{bridge.port}" CallRate: 1024')
        assert _until(lambda: "*s Call 1 Status: Connected" in sh.handle("xStatus Call").text, 5)
        time.sleep(2)
        sh.handle("xPreferences OutputMode JSON")
        assert _until(lambda: _audio_in(sh)["Packets"] >= 80, 3)
        channels = json_body(sh.handle("xStatus MediaChannels Call").text)["Status"]["MediaChannels"]["Call"][0][
            "Channel"]
        kinds = sorted((c["Type"]["Value"], c["Direction"]["Value"]) for c in channels)
        assert kinds == [("Audio", "Incoming"), ("Audio", "Outgoing"), ("Video", "Incoming"), ("Video", "Outgoing")]
        netstat = _audio_in(sh)
        (answered,) = bridge.calls()
        sent_to_us = answered.stats()["audio"]["sent_packets"]
        # What the bridge sent is what arrived (50 a second), counted by RFC 3550: nothing lost on loopback.
        assert netstat["Loss"] == 0 and 80 <= netstat["Packets"] <= sent_to_us
        assert netstat["LastIntervalLost"] == 0 and netstat["LastIntervalReceived"] >= 80
        assert 0 <= netstat["Jitter"] < 20 and netstat["Bytes"] == 160 * netstat["Packets"]
        sh.handle("xCommand Call Disconnect")
        assert answered.wait("ended", timeout=5) and answered.reason == "remote hangup"
    assert json_body(sh.handle("xStatus MediaChannels").text) == {"Status": {}}


def _audio_in(sh: XapiShell) -> dict[str, int]:
    reply = json_body(sh.handle("xStatus MediaChannels Call").text)
    calls = reply.get("Status", {}).get("MediaChannels", {}).get("Call", [])
    for channel in (c for call in calls for c in call["Channel"]):
        if (channel["Type"]["Value"], channel["Direction"]["Value"]) == ("Audio", "Incoming"):
            return {name: int(value["Value"]) for name, value in channel["Netstat"].items()}
    return {"Packets": 0}


def _until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())
