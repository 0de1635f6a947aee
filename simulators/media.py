"""RTP media over UDP with RFC 3550 statistics, measured on packets that really crossed the network.

A test and benchmark tool (the simulated bridge and endpoints carry their calls' media with it), not part of the
app; only the standard library is used, so any Python 3.11 in a test host runs it.

- `Stream`: what one m-line of a call sends: `audio_stream()` (50 packets/s of 20 ms, PCMU at 8 kHz) or
  `video_stream(kbps)` (~1200-byte packets at 90 kHz, as many per second as fill the bitrate). `rate` scales the
  packet rate down (the 150-site benchmark uses 0.1): the timestamps stay real-time, so jitter and loss still
  mean what they mean.
- `MediaSession(sock, remote, ssrc, stream)`: sends the stream to `remote` from `sock` and receives the peer's
  on the same socket (RTP and RTCP multiplexed on one port, RFC 5761, `a=rtcp-mux` in the SDP), in a thread of
  its own: `start()`, `stop()`, `stats()`. Every `rtcp_interval` seconds it sends a sender report (SR) with a
  report block on the peer's stream (fraction and cumulative lost, extended highest sequence number, jitter,
  LSR and DLSR, RFC 3550 §6.4), so each side measures the round trip (A - LSR - DLSR) and learns what the peer
  received of its own stream. It ends by itself when nothing has come from the peer for `timeout` seconds
  (`ended` is set, `end_reason` says why).
- Times are taken where the network begins and ends: a packet's RTP timestamp is the moment it is sent, its
  arrival the kernel's receive time (SO_TIMESTAMPNS), so the figures are the network's, not this process's
  scheduling on a busy machine.
- `ReceiverStats`: RFC 3550 appendix A.1 (sequence validation, wrap-around), A.3 (expected, lost, cumulative
  and per interval) and A.8 (interarrival jitter, in timestamp units and in ms) for one source; usable alone.

`stats()` returns a dict (all numbers; None where nothing is measured yet):

    {"kind": "audio"|"video", "ssrc": int, "remote_ssrc": int|None, "state": "running"|"stopped"|"timed out",
     "sent_packets", "sent_bytes",                                # RTP we sent (payload octets, as SR counts)
     "received_packets", "received_bytes", "expected", "lost",    # of the peer's stream, since it began (A.3)
     "loss_ratio", "jitter_ms", "max_jitter_ms", "rtt_ms",
     "rate_bps",                                                  # received bitrate over the last interval
     "interval": {"seconds", "expected", "received", "lost", "loss_ratio", "jitter_ms", "max_jitter_ms",
                  "rate_bps", "sent_packets", "sent_bytes",
                  "remote": {"expected", "lost", "received"} | None},  # OUR stream, by the peer's reports
     "remote": {"fraction_lost", "lost", "jitter_ms"} | None}     # the peer's last report on OUR stream

"interval" is the last complete interval of `interval` seconds (5, as the Cisco device's Netstat), or the part
since the stream began while none is complete yet. Bytes are RTP payload octets (what an SR counts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

RTP_VERSION = 2
PCMU = 0  # RFC 3551 static payload type: G.711 u-law, 8000 Hz
H264 = 96  # dynamic payload type, bound by a=rtpmap:96 H264/90000
AUDIO_CLOCK = 8000
VIDEO_CLOCK = 90000
AUDIO_KBPS = 64
VIDEO_PAYLOAD = 1200  # bytes: a video packet as real endpoints send it, well under a 1500-byte MTU
RTCP_SR, RTCP_RR = 200, 201
NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
# RFC 3550 A.1
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
# Linux: the kernel stamps each datagram with its arrival time (struct timespec, SCM_TIMESTAMPNS), so a thread
# that reads late on a busy machine does not turn its own delay into the network's jitter.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


# ---------------------------------------------------------------- packets

@dataclass(frozen=True)
class RtpHeader:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False


def pack_rtp(header: RtpHeader, payload: bytes) -> bytes:
    """The 12-byte RFC 3550 §5.1 header (V=2, no padding, extension or CSRC) and the payload."""
    first = RTP_VERSION << 6
    second = (0x80 if header.marker else 0) | (header.payload_type & 0x7F)
    return struct.pack("!BBHII", first, second, header.sequence & 0xFFFF, header.timestamp & 0xFFFFFFFF,
                       header.ssrc & 0xFFFFFFFF) + payload


def parse_rtp(data: bytes) -> tuple[RtpHeader, int] | None:
    """(header, payload length) of an RTP packet, or None when it is not one (too short, not V=2, or RTCP)."""
    if len(data) < 12 or data[0] >> 6 != RTP_VERSION or 192 <= data[1] <= 223:
        return None
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", data)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    length = len(data) - offset
    if first & 0x20 and length > 0:  # padding
        length -= data[-1]
    if length < 0:
        return None
    return RtpHeader(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80)), length


@dataclass(frozen=True)
class ReportBlock:
    """RFC 3550 §6.4.1: what a receiver says about one source."""

    ssrc: int
    fraction_lost: int  # of 256, over the interval since the previous report
    cumulative_lost: int
    highest_sequence: int  # extended
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR received from that source, 0 if none
    dlsr: int  # delay since that SR, in 1/65536 s


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packets: int
    octets: int
    blocks: tuple[ReportBlock, ...] = ()


def ntp_now(now: float | None = None) -> int:
    now = time.time() if now is None else now
    seconds = int(now) + NTP_EPOCH
    return (seconds << 32) | int((now % 1) * (1 << 32))


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries, in 1/65536 s."""
    return (ntp >> 16) & 0xFFFFFFFF


