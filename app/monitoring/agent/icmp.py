"""Monitoring room, probe agent: the ICMP engine, smokeping-style echo series to many addresses at once, through
one socket.

`await ping_many(addresses, count=20, interval=1.0, timeout=2.0, concurrency=256)` sends `count` echoes to each
address, `interval` seconds apart, and returns an `EchoResult` per address: the round trip of every echo in send
order (None = lost) and its statistics (median, min, max, loss ratio, jitter).

Why it is built this way (measured on the test bed, see TESTBED.md "ICMP at scale"): every raw ICMP socket
receives a copy of every reply that reaches the machine, and an event loop that is busy stamps arrivals late.
So all targets share ONE socket whose replies are matched by identifier and sequence (and a per-call cookie in
the payload, which rejects a late reply to an earlier echo that reused the sequence number), the arrival time
is the kernel's (SO_TIMESTAMPNS, read from recvmsg's ancillary data) and the departure time is read right before
sendto. Nothing is created per echo: one loop callback walks a ring of `concurrency` slots whose phases are
spread over one interval (so 1,000 targets never burst), and one reader drains every pending reply at each
wakeup. An echo that cannot even be sent (no route, interface down, ENOBUFS...) counts as lost, and so does
a reply later than `timeout`.

A raw socket needs root or CAP_NET_RAW; without them the engine uses an unprivileged ICMP datagram socket when
net.ipv4.ping_group_range lets the process's group open one.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import ipaddress
import os
import secrets
import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["EchoResult", "IcmpPermissionError", "jitter", "ping_many"]

# Linux socket options the socket module does not name (asm-generic values, x86 and arm alike).
_SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS: struct timespec (two longs) on each received datagram
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_TIMESPEC = struct.Struct("@qq")

_ECHO_REPLY = 0
_ECHO_REQUEST = 8
_PAYLOAD = 56  # bytes of ICMP data, as ping and fping send by default
# type, code, checksum, identifier, sequence | cookie (random per call), echo number (index into the call's
# arrays) | zero padding up to _PAYLOAD.
_ECHO = struct.Struct(f"!BBHHH8sI{_PAYLOAD - 12}x")
_REPLY = struct.Struct("!BBHHH8sI")
_BUFFER = 2 * 1024 * 1024  # bytes of socket buffer: seconds of replies, even when the loop is held up
_MAX_WAKEUPS_PER_SECOND = 500  # the sender wakes at most this often; due echoes leave together, in order


class IcmpPermissionError(PermissionError):
    """The process may open neither a raw ICMP socket nor an unprivileged ICMP datagram socket."""


@dataclass
class EchoResult:
    """One address's series: `rtts[i]` is the round trip of echo i in seconds, or None when it was lost."""

    address: str
    rtts: list[float | None]
    error: str | None = field(default=None)  # why echoes could not be sent (the last reason), if they could not

    @property
    def sent(self) -> int:
        return len(self.rtts)

    @property
    def replies(self) -> list[float]:
        return [rtt for rtt in self.rtts if rtt is not None]

    @property
    def received(self) -> int:
        return len(self.replies)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.sent if self.sent else 1.0

    @property
    def median(self) -> float | None:
        replies = self.replies
        return statistics.median(replies) if replies else None

    @property
    def minimum(self) -> float | None:
        return min(self.replies, default=None)

    @property
    def maximum(self) -> float | None:
        return max(self.replies, default=None)

    @property
    def jitter(self) -> float | None:
        return jitter(self.rtts)


def jitter(rtts: Sequence[float | None]) -> float | None:
    """Mean absolute difference of consecutive round trips among the replies, in send order (None if < 2)."""
    replies = [rtt for rtt in rtts if rtt is not None]
    if len(replies) < 2:
        return None
    return sum(abs(b - a) for a, b in zip(replies, replies[1:], strict=False)) / (len(replies) - 1)


