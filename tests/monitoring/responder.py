"""An ICMP echo responder with scripted delays, run inside a probe lab's namespace (see tests/netlab.py).

The lab has turned the kernel's echo replies off there (net.ipv4.icmp_echo_ignore_all=1); this answers every
echo request instead, `--delays` milliseconds after the kernel received it, alternating through the list for
each probed address (so one address's series reads 40, 60, 40, 60... with `--delays 40,60`). There is no netem
on the test bed, and this is how a link with a known delay and jitter is made. Standard library only: it runs
under the system's Python. Prints "ready" once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = 35  # Linux; also the ancillary message type
TIMESPEC = struct.Struct("@qq")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def reply_packet(request: bytes) -> tuple[bytes, str] | None:
    """The IP packet answering an echo request (IP header included), and where it goes; None if not a request."""
    header_length = (request[0] & 0x0F) * 4
    icmp = request[header_length:]
    if len(icmp) < 8 or icmp[0] != 8:
        return None
    source, destination = request[12:16], request[16:20]
    message = b"\0\0\0\0" + icmp[4:]
    message = b"\0\0" + struct.pack("!H", checksum(message)) + icmp[4:]
    # The reply comes from the address that was probed (a raw IP socket sets it; the kernel fills in length,
    # identification and the header checksum).
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_ICMP, 0, destination, source)
    return header + message, socket.inet_ntoa(source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="50", help="milliseconds, comma-separated, used in turn per address")
    args = parser.parse_args()
    delays = [float(d) / 1000 for d in args.delays.split(",")]
    # Reply times are what the tests measure: ask for real-time scheduling so that a busy machine does not
    # delay the replies (the responder sleeps between them).
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError):
        pass
    listener = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    listener.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    turns: dict[bytes, int] = {}
    pending: list[tuple[float, int, bytes, str]] = []  # (due on the monotonic clock, order, packet, to)
    order = 0
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while not stopping:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else 0.5
        try:
            readable, _, _ = select.select([listener], [], [], timeout)
        except InterruptedError:
            continue
        if readable:
            while True:
                try:
                    data, ancillary, _flags, _peer = listener.recvmsg(2048, socket.CMSG_SPACE(TIMESPEC.size))
                except BlockingIOError:
                    break
                answer = reply_packet(data)
                if answer is None:
                    continue
                # Count the delay from the kernel's arrival stamp, not from when this process got around to it.
                arrived = time.time_ns()
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        seconds, nanoseconds = TIMESPEC.unpack_from(value)
                        arrived = seconds * 1_000_000_000 + nanoseconds
                probed = data[16:20]
                turn = turns.get(probed, 0)
                turns[probed] = turn + 1
                due = time.monotonic() + delays[turn % len(delays)] - (time.time_ns() - arrived) / 1e9
                heapq.heappush(pending, (due, order, *answer))
                order += 1
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _due, _order, packet, to = heapq.heappop(pending)
            try:
                sender.sendto(packet, (to, 0))
            except OSError as exc:
                print(f"reply to {to} not sent: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
