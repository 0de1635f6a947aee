"""A simulated room system takes and places real calls: its call daemon (simulators/endpoint_calls.py) runs in
the endpoint's test host (a network namespace, tests/support/hosts.py), a SIP agent of the test plays the
bridge on the machine's end of the link, and what the room reports under xStatus is what its packets met on
that link: nftables drops show as loss, and nothing is invented."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulators import endpoint_calls
from simulators.cisco_xapi import StateStore, XapiShell, new_state
from simulators.sip import SipAgent
from tests.support import netlab
from tests.support.hosts import LabHost, host_lab

T1 = 0.1  # the bridge's SIP timer T1 here: timer B = 6.4 s


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHost]:
    """One simulated room system for the module (each test sets its state anew)."""
    with host_lab(tmp_path_factory.mktemp("call-rooms")) as lab:
        (host,) = lab.make(1, "xapi", boot_seconds=1.0)
        yield host


@pytest.fixture
def bridge(room: LabHost) -> Iterator[SipAgent]:
    """The test's bridge: a SIP agent on the machine's end of the room's link, answering whatever calls it."""
    with SipAgent(room.peer_address, 0, user="bridge", t1=T1, answer=lambda call: 200) as agent:
        yield agent


def set_room(host: LabHost, **state: Any) -> None:
    """The room's state anew (a call in progress is hung up by the daemon, which sees it gone)."""
    StateStore(host.state_path).write(new_state(serial=f"FOC{host.index:05d}SIM", **state))
    until(lambda: not host.read_state()["calls"], 5)