def pack_sr(report: SenderReport) -> bytes:
    blocks = b"".join(_pack_block(b) for b in report.blocks)
    length = (28 + len(blocks)) // 4 - 1
    return struct.pack("!BBHIIIIII", (RTP_VERSION << 6) | len(report.blocks), RTCP_SR, length, report.ssrc,
                       report.ntp >> 32, report.ntp & 0xFFFFFFFF, report.rtp_timestamp & 0xFFFFFFFF,
                       report.packets & 0xFFFFFFFF, report.octets & 0xFFFFFFFF) + blocks


def pack_rr(ssrc: int, blocks: tuple[ReportBlock, ...]) -> bytes:
    body = b"".join(_pack_block(b) for b in blocks)
    return struct.pack("!BBHI", (RTP_VERSION << 6) | len(blocks), RTCP_RR, (8 + len(body)) // 4 - 1, ssrc) + body


def _pack_block(block: ReportBlock) -> bytes:
    lost = max(-(1 << 23), min((1 << 23) - 1, block.cumulative_lost)) & 0xFFFFFF
    return struct.pack("!IIIIII", block.ssrc, (block.fraction_lost & 0xFF) << 24 | lost,
                       block.highest_sequence & 0xFFFFFFFF, block.jitter & 0xFFFFFFFF, block.lsr & 0xFFFFFFFF,
                       block.dlsr & 0xFFFFFFFF)


def parse_rtcp(data: bytes) -> list[SenderReport | tuple[int, tuple[ReportBlock, ...]]]:
    """The SRs (as SenderReport) and RRs (as (ssrc, blocks)) of a compound RTCP packet; other kinds skipped."""
    out: list[SenderReport | tuple[int, tuple[ReportBlock, ...]]] = []
    offset = 0
    while offset + 8 <= len(data):
        first, kind, length = struct.unpack_from("!BBH", data, offset)
        end = offset + 4 * (length + 1)
        if first >> 6 != RTP_VERSION or end > len(data):
            break
        count = first & 0x1F
        if kind == RTCP_SR and end - offset >= 28 + 24 * count:
            ssrc, hi, lo, rtp_ts, packets, octets = struct.unpack_from("!IIIIII", data, offset + 4)
            blocks = _parse_blocks(data, offset + 28, count)
            out.append(SenderReport(ssrc, hi << 32 | lo, rtp_ts, packets, octets, blocks))
        elif kind == RTCP_RR and end - offset >= 8 + 24 * count:
            ssrc = struct.unpack_from("!I", data, offset + 4)[0]
            out.append((ssrc, _parse_blocks(data, offset + 8, count)))
        offset = end
    return out


def _parse_blocks(data: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset + 24 * i)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a multiplexed port, RTCP packet types 192-223 are what RTP payload types never are."""
    return len(data) >= 8 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


# ---------------------------------------------------------------- the receiver's statistics

class ReceiverStats:
    """One source's reception, by RFC 3550 appendix A: `received(header, arrival)` for each RTP packet, with
    `arrival` in seconds (any clock that runs at real speed)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.max_seq = 0
        self.cycles = 0  # shifted count of sequence number cycles
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = MIN_SEQUENTIAL
        self.received_count = 0
        self.bytes = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: float | None = None
        self.jitter = 0.0  # timestamp units, A.8
        self.max_jitter = 0.0
        self.interval_max_jitter = 0.0  # the highest jitter since take_interval() (the device's MaxJitter)
        self.valid = False

    # A.1
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received_count = 0
        self.bytes = 0
        self.expected_prior = 0
        self.received_prior = 0

    def _update_seq(self, seq: int) -> bool:
        """A.1's update_seq: is this packet counted? (It is not while the source is on probation, nor when its
        sequence number jumps far away once, which a restarted sender does.)"""
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.valid = True
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # the sender restarted: start counting again
            else:
                self.bad_seq = (seq + 1) % RTP_SEQ_MOD
                return False
        # else: duplicate or reordered packet, counted
        return True

    def received(self, header: RtpHeader, payload_bytes: int, arrival: float) -> bool:
        """Count one RTP packet; False when A.1 did not count it (probation, a jump)."""
        if not self.valid and self.probation == MIN_SEQUENTIAL:
            self.max_seq = (header.sequence - 1) % RTP_SEQ_MOD  # A.1: the first packet opens the probation
        counted = self._update_seq(header.sequence)
        # A.8, in timestamp units: the transit time's changes, smoothed with gain 1/16.
        transit = arrival * self.clock_rate - header.timestamp
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16
            self.max_jitter = max(self.max_jitter, self.jitter)
            self.interval_max_jitter = max(self.interval_max_jitter, self.jitter)
        self.transit = transit
        if counted:
            self.received_count += 1
            self.bytes += payload_bytes
        return counted

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """A.3: expected minus received; duplicates can make it negative, as the RFC says."""
        return self.expected - self.received_count

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate

    @property
    def max_jitter_ms(self) -> float:
        return self.max_jitter * 1000 / self.clock_rate

    def take_interval(self) -> tuple[int, int, int]:
        """A.3's interval figures since the previous call: (expected, received, lost); the next interval starts."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received_count - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received_count
        self.interval_max_jitter = self.jitter
        return expected_interval, received_interval, expected_interval - received_interval

    def fraction_lost(self, expected_interval: int, lost_interval: int) -> int:
        """A.3: the interval's loss as a fraction of 256 (0 when nothing was lost, or packets were duplicated)."""
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)


