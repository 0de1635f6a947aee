"""The ICMP engine measured against real links: probe labs (network namespaces, tests/netlab.py) that are taken
down, lose packets (nftables) or answer late (a scripted responder), and iputils ping as the reference."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import textwrap

import pytest

from app.monitoring.agent.icmp import EchoResult, jitter, ping_many
from tests.support.netlab import REPO, lab

MS = 0.001


def measure(addresses: list[str], *, count: int = 20, interval: float = 0.01, timeout: float = 1.0,
            concurrency: int = 256) -> dict[str, EchoResult]:
    return asyncio.run(ping_many(addresses, count=count, interval=interval, timeout=timeout,
                                 concurrency=concurrency))


def test_statistics_of_a_series_are_those_of_its_replies() -> None:
    result = EchoResult("192.0.2.1", [0.040, None, 0.060, 0.040, None])
    assert (result.sent, result.received, result.lost, result.loss_ratio) == (5, 3, 2, 0.4)
    assert (result.median, result.minimum, result.maximum) == (0.040, 0.040, 0.060)
    assert result.jitter == pytest.approx(0.020)  # |60-40| and |40-60|, lost echoes skipped
    assert jitter([None, 0.010]) is None
    silent = EchoResult("192.0.2.1", [None] * 3)
    assert (silent.loss_ratio, silent.median, silent.jitter) == (1.0, None, None)


def test_operator_sees_a_link_that_is_down_as_every_echo_lost(tmp_path) -> None:
    with lab(1, tmp_path) as link:
        address = link.addresses[0]
        link.set_down()
        down = measure([address])[address]
        assert (down.sent, down.lost, down.loss_ratio) == (20, 20, 1.0)  # not sent is lost, never skipped
        assert down.median is None
        assert down.error  # the reason the echoes could not leave (no route to host)
        link.set_up()
        up = measure([address])[address]
        assert (up.sent, up.lost) == (20, 0)


def test_twenty_percent_loss_is_measured_within_six_points(tmp_path) -> None:
    with lab(50, tmp_path) as link:
        link.drop_icmp(20)
        results = measure(link.addresses, count=20, interval=0.01, timeout=0.5)
    sent = sum(result.sent for result in results.values())
    lost = sum(result.lost for result in results.values())
    assert sent == 1000
    assert abs(lost / sent - 0.20) <= 0.06, f"{lost} of {sent} echoes measured lost"


def test_a_link_with_fifty_milliseconds_of_delay_is_measured_at_fifty(tmp_path) -> None:
    with lab(1, tmp_path) as link:
        address = link.addresses[0]
        link.start_responder(delays_ms=[50])
        result = measure([address], interval=0.02)[address]
    assert result.lost == 0
    assert abs(result.median - 50 * MS) <= 2 * MS, result.rtts


def test_alternating_delays_show_as_median_and_jitter(tmp_path) -> None:
    with lab(1, tmp_path) as link:
        address = link.addresses[0]
        link.start_responder(delays_ms=[40, 60])
        result = measure([address], interval=0.02)[address]
    assert result.lost == 0
    assert abs(result.median - 50 * MS) <= 2 * MS, result.rtts
    assert abs(result.jitter - 20 * MS) <= 2 * MS, result.rtts
    assert abs(result.minimum - 40 * MS) <= 2 * MS and abs(result.maximum - 60 * MS) <= 5 * MS, result.rtts


def test_a_reply_later_than_the_timeout_is_lost(tmp_path) -> None:
    with lab(1, tmp_path) as link:
        address = link.addresses[0]
        link.start_responder(delays_ms=[30, 300])
        result = measure([address], count=10, interval=0.02, timeout=0.15)[address]
    assert result.lost == 5, result.rtts  # every second reply, the 300 ms ones
    assert all(rtt is None for rtt in result.rtts[1::2]), result.rtts
    assert abs(result.median - 30 * MS) <= 2 * MS, result.rtts


def test_late_replies_to_an_earlier_step_are_not_taken_for_this_one(tmp_path) -> None:
    """The replies to a step that timed out arrive during the next step, on the same machine, to the same
    address, with sequence numbers the next step uses again: they must not count as its replies."""
    with lab(1, tmp_path) as link:
        address = link.addresses[0]
        link.start_responder(delays_ms=[100])

        async def two_steps() -> tuple[EchoResult, EchoResult]:
            first = await ping_many([address], count=10, interval=0.01, timeout=0.02, concurrency=1)
            second = await ping_many([address], count=10, interval=0.01, timeout=1.0, concurrency=1)
            return first[address], second[address]

        first, second = asyncio.run(two_steps())
    assert first.lost == 10
    assert second.lost == 0
    assert second.minimum >= 98 * MS, second.rtts  # a late reply of the first step would read ~0-90 ms


def ping_round_trips(address: str, count: int) -> list[float]:
    """Round trips (seconds) of iputils ping, one per reply line ("... time=0.041 ms")."""
    output = subprocess.run(["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", address],
                            capture_output=True, text=True, timeout=60, check=False).stdout
    return [float(ms) * MS for ms in re.findall(r" time=([\d.]+) ms", output)]


@pytest.mark.skipif(shutil.which("ping") is None, reason="iputils-ping is not installed: apt-get install iputils-ping")
def test_round_trip_on_a_plain_host_agrees_with_ping(tmp_path) -> None:
    with lab(1, tmp_path) as host:
        address = host.addresses[0]
        reference = ping_round_trips(address, 100)
        ours = measure([address], count=100, interval=0.01)[address]
    assert len(reference) == 100 and ours.lost == 0
    assert abs(ours.median - statistics.median(reference)) <= 0.2 * MS, (ours.median, statistics.median(reference))


def test_two_hundred_addresses_at_once_are_all_answered(tmp_path) -> None:
    with lab(200, tmp_path) as link:
        everyone = measure(link.addresses, count=5, interval=0.02, concurrency=256)
        # Fewer places than addresses: they take turns, and still every echo is answered.
        in_turns = measure(link.addresses, count=3, interval=0.01, concurrency=40)
    for results, count in ((everyone, 5), (in_turns, 3)):
        assert sorted(results) == sorted(link.addresses)
        lossy = {address: result.rtts for address, result in results.items() if result.lost}
        assert not lossy, f"false loss on {len(lossy)} addresses: {dict(list(lossy.items())[:3])}"
        assert all(result.sent == count for result in results.values())
        assert max(result.maximum for result in results.values()) < 0.5  # a veth: well under a second


def test_unusable_addresses_are_reported_lost_with_the_reason() -> None:
    # (a name the resolver refuses without asking a DNS server: no traffic leaves the machine)
    results = measure(["::1", "bad name!"], count=2, interval=0.01, timeout=0.1)
    assert results["::1"].loss_ratio == 1.0 and "IPv6" in results["::1"].error
    assert results["bad name!"].loss_ratio == 1.0 and "bad name!" in results["bad name!"].error


def test_bad_settings_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="interval"):
        measure(["127.0.0.1"], interval=0)
    with pytest.raises(ValueError, match="count"):
        measure(["127.0.0.1"], count=0)


# An agent without CAP_NET_RAW (root with the capability dropped), in the lab's namespace, pings an address of
# that namespace: `ping_group_range` belongs to the namespace, so the machine's setting stays untouched.
UNPRIVILEGED = textwrap.dedent("""
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from app.monitoring.agent.icmp import IcmpPermissionError, ping_many
    try:
        result = asyncio.run(ping_many([sys.argv[2]], count=5, interval=0.01, timeout=1, concurrency=1))
        print(json.dumps({"lost": result[sys.argv[2]].lost}))
    except IcmpPermissionError as exc:
        print(json.dumps({"error": str(exc)}))
""")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is needed to drop CAP_NET_RAW")
def test_an_agent_without_raw_sockets_uses_ping_sockets_or_says_what_it_needs(tmp_path) -> None:
    with lab(1, tmp_path) as host:
        address = host.addresses[0]

        def run_unprivileged() -> dict:
            done = host.run("setpriv", "--bounding-set=-net_raw", "--", sys.executable, "-c", UNPRIVILEGED,
                            str(REPO), address)
            return json.loads(done.stdout)

        host.run("sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0")  # nobody may: the default
        refused = run_unprivileged()
        host.run("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 0")  # root's group may
        allowed = run_unprivileged()
    assert "CAP_NET_RAW" in refused["error"] and "ping_group_range" in refused["error"]
    assert allowed == {"lost": 0}
