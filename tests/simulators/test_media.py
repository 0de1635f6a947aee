"""The simulators' RTP media measure what happened to their packets, by RFC 3550: the arithmetic on sequences
worked by hand, then real streams between this machine and a probe lab's namespace (tests/support/netlab.py)
whose link drops or queues them."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simulators import media
from simulators.media import (
    MediaSession,
    ReceiverStats,
    ReportBlock,
    RtpHeader,
    SenderReport,
    audio_stream,
    open_socket,
    video_stream,
)
from tests.support import netlab as labs
from tests.support.netlab import REPO, SYSTEM_PYTHON
from tests.support.netlab import netlab as netlab

PEER_PORT = 40000


def packet(seq: int, timestamp: int = 0) -> RtpHeader:
    return RtpHeader(media.PCMU, seq % 65536, timestamp, 0x1234)


# ---------------------------------------------------------------- the arithmetic, by hand

def test_interarrival_jitter_follows_rfc_3550_a8_on_a_sequence_worked_by_hand():
    # 8 kHz audio, one packet every 20 ms (160 units). Transit times (arrival - timestamp, in units): 0 for the
    # first two, then a packet 4 ms (32 units) late, then on time again.
    #   D = |transit_i - transit_i-1|:      0,        32,              32
    #   J = J + (D - J)/16:                 0,   32/16 = 2,   2 + 30/16 = 3.875
    stats = ReceiverStats(media.AUDIO_CLOCK)
    arrivals_ms = [0, 20, 44, 60]
    for i, arrival in enumerate(arrivals_ms):
        stats.received(packet(100 + i, 160 * i), 160, arrival / 1000)
    assert stats.jitter == pytest.approx(3.875)
    assert stats.jitter_ms == pytest.approx(3.875 / 8)  # 0.484 ms
    assert stats.max_jitter == pytest.approx(3.875)


def test_loss_is_counted_right_across_the_sequence_number_wrap_and_packets_out_of_order():
    stats = ReceiverStats(media.AUDIO_CLOCK)
    # 65530, 65531, ... wrapping to 0 after 65535; 65534 and 2 never arrive; 1 comes after 3 (reordered).
    sent = [65530 + i for i in range(14)]  # up to 65543 = 7 after the wrap
    arrived = [s for s in sent if s % 65536 not in (65534, 2)]
    arrived.remove(65537)
    arrived.insert(arrived.index(65539) + 1, 65537)
    for n, seq in enumerate(arrived):
        stats.received(packet(seq, 160 * n), 160, n * 0.02)
    # The first packet is on probation (A.1): counting starts with the second one, 65531.
    assert stats.expected == 65543 - 65531 + 1 == 13
    assert stats.received_count == 11
    assert stats.lost == 2
    assert stats.extended_max == 65536 + 7  # one cycle
    assert stats.take_interval() == (13, 11, 2)
    assert stats.fraction_lost(13, 2) == (2 << 8) // 13
    for n, seq in enumerate(range(65544, 65554)):  # a clean interval after it
        stats.received(packet(seq, 160 * n), 160, n * 0.02)
    assert stats.take_interval() == (10, 10, 0)


def test_a_duplicate_is_not_mistaken_for_a_recovered_loss_nor_a_restart_for_a_huge_one():
    stats = ReceiverStats(media.AUDIO_CLOCK)
    for n, seq in enumerate([10, 11, 12, 12, 13]):
        stats.received(packet(seq), 160, n * 0.02)
    assert (stats.expected, stats.received_count, stats.lost) == (3, 4, -1)  # RFC 3550: duplicates count
    # The sender restarts far away: one packet is ignored, the second in sequence starts the count again.
    stats.received(packet(40000), 160, 1.0)
    assert stats.expected == 3
    stats.received(packet(40001), 160, 1.02)
    assert (stats.expected, stats.received_count, stats.lost) == (1, 1, 0)


def test_sender_and_receiver_reports_round_trip_through_their_wire_format():
    block = ReportBlock(ssrc=7, fraction_lost=25, cumulative_lost=-3, highest_sequence=70000, jitter=123,
                        lsr=0xABCD1234, dlsr=65536)
    report = SenderReport(ssrc=9, ntp=media.ntp_now(), rtp_timestamp=5, packets=100, octets=16000, blocks=(block,))
    data = media.pack_sr(report)
    assert media.is_rtcp(data) and media.parse_rtp(data) is None
    assert media.parse_rtcp(data + media.pack_rr(9, (block,))) == [report, (9, (block,))]


def test_a_packet_made_is_read_back_with_its_header():
    header = RtpHeader(media.H264, 65535, 0xFFFFFFFF, 0xDEADBEEF, marker=True)
    assert media.parse_rtp(media.pack_rtp(header, b"x" * 1200)) == (header, 1200)
    assert media.parse_rtp(b"\x00" * 20) is None  # not version 2


def test_streams_send_at_the_rates_of_real_calls():
    assert audio_stream().packet_rate == 50 and audio_stream().payload_bytes == 160
    video = video_stream(1920)
    assert video.payload_bytes == 1200 and video.kbps == pytest.approx(1920, rel=0.01)
    assert video_stream(1920, rate=0.1).packet_rate == pytest.approx(video.packet_rate / 10)


# ---------------------------------------------------------------- real packets

@contextlib.contextmanager
def pair(a: str, b: str, stream: media.Stream, **options: Any) -> Iterator[tuple[MediaSession, MediaSession]]:
    one = MediaSession(open_socket(a), ("0.0.0.0", 0), 1, stream, **options)
    two = MediaSession(open_socket(b), one.sock.getsockname(), 2, stream, **options)
    one.remote = two.sock.getsockname()
    try:
        yield one.start(), two.start()
    finally:
        one.stop()
        two.stop()


def test_on_a_clean_loopback_audio_arrives_at_fifty_packets_a_second_without_loss_with_a_round_trip():
    with pair("127.0.0.1", "127.0.0.1", audio_stream(), interval=1.0, rtcp_interval=0.5) as (one, two):
        time.sleep(2.3)
        stats = one.stats()
    assert stats["state"] == "running" and stats["remote_ssrc"] == 2
    assert stats["lost"] == 0 and stats["loss_ratio"] == 0.0
    assert 100 <= stats["received_packets"] <= 120
    assert stats["interval"]["seconds"] == pytest.approx(1.0, abs=0.1)
    assert 45 <= stats["interval"]["received"] <= 55
    assert stats["rate_bps"] == pytest.approx(50 * 160 * 8, rel=0.15)
    assert stats["jitter_ms"] < 5
    assert 0 <= stats["rtt_ms"] < 20
    assert stats["remote"] == {"fraction_lost": 0.0, "lost": 0, "jitter_ms": pytest.approx(0, abs=5)}


def test_a_session_whose_peer_falls_silent_ends_by_itself():
    with pair("127.0.0.1", "127.0.0.1", audio_stream(), timeout=0.6) as (one, two):
        time.sleep(0.3)
        two.stop()
        assert one.ended.wait(3)
        assert one.stats()["state"] == "timed out"


@contextlib.contextmanager
def peer_in(lab: labs.Lab, remote: tuple[str, int], kind: str, kbps: int, seconds: float
            ) -> Iterator[subprocess.Popen[str]]:
    """The other end of the stream, in the lab's namespace (PEER_PORT on its end of the link)."""
    argv = ["ip", "netns", "exec", lab.namespace, SYSTEM_PYTHON, "-m", "simulators.media",
            "--local", f"{lab.peer_address}:{PEER_PORT}", "--remote", f"{remote[0]}:{remote[1]}", "--kind", kind,
            "--kbps", str(kbps), "--seconds", str(seconds)]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 15)
        assert ready and process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""
        yield process
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=seconds + 10)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def peer_figures(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _err = process.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def test_ten_percent_of_packets_dropped_on_the_link_show_as_ten_percent_loss_both_ends(netlab):
    lab = netlab()
    # 2 Mbit/s of video: ~206 packets/s, so 7 s give ~1,400 packets; with p = 0.1 the loss ratio's standard
    # deviation is sqrt(0.09 / 1,400) < 0.8 points: ±4 points is five of them.
    labs.drop_udp(lab.namespace, 10)
    try:
        local = MediaSession(open_socket(lab.host_address), (lab.peer_address, PEER_PORT), 11, video_stream(2000))
        with peer_in(lab, local.sock.getsockname(), "video", 2000, seconds=8) as peer:
            local.start()
            time.sleep(7.5)
            ours = local.stats()
            local.stop()
            theirs = peer_figures(peer)
    finally:
        labs.clear_udp(lab.namespace, lab.ns_if)
    # What entered the namespace lost a tenth; what left it lost nothing.
    assert theirs["expected"] >= 1000
    assert theirs["loss_ratio"] == pytest.approx(0.10, abs=0.04)
    assert ours["expected"] >= 1000 and ours["lost"] == 0
    # ...and the peer's receiver reports told us so, in RTCP, as they went.
    assert ours["remote"]["lost"] / ours["sent_packets"] == pytest.approx(0.10, abs=0.04)


def stream_from(lab: labs.Lab, seconds: float, kbps: int = 2000) -> dict[str, Any]:
    """A video stream each way with the lab for `seconds`: what this end measured."""
    local = MediaSession(open_socket(lab.host_address), (lab.peer_address, PEER_PORT), 12, video_stream(kbps),
                         rtcp_interval=0.5)
    with peer_in(lab, local.sock.getsockname(), "video", kbps, seconds=seconds + 0.5):
        local.start()
        time.sleep(seconds)
        figures = local.stats()
        local.stop()
    return figures


@contextlib.contextmanager
def bursts_from(lab: labs.Lab, burst_bytes: int, every: float) -> Iterator[None]:
    """Other traffic leaving the lab's namespace: `burst_bytes` of UDP at once, every `every` seconds."""
    script = ("import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"data = bytes(1200)\nprint('ready', flush=True)\nwhile True:\n"
              f"    for _ in range({burst_bytes // 1200}):\n        s.sendto(data, ({lab.host_address!r}, 9))\n"
              f"    time.sleep({every})\n")
    process = subprocess.Popen(["ip", "netns", "exec", lab.namespace, SYSTEM_PYTHON, "-c", script],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_rate_limit_below_the_stream_keeps_its_queue_full_so_the_round_trip_grows_by_the_queue(netlab):
    lab = netlab()
    clean = stream_from(lab, 3)
    # What leaves the namespace is held to 1 Mbit/s behind a 100 ms queue; the 2 Mbit/s stream keeps it full, so
    # each packet (and each RTCP report) waits about 100 ms, and half the stream is dropped at the queue's tail.
    labs.limit_rate(lab.namespace, lab.ns_if, kbit=1000, queue_ms=100)
    try:
        queued = stream_from(lab, 5)
    finally:
        labs.clear_udp(lab.namespace, lab.ns_if)
    assert clean["rtt_ms"] < 10 and clean["lost"] == 0
    assert queued["rtt_ms"] == pytest.approx(100, abs=35)
    assert queued["loss_ratio"] == pytest.approx(0.5, abs=0.15)
    assert queued["rate_bps"] == pytest.approx(1000 * 1000 * 1200 / 1242, rel=0.15)  # what the limit lets by


def test_bursts_of_other_traffic_through_a_rate_limit_make_the_jitter_of_a_stream_rise(netlab):
    lab = netlab()
    clean = stream_from(lab, 4, kbps=1000)
    # 2 Mbit/s out of the namespace; 60 kB of other traffic every 0.4 s takes 240 ms to drain, and the stream's
    # packets behind it wait from 240 ms down to nothing, each ~5 ms less than the one before: their transit
    # times vary, which A.8 measures (on a clean link it stays near zero).
    labs.limit_rate(lab.namespace, lab.ns_if, kbit=2000, queue_ms=400)
    try:
        with bursts_from(lab, 60_000, every=0.4):
            bursty = stream_from(lab, 5, kbps=1000)
    finally:
        labs.clear_udp(lab.namespace, lab.ns_if)
    assert clean["jitter_ms"] < 1.0
    assert bursty["jitter_ms"] > clean["jitter_ms"] + 3
    assert bursty["max_jitter_ms"] > 10
    assert bursty["interval"]["loss_ratio"] < 0.05  # queued, hardly dropped