# ---------------------------------------------------------------- what a stream sends

@dataclass(frozen=True)
class Stream:
    """One m-line's media: its payload type and clock, and the packets it sends (packets/s, payload bytes)."""

    kind: str  # "audio" | "video"
    payload_type: int
    clock_rate: int
    packet_rate: float
    payload_bytes: int

    @property
    def kbps(self) -> float:
        return self.packet_rate * (self.payload_bytes + 12) * 8 / 1000


def audio_stream(rate: float = 1.0) -> Stream:
    """G.711 at 64 kbit/s: 160 bytes every 20 ms; `rate` < 1 sends that share of the packets."""
    return Stream("audio", PCMU, AUDIO_CLOCK, 50.0 * rate, AUDIO_CLOCK // 50)


def video_stream(kbps: int, rate: float = 1.0) -> Stream:
    """H.264-like video filling `kbps` with ~1200-byte packets; `rate` < 1 sends that share of the packets."""
    per_second = max(1.0, kbps * 1000 / 8 / (VIDEO_PAYLOAD + 12))
    return Stream("video", H264, VIDEO_CLOCK, per_second * rate, VIDEO_PAYLOAD)


# ---------------------------------------------------------------- a session

class MediaSession:
    """One stream each way between `sock` (bound, yours to give; closed by stop()) and `remote` (host, port)."""

    def __init__(self, sock: socket.socket, remote: tuple[str, int], ssrc: int, stream: Stream, *,
                 timeout: float = 10.0, rtcp_interval: float = 1.0, interval: float = 5.0,
                 clock: Any = time.monotonic) -> None:
        self.sock = sock
        self.remote = remote
        self.ssrc = ssrc & 0xFFFFFFFF
        self.stream = stream
        self.timeout = timeout
        self.rtcp_interval = rtcp_interval
        self.interval = interval
        self.receiver = ReceiverStats(stream.clock_rate)
        self.remote_ssrc: int | None = None
        self.ended = threading.Event()
        self.end_reason = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sent_packets = 0
        self._sent_bytes = 0
        self._rtt_ms: float | None = None
        self._remote_report: ReportBlock | None = None
        self._last_sr: tuple[int, float] | None = None  # (LSR of the peer's last SR, when it came: wall clock)
        self._rtcp_interval_prior = (0, 0)  # expected, received at our previous report (for fraction lost)
        self._interval: dict[str, Any] | None = None  # the last complete interval
        self._interval_start = 0.0
        self._interval_bytes_prior = 0
        self._interval_jitter = 0.0
        self._started_at = 0.0
        self._last_heard = 0.0
        self._first_sequence = int.from_bytes(os.urandom(2), "big")
        self._sent_prior = (0, 0)  # packets, bytes sent when the last interval closed
        self._remote_prior: ReportBlock | None = None  # the peer's report when the last interval closed

    # ------------------------------------------------------------ control

    def start(self) -> MediaSession:
        self._started_at = self._last_heard = self._interval_start = time.monotonic()
        self.sock.setblocking(False)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._thread = threading.Thread(target=self._run, name=f"rtp-{self.stream.kind}-{self.ssrc:08x}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Stop sending and receiving and close the socket; waits for the thread (at most a second)."""
        if not self.end_reason:
            self.end_reason = reason
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.ended.set()

    @property
    def state(self) -> str:
        if not self.ended.is_set() and not self._stop.is_set():
            return "running"
        return "timed out" if self.end_reason == "timed out" else "stopped"

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        stream = self.stream
        period = 1.0 / stream.packet_rate if stream.packet_rate > 0 else None
        payload = os.urandom(stream.payload_bytes)
        sequence = self._first_sequence
        ts_base = int.from_bytes(os.urandom(4), "big")
        start = time.monotonic()
        n = 0
        next_rtcp = start + min(0.2, self.rtcp_interval)  # an early report: the round trip is known soon
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - self._last_heard > self.timeout:
                    self.end_reason = "timed out"
                    break
                if period is not None:
                    while start + n * period <= now:
                        # Stamped with the moment it leaves (not its place in the schedule): a thread that
                        # sends late on a busy machine must not pass for the network's jitter.
                        stamp = ts_base + round((time.monotonic() - start) * stream.clock_rate)
                        header = RtpHeader(stream.payload_type, sequence + n, stamp, self.ssrc,
                                           marker=stream.kind == "video" and n % 10 == 9)
                        self._send(pack_rtp(header, payload))
                        with self._lock:
                            self._sent_packets += 1
                            self._sent_bytes += len(payload)
                        n += 1
                if now >= next_rtcp:
                    self._send(self._report(ts_base + round((now - start) * stream.clock_rate)))
                    next_rtcp = now + self.rtcp_interval
                if now - self._interval_start >= self.interval:
                    self._close_interval(now)
                wake = min(next_rtcp, self._interval_start + self.interval,
                           start + n * period if period is not None else next_rtcp)
                self._receive(max(0.0, min(wake - time.monotonic(), 0.05)))
        except Exception as exc:  # a closed socket or a bug: the session ends and says why
            if not self._stop.is_set():
                self.end_reason = f"error: {exc}"
        finally:
            if not self.end_reason:
                self.end_reason = "stopped"
            with contextlib.suppress(OSError):
                self.sock.close()
            self.ended.set()

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError, OSError):
            self.sock.sendto(data, self.remote)

    def _receive(self, wait: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable:
            return
        for _ in range(256):  # what has arrived, a bounded batch
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # ICMP port unreachable from an earlier send: not media
                continue
            arrival = _arrival(ancillary)
            heard = time.monotonic()
            if is_rtcp(data):
                self._on_rtcp(data, arrival, heard)
                continue
            parsed = parse_rtp(data)
            if parsed is None:
                continue
            header, length = parsed
            with self._lock:
                if self.remote_ssrc is None:
                    self.remote_ssrc = header.ssrc
                if header.ssrc != self.remote_ssrc:
                    continue
                self.receiver.received(header, length, arrival)
                self._last_heard = heard

    def _on_rtcp(self, data: bytes, arrival: float, heard: float) -> None:
        """`arrival`: when the kernel received it (wall clock, as NTP times are); `heard`: monotonic."""
        for packet in parse_rtcp(data):
            if isinstance(packet, SenderReport):
                ssrc, blocks = packet.ssrc, packet.blocks
                with self._lock:
                    self._last_sr = (ntp_middle(packet.ntp), arrival)
            else:
                ssrc, blocks = packet
            if self.remote_ssrc is not None and ssrc != self.remote_ssrc:
                continue
            with self._lock:
                self._last_heard = heard
                for block in blocks:
                    if block.ssrc != self.ssrc:
                        continue
                    self._remote_report = block
                    if block.lsr:
                        # RFC 3550 §6.4.1: A - LSR - DLSR, all in 1/65536 s, modulo 2^32.
                        rtt = (ntp_middle(ntp_now(arrival)) - block.lsr - block.dlsr) & 0xFFFFFFFF
                        if rtt < 1 << 31:
                            self._rtt_ms = rtt * 1000 / 65536

    def _report(self, rtp_timestamp: int) -> bytes:
        with self._lock:
            blocks: tuple[ReportBlock, ...] = ()
            if self.remote_ssrc is not None and self.receiver.valid:
                r = self.receiver
                expected_prior, received_prior = self._rtcp_interval_prior
                expected_interval = r.expected - expected_prior
                lost_interval = expected_interval - (r.received_count - received_prior)
                self._rtcp_interval_prior = (r.expected, r.received_count)
                lsr, dlsr = 0, 0
                if self._last_sr is not None:
                    lsr = self._last_sr[0]
                    dlsr = int(max(0.0, time.time() - self._last_sr[1]) * 65536)
                blocks = (ReportBlock(self.remote_ssrc, r.fraction_lost(expected_interval, lost_interval), r.lost,
                                      r.extended_max, int(r.jitter), lsr, dlsr),)
            report = SenderReport(self.ssrc, ntp_now(), rtp_timestamp, self._sent_packets, self._sent_bytes, blocks)
        return pack_sr(report)

    def _close_interval(self, now: float) -> None:
        with self._lock:
            self._interval = self._interval_figures(now, take=True)
            self._interval_start = now

    def _interval_figures(self, now: float, take: bool) -> dict[str, Any]:
        r = self.receiver
        max_jitter_ms = r.interval_max_jitter * 1000 / r.clock_rate
        if take:
            expected, received, lost = r.take_interval()
        else:
            expected = r.expected - r.expected_prior
            received = r.received_count - r.received_prior
            lost = expected - received
        seconds = max(1e-6, now - self._interval_start)
        rate = (r.bytes - self._interval_bytes_prior) * 8 / seconds
        if take:
            self._interval_bytes_prior = r.bytes
        figures = {"seconds": round(seconds, 3), "expected": expected, "received": received, "lost": lost,
                "loss_ratio": max(0.0, lost / expected) if expected > 0 else None,
                "jitter_ms": round(r.jitter_ms, 3) if r.valid else None,
                "max_jitter_ms": round(max_jitter_ms, 3) if r.valid else None, "rate_bps": int(rate),
                "sent_packets": self._sent_packets - self._sent_prior[0],
                "sent_bytes": self._sent_bytes - self._sent_prior[1], "remote": self._remote_interval(take)}
        if take:
            self._sent_prior = (self._sent_packets, self._sent_bytes)
        return figures

    def _remote_interval(self, take: bool) -> dict[str, int] | None:
        """What the peer's reports say it expected and lost of our stream since the previous interval closed
        (the difference of two reports' extended highest sequence numbers and cumulative losses)."""
        block = self._remote_report
        if block is None:
            return None
        # Before any interval closed, the count starts at the first packet the peer counted (A.1 keeps the
        # first one on probation).
        prior_highest, prior_lost = ((self._remote_prior.highest_sequence, self._remote_prior.cumulative_lost)
                                     if self._remote_prior is not None else (self._first_sequence, 0))
        if take:
            self._remote_prior = block
        expected = max(0, block.highest_sequence - prior_highest)
        lost = block.cumulative_lost - prior_lost
        return {"expected": expected, "lost": lost, "received": expected - lost}

    # ------------------------------------------------------------ figures

    def stats(self) -> dict[str, Any]:
        """The figures described in the module's docstring; safe to call from any thread, at any time."""
        now = time.monotonic()
        with self._lock:
            r = self.receiver
            interval = self._interval if self._interval is not None else self._interval_figures(now, take=False)
            remote = None
            if self._remote_report is not None:
                block = self._remote_report
                remote = {"fraction_lost": block.fraction_lost / 256, "lost": block.cumulative_lost,
                          "jitter_ms": round(block.jitter * 1000 / self.stream.clock_rate, 3)}
            return {
                "kind": self.stream.kind, "ssrc": self.ssrc, "remote_ssrc": self.remote_ssrc, "state": self.state,
                "sent_packets": self._sent_packets, "sent_bytes": self._sent_bytes,
                "received_packets": r.received_count, "received_bytes": r.bytes,
                "expected": r.expected, "lost": r.lost,
                "loss_ratio": max(0.0, r.lost / r.expected) if r.expected > 0 else None,
                "jitter_ms": round(r.jitter_ms, 3) if r.valid else None,
                "max_jitter_ms": round(r.max_jitter_ms, 3) if r.valid else None,
                "rtt_ms": round(self._rtt_ms, 3) if self._rtt_ms is not None else None,
                "rate_bps": interval["rate_bps"], "interval": dict(interval), "remote": remote,
            }


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's arrival time of a datagram (wall clock, seconds), or now when it gave none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()


def open_socket(address: str, port: int = 0) -> socket.socket:
    """A UDP socket bound to address:port (0: any free port), with room for a burst of video."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((address, port))
    return sock


def main(argv: list[str] | None = None) -> int:
    """One stream each way with a peer, for a fixed time; prints "ready" when it listens, then stats() as JSON."""
    parser = argparse.ArgumentParser(description="Send and receive one RTP stream; print its RFC 3550 figures.")
    parser.add_argument("--local", required=True, help="ADDRESS:PORT to bind")
    parser.add_argument("--remote", required=True, help="ADDRESS:PORT of the peer")
    parser.add_argument("--kind", choices=("audio", "video"), default="audio")
    parser.add_argument("--kbps", type=int, default=1024, help="the video's bitrate")
    parser.add_argument("--rate", type=float, default=1.0, help="share of the real packet rate to send")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    host, _, port = args.local.rpartition(":")
    remote_host, _, remote_port = args.remote.rpartition(":")
    stream = audio_stream(args.rate) if args.kind == "audio" else video_stream(args.kbps, args.rate)
    session = MediaSession(open_socket(host, int(port)), (remote_host, int(remote_port)),
                           int.from_bytes(os.urandom(4), "big"), stream, interval=args.interval,
                           timeout=args.seconds + 5)
    print("ready", flush=True)
    session.start()
    session.ended.wait(args.seconds)
    figures = session.stats()
    session.stop()
    json.dump(figures, sys.stdout)
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