async def ping_many(addresses: Sequence[str], *, count: int, interval: float, timeout: float,
                    concurrency: int) -> dict[str, EchoResult]:
    """Send `count` echoes to each address (IPv4 literal or name), `interval` s apart; results keyed by address.

    At most `concurrency` addresses are measured at once; each holds its place until its last echo is answered
    or has timed out. Raises IcmpPermissionError when no ICMP socket may be opened.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1 echo, not {count}")
    if not interval > 0:
        raise ValueError(f"interval must be a positive number of seconds, not {interval}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1 address, not {concurrency}")
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return {}
    targets, unusable = await _resolve(unique)
    results = {address: EchoResult(address, [None] * count, error) for address, error in unusable.items()}
    if targets:
        loop = asyncio.get_running_loop()
        session = _Session(loop, list(targets.values()), count, interval, timeout, concurrency)
        try:
            await session.run()
        finally:
            session.close()
        for position, address in enumerate(targets):
            start = position * count
            results[address] = EchoResult(address, session.rtts[start:start + count], session.errors[position])
    return {address: results[address] for address in unique}


async def _resolve(addresses: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Given addresses -> IPv4 address to send to; and those that cannot be measured -> why."""
    targets: dict[str, str] = {}
    unusable: dict[str, str] = {}
    names = []
    for address in addresses:
        try:
            parsed = ipaddress.ip_address(address.strip())
        except ValueError:
            names.append(address)
            continue
        if parsed.version == 4:
            targets[address] = str(parsed)
        else:
            unusable[address] = f"{address} is an IPv6 address; the ICMP engine measures IPv4 only"
    if names:
        loop = asyncio.get_running_loop()
        answers = await asyncio.gather(
            *(loop.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_RAW) for name in names),
            return_exceptions=True)
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException) or not answer:
                unusable[name] = f"{name} is not an IPv4 address and does not resolve to one"
            else:
                targets[name] = str(answer[0][4][0])
    return targets, unusable


