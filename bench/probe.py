"""Benchmark of the ICMP engine: one probe step to 1,000 addresses, side by side with fping on the same addresses.

A probe lab (tests/netlab.py: a network namespace whose loopback holds the addresses) answers the echoes. The
step (`ping_many`, 20 echoes per address, 1 s apart, every address at once) is timed in this process: wall time
and CPU time (user + system, resource.getrusage of the process). Then `fping -C <echoes> -p <interval ms> -i 1`
measures the same addresses; its CPU comes from os.wait4's rusage. Printed: wall, CPU, CPU per echo, loss and the
median round trip for both, and the ratio of CPU per echo (target: ours at most 3x fping's). Needs root.

    .venv/bin/python bench/probe.py                       # 1,000 addresses x 20 echoes, 1 s apart (~45 s)
    .venv/bin/python bench/probe.py --targets 200 --echoes 5 --interval 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.monitoring.agent.icmp import ping_many
from tests.support.netlab import lab


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_ours(addresses: list[str], args: argparse.Namespace) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = asyncio.run(ping_many(addresses, count=args.echoes, interval=args.interval, timeout=args.timeout,
                                    concurrency=args.concurrency or len(addresses)))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu_seconds(before)
    rtts = [rtt for result in results.values() for rtt in result.rtts if rtt is not None]
    sent = sum(result.sent for result in results.values())
    return {"wall": wall, "cpu": cpu, "sent": sent, "lost": sent - len(rtts),
            "median": statistics.median(rtts) if rtts else float("nan")}


def run_fping(addresses: list[str], args: argparse.Namespace) -> dict[str, float]:
    argv = ["fping", "-C", str(args.echoes), "-p", str(round(args.interval * 1000)), "-i", "1",
            "-t", str(round(args.timeout * 1000)), "-q", *addresses]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()  # fping -C -q reports "address : 0.03 0.02 - ..." per address on stderr
    _pid, _status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    wall = time.perf_counter() - started
    rtts, lost = [], 0
    for line in stderr.splitlines():
        if " : " not in line:
            continue
        for value in line.split(" : ", 1)[1].split():
            if value == "-":
                lost += 1
            else:
                rtts.append(float(value) / 1000)
    return {"wall": wall, "cpu": cpu_seconds(usage), "sent": len(rtts) + lost, "lost": lost,
            "median": statistics.median(rtts) if rtts else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000, help="addresses in the lab (at most 1020)")
    parser.add_argument("--echoes", type=int, default=20, help="echoes per address in the step")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between echoes to one address")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds before an echo counts as lost")
    parser.add_argument("--concurrency", type=int, default=0, help="addresses at once (default: all, as fping)")
    parser.add_argument("--no-fping", action="store_true", help="measure the engine only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/probe.py needs root (a network namespace and raw ICMP sockets)", file=sys.stderr)
        return 2
    with_fping = not args.no_fping and shutil.which("fping") is not None
    with lab(args.targets) as probe_lab:
        addresses = probe_lab.addresses
        print(f"{len(addresses)} addresses x {args.echoes} echoes, {args.interval} s apart, timeout "
              f"{args.timeout} s, concurrency {args.concurrency or len(addresses)}; lab {probe_lab.block}")
        rows = [("vcops ping_many", run_ours(addresses, args))]
        if with_fping:
            rows.append(("fping 5 -C", run_fping(addresses, args)))
    print(f"{'':16} {'wall s':>8} {'CPU s':>8} {'CPU/echo µs':>12} {'sent':>7} {'lost':>6} {'median rtt ms':>14}")
    for name, row in rows:
        per_echo = row["cpu"] / row["sent"] * 1e6 if row["sent"] else float("nan")
        row["per_echo"] = per_echo
        print(f"{name:16} {row['wall']:8.2f} {row['cpu']:8.3f} {per_echo:12.1f} {row['sent']:7.0f} "
              f"{row['lost']:6.0f} {row['median'] * 1000:14.3f}")
    if len(rows) == 2:
        print(f"CPU per echo, ours / fping: {rows[0][1]['per_echo'] / rows[1][1]['per_echo']:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