def until(predicate: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def xapi(host: LabHost, line: str) -> dict[str, Any]:
    """The room's answer to one xAPI line, in JSON mode (the same shell its SSH logins run)."""
    shell = XapiShell(StateStore(host.state_path))
    shell.handle("xPreferences OutputMode JSON")
    text = shell.handle(line).text
    assert text.endswith("OK\n"), text
    body = text[:text.index("** end")]
    return json.loads(body) if body.strip() else {}


def room_calls(host: LabHost) -> list[dict[str, Any]]:
    return xapi(host, "xStatus Call").get("Status", {}).get("Call", [])


def netstat(host: LabHost) -> dict[tuple[str, str], dict[str, int]]:
    """(Type, Direction) -> the channel's Netstat counters, from xStatus MediaChannels Call."""
    calls = xapi(host, "xStatus MediaChannels Call").get("Status", {}).get("MediaChannels", {}).get("Call", [])
    return {(c["Type"]["Value"], c["Direction"]["Value"]): {k: int(v["Value"]) for k, v in c["Netstat"].items()}
            for call in calls for c in call["Channel"]}


def test_a_bridge_dialling_a_room_that_answers_by_itself_gets_media_both_ways_measured_at_each_end(room, bridge):
    set_room(room)
    call = bridge.dial(f"sip:room@{room.address}", kbps=1024)
    assert call.wait("connected", timeout=5), call
    (status,) = until(lambda: [c for c in room_calls(room) if c["Status"]["Value"] == "Connected"
                               and "MediaChannels" in json.dumps(xapi(room, "xStatus MediaChannels"))], 5)
    assert (status["Direction"]["Value"], status["RemoteNumber"]["Value"]) == (
        "Incoming", f"bridge@{room.peer_address}:{bridge.port}")
    time.sleep(2)
    ours = call.stats()
    assert ours["audio"]["received_packets"] >= 80 and ours["video"]["received_packets"] >= 150
    assert ours["audio"]["lost"] == 0 and ours["audio"]["rtt_ms"] < 20
    channels = until(lambda: (n := netstat(room)) and n[("Audio", "Incoming")]["Packets"] >= 80 and n, 3)
    assert set(channels) == {("Audio", "Incoming"), ("Audio", "Outgoing"), ("Video", "Incoming"),
                             ("Video", "Outgoing")}
    assert channels[("Video", "Incoming")]["Packets"] >= 150 and channels[("Video", "Incoming")]["Loss"] == 0
    assert channels[("Audio", "Outgoing")]["Packets"] >= 80
    call.hangup()
    assert until(lambda: not room_calls(room), 5) is True
    (logged,) = room.read_state()["call_log"][-1:]
    assert (logged["direction"], logged["reason"]) == ("Incoming", "remote hangup")


@pytest.mark.parametrize(("state", "code"), [({"answer": "busy"}, 486), ({"registrar": "reject"}, 480),
                                             ({"registrar": "silent"}, 480), ({"answer": "decline"}, 603)])
def test_a_room_that_is_busy_not_registered_or_declining_refuses_the_call_with_the_sip_code(room, bridge, state,
                                                                                           code):
    set_room(room, **state)
    call = bridge.dial(f"sip:room@{room.address}")
    assert call.wait("failed", timeout=5), call
    assert call.status_code == code
    assert room_calls(room) == []


def test_a_room_already_in_a_call_answers_a_second_one_busy(room, bridge):
    set_room(room)
    first = bridge.dial(f"sip:room@{room.address}")
    assert first.wait("connected", timeout=5)
    second = bridge.dial(f"sip:room@{room.address}")
    assert second.wait("failed", timeout=5) and second.status_code == 486
    first.hangup()


def test_a_room_whose_call_daemon_is_down_is_unreachable_and_the_call_times_out_in_bounded_time(room, bridge):
    set_room(room)
    room.stop_calls()
    try:
        started = time.monotonic()
        call = bridge.dial(f"sip:room@{room.address}")
        assert call.wait("failed", timeout=15)
        elapsed = time.monotonic() - started
    finally:
        room.start_calls()
    assert call.status_code == 408
    assert elapsed <= 64 * T1 + 1.5


def test_ten_percent_of_packets_dropped_on_the_rooms_link_show_as_ten_percent_loss_in_the_rooms_call(room, bridge):
    set_room(room)
    # The bridge's 2 Mbit/s video is ~200 packets/s: in 8 s, ~1,600 reach the room's link. With p = 0.1 the
    # measured ratio's standard deviation is sqrt(0.09 / 1,600) = 0.75 points, so ±4 points is over five.
    netlab.drop_udp(room.namespace, 10)  # SIP (port 5060) spared: the call is set up, its media suffer
    try:
        call = bridge.dial(f"sip:room@{room.address}", kbps=2000)
        assert call.wait("connected", timeout=10), call
        time.sleep(8)
        channels = until(lambda: netstat(room), 3)
        ours = call.stats()
    finally:
        netlab.clear_udp(room.namespace, f"vh{room.index}b")
    video_in = channels[("Video", "Incoming")]
    expected = video_in["Packets"] + video_in["Loss"]
    assert expected >= 1000
    assert video_in["Loss"] / expected == pytest.approx(0.10, abs=0.04)
    # The last 5 s interval, which the probe agent reads first, says the same.
    interval = video_in["LastIntervalLost"] + video_in["LastIntervalReceived"]
    assert interval >= 600 and video_in["LastIntervalLost"] / interval == pytest.approx(0.10, abs=0.05)
    # Only what entered the room was dropped: the bridge received all the room sent...
    assert ours["video"]["lost"] == 0
    # ...and learnt of the room's loss from its receiver reports, as the room's outgoing channel did not suffer.
    assert ours["video"]["remote"]["lost"] / ours["video"]["sent_packets"] == pytest.approx(0.10, abs=0.04)
    assert channels[("Video", "Outgoing")]["Loss"] == 0
    call.hangup()


def test_a_room_told_over_xapi_to_dial_joins_the_bridge_and_reports_the_call_connected_with_measured_figures(
        room, bridge):
    set_room(room)
    answer = xapi(room, f'xCommand Dial Number: "bridge@{room.peer_address}:{bridge.port}" CallRate: 1024')
    call_id = int(answer["CommandResponse"]["DialResult"]["CallId"]["Value"])
    incoming = until(lambda: [c for c in bridge.calls() if c.state == "connected"], 5)
    assert incoming, bridge.calls()
    (status,) = until(lambda: [c for c in room_calls(room) if c["Status"]["Value"] == "Connected"], 5)
    assert (int(status["id"]), status["Direction"]["Value"], status["ReceiveCallRate"]["Value"]) == (
        call_id, "Outgoing", "1024")
    time.sleep(5.5)  # one whole interval of the device's Netstat
    channels = until(lambda: (n := netstat(room)) and n[("Audio", "Incoming")]["LastIntervalReceived"] >= 200
                     and n, 3)
    audio_in = channels[("Audio", "Incoming")]
    assert 230 <= audio_in["LastIntervalReceived"] <= 260 and audio_in["LastIntervalLost"] == 0  # 50 a second
    assert audio_in["Loss"] == 0 and audio_in["Packets"] >= 250
    assert audio_in["ChannelRate"] == pytest.approx(64000, rel=0.15)
    assert 0 <= audio_in["Jitter"] < 20 and 0 <= audio_in["RoundTripTime"] < 20
    assert channels[("Video", "Incoming")]["ChannelRate"] == pytest.approx((1024 - 64) * 1000 * 1200 / 1212, rel=0.2)
    assert int(status["Duration"]["Value"]) >= 0
    xapi(room, "xCommand Call Disconnect")
    (bridge_side,) = incoming
    assert bridge_side.wait("ended", timeout=5) and bridge_side.reason == "remote hangup"
    assert room_calls(room) == []


def test_a_room_that_reboots_drops_its_call_and_the_bridge_hears_the_hangup(room, bridge):
    set_room(room)
    call = bridge.dial(f"sip:room@{room.address}")
    assert call.wait("connected", timeout=5)
    assert until(lambda: room_calls(room), 5)
    # The shell's reboot, without power-cycling the host (no reboot callback): the device's calls are gone.
    XapiShell(StateStore(room.state_path)).handle("xCommand SystemUnit Boot")
    assert call.wait("ended", timeout=5) and call.reason == "remote hangup"


@pytest.mark.parametrize(("number", "proxy", "target"), [
    ("sip:8800@198.18.4.6", "", ("sip:8800@198.18.4.6", None)),
    ("8800@198.18.4.6:5070", "", ("sip:8800@198.18.4.6:5070", None)),
    ("198.18.4.6", "", ("sip:198.18.4.6", None)),
    ("8800", "198.18.4.10", ("sip:8800@198.18.4.10", ("198.18.4.10", 5060))),
    ("8800", "", None),
])
def test_what_the_user_dials_is_called_directly_or_through_the_configured_proxy(number, proxy, target):
    assert endpoint_calls.dial_target(number, proxy) == target


@pytest.mark.parametrize(("state", "others", "code"), [
    ({}, 0, 200), ({}, 1, 486), ({"answer": "busy"}, 0, 486), ({"answer": "decline"}, 0, 603),
    ({"answer": "ignore"}, 0, None), ({"registrar": "reject"}, 0, 480), ({"registrar": "silent"}, 0, 480),
    ({"config": {"SIP Mode": "Off"}}, 0, 480),
])
def test_how_a_room_answers_follows_its_state(state, others, code):
    assert endpoint_calls.answer_code(new_state(**state), others) == code