def _open_socket(identifier: int) -> tuple[socket.socket, bool]:
    """A non-blocking ICMP socket with kernel receive timestamps; True when it is raw (replies carry the IP
    header and our identifier), False for an unprivileged datagram socket (the kernel owns the identifier)."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        raw = True
    except PermissionError:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            raw = False
        except PermissionError as exc:
            raise IcmpPermissionError(
                "ICMP probes need a raw socket (run as root or grant CAP_NET_RAW: "
                "setcap cap_net_raw+ep on the Python interpreter) or unprivileged ICMP sockets for this group "
                f"(sysctl net.ipv4.ping_group_range, now {_ping_group_range()}); gid {os.getgid()}") from exc
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        for force, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)  # beyond net.core.rmem_max; needs root
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
        if raw:
            _attach_filter(sock, identifier)
    except BaseException:
        sock.close()
        raise
    return sock, raw


def _attach_filter(sock: socket.socket, identifier: int) -> None:
    """Let the kernel keep only echo replies carrying our identifier: a raw socket otherwise also receives the
    replies of every other ping on the machine (iputils ping filters the same way)."""
    program = [  # (code, jt, jf, k), classic BPF over the IP header + ICMP message
        (0xB1, 0, 0, 0),           # ldxb 4*([0] & 0xf)      X = IP header length
        (0x50, 0, 0, 0),           # ldb [x + 0]             ICMP type
        (0x15, 0, 3, _ECHO_REPLY),  # jeq echo reply, else drop
        (0x48, 0, 0, 4),           # ldh [x + 4]             identifier
        (0x15, 0, 1, identifier),  # jeq ours, else drop
        (0x06, 0, 0, 0x40000),     # ret whole packet
        (0x06, 0, 0, 0),           # ret 0 (drop)
    ]
    instructions = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(instructions)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))  # the kernel copies the program
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        pass  # matching in Python still rejects foreign replies; the filter only saves work


def _ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return "unknown"


class _Session:
    """One ping_many call: the socket, the schedule and the flat arrays of every echo (index = target * count
    + echo number)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, addresses: list[str], count: int, interval: float,
                 timeout: float, concurrency: int) -> None:
        self.loop = loop
        self.addresses = addresses
        self.count = count
        self.interval = interval
        self.timeout = timeout
        self.timeout_ns = int(timeout * 1e9)
        n = len(addresses)
        self.rtts: list[float | None] = [None] * (n * count)
        self.sent_ns = [0] * (n * count)  # CLOCK_REALTIME, as the kernel's receive stamps
        self.errors: list[str | None] = [None] * n
        self.resolved = [0] * n  # echoes answered or that could not be sent
        self.by_sequence = [-1] * 65536  # sequence -> echo index; reused sequences are told apart by the cookie
        self.sequence = secrets.randbelow(65536)
        self.identifier = secrets.randbelow(65536)
        self.cookie = secrets.token_bytes(8)
        base = (_ECHO_REQUEST << 8) + self.identifier + sum(struct.unpack("!4H", self.cookie))
        self.checksum_base = base
        self.sock, self.raw = _open_socket(self.identifier)
        self.reading = False
        # The ring: slot s sends at phase s * interval / slots; each slot measures its targets one after another.
        self.slots = min(concurrency, n)
        self.spacing = interval / self.slots
        self.queue = iter(range(n))
        self.slot_target: list[int] = [-1] * self.slots
        self.slot_next_echo = [0] * self.slots
        self.slot_deadline = [0.0] * self.slots  # loop time when the slot's target's last echo times out
        self.active = 0
        self.tick = 0
        self.start = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    # ---------------------------------------------------------------- running

    async def run(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._guarded, self._drain)
        self.reading = True
        for slot in range(self.slots):
            target = next(self.queue)
            self.slot_target[slot] = target
            self.active += 1
        self.start = self.loop.time()
        self._guarded(self._wake)
        await self.done

    def _guarded(self, callback: Callable[[], None]) -> None:
        """Run a loop callback; a failure ends the call with that error instead of leaving it waiting forever."""
        try:
            callback()
        except Exception as exc:
            if not self.done.done():
                self.done.set_exception(exc)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
            self.reading = False
        self.sock.close()

    def _wake(self) -> None:
        """The loop callback: run every slot whose turn has come (in phase order), then sleep until the next."""
        self.timer = None
        now = self.loop.time()
        slots, spacing, start = self.slots, self.spacing, self.start
        lag = now - (start + self.tick * spacing)
        if lag > self.interval:
            # The loop was held up for more than an interval: shift the schedule rather than burst to catch up,
            # so echoes to one address stay at least about an interval apart.
            start = self.start = start + lag
        while True:
            due = start + self.tick * spacing
            if due > now:
                break
            slot = self.tick % slots
            self.tick += 1
            if self.slot_target[slot] >= 0:
                self._turn(slot, now)
        if self.active == 0:
            if not self.done.done():
                self.done.set_result(None)
            return
        # Sleep until the next turn, but wake at most _MAX_WAKEUPS_PER_SECOND: due echoes then leave together.
        when = max(start + self.tick * spacing, now + 1 / _MAX_WAKEUPS_PER_SECOND)
        self.timer = self.loop.call_at(when, self._guarded, self._wake)

    def _turn(self, slot: int, now: float) -> None:
        target = self.slot_target[slot]
        echo = self.slot_next_echo[slot]
        if echo == self.count:
            if self.resolved[target] < self.count:
                if now < self.slot_deadline[slot]:
                    return  # replies may still come
                self._drain()  # a reply stamped in time may still wait in the socket buffer
            # This target is measured: the slot takes the next one and sends its first echo now.
            target = next(self.queue, -1)
            self.slot_target[slot] = target
            if target < 0:
                self.active -= 1
                return
            echo = 0
        self._send(target, echo)
        self.slot_next_echo[slot] = echo + 1
        if echo + 1 == self.count:
            self.slot_deadline[slot] = now + self.timeout

    def _send(self, target: int, echo: int) -> None:
        index = target * self.count + echo
        sequence = self.sequence = (self.sequence + 1) & 0xFFFF
        self.by_sequence[sequence] = index
        total = self.checksum_base + sequence + (index >> 16) + (index & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        packet = _ECHO.pack(_ECHO_REQUEST, 0, ~total & 0xFFFF, self.identifier, sequence, self.cookie, index)
        self.sent_ns[index] = time.time_ns()
        try:
            self.sock.sendto(packet, (self.addresses[target], 0))
        except OSError as exc:
            # Not sent is lost: the link is down, there is no route, the queue is full...
            self.sent_ns[index] = 0
            self.resolved[target] += 1
            self.errors[target] = os.strerror(exc.errno) if exc.errno else str(exc)

    # ---------------------------------------------------------------- receiving

    def _drain(self) -> None:
        """Read every datagram waiting in the socket (the loop is woken once for a batch, not per reply)."""
        sock = self.sock
        offset_known = not self.raw
        timespec = socket.CMSG_SPACE(_TIMESPEC.size)
        while True:
            try:
                data, ancillary, _flags, peer = sock.recvmsg(512, timespec)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                continue  # an ICMP error queued on the socket: the echo it concerns times out as lost
            received_ns = 0
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                    received_ns = seconds * 1_000_000_000 + nanoseconds
            if not received_ns:
                received_ns = time.time_ns()
            offset = 0 if offset_known else (data[0] & 0x0F) * 4
            if len(data) < offset + _REPLY.size:
                continue
            kind, _code, _checksum, identifier, sequence, cookie, index = _REPLY.unpack_from(data, offset)
            # A datagram socket's identifier is the kernel's, which demultiplexes on it for us.
            if kind != _ECHO_REPLY or (self.raw and identifier != self.identifier) or cookie != self.cookie:
                continue
            if self.by_sequence[sequence] != index:
                continue  # a late reply to an earlier echo whose sequence number was used again since
            sent = self.sent_ns[index]
            if not sent or self.rtts[index] is not None:
                continue  # never sent, or a duplicate
            target = index // self.count
            if peer[0] != self.addresses[target]:
                continue
            rtt_ns = received_ns - sent
            # Later than the timeout is lost (so is a negative time: the wall clock stepped back meanwhile).
            if 0 <= rtt_ns <= self.timeout_ns:
                self.rtts[index] = rtt_ns / 1e9
                self.resolved[target] += 1
