"""bench/exporter: a probe agent's /metrics at national scale (11,400 links), served two ways.

(a) ours (app.monitoring.exposition): the link families are rendered once per step, gzipped once, and every scrape
    is served the finished bytes. Measured: the time of a step's render (building the families, rendering, gzip),
    and the scrape latency seen by an HTTP client that asks for gzip and keeps its connection, as Prometheus does
    -- once with the agent idle between steps, once while another thread renders steps back to back (the agent's
    work competes with the scrape for the interpreter).
(b) prometheus-client's usual way: a custom Collector that yields the same families at every scrape, served by
    prometheus_client.start_http_server (gzip when asked). Measured: the same scrape latency.

Target: our scrape p95 under 50 ms. Prints a table.

    python bench/exporter.py [--links 11400] [--scrapes 200] [--steps 5]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.monitoring.exposition import Family, MetricsPage, render, serve


@dataclass
class LinkState:
    link: str
    site: str
    up: bool
    rtt: float
    rtt_min: float
    rtt_max: float
    loss: float
    jitter: float
    sent: int
    lost: int


def make_links(count: int, rng: random.Random) -> list[LinkState]:
    """Links like the country's: codes of a commune under its district under its province; a few down."""
    links = []
    for i in range(count):
        site = f"P{i % 63:02d}-D{i % 705:03d}-C{i:05d}"
        up = rng.random() > 0.01
        rtt = rng.uniform(0.002, 0.08)
        loss = 0.0 if rng.random() > 0.05 else rng.choice((0.05, 0.1, 0.2, 1.0))
        links.append(LinkState(f"{site}-UP", site, up, rtt, rtt * 0.8, rtt * 1.6, loss if up else 1.0,
                               rng.uniform(0.0, 0.01), 20 * 1440, rng.randrange(0, 300)))
    return links


# The agent's link families: (name, type, help, value of a link or None when absent)
FAMILIES = [
    ("vcops_link_up", "gauge", "1 when the link answered at least one echo of the step.", lambda s: float(s.up)),
    ("vcops_link_rtt_seconds", "gauge", "Median round trip of the step.", lambda s: s.rtt if s.up else None),
    ("vcops_link_rtt_min_seconds", "gauge", "Shortest round trip of the step.", lambda s: s.rtt_min if s.up else None),
    ("vcops_link_rtt_max_seconds", "gauge", "Longest round trip of the step.", lambda s: s.rtt_max if s.up else None),
    ("vcops_link_packet_loss_ratio", "gauge", "Share of the step's echoes lost.", lambda s: s.loss),
    ("vcops_link_jitter_seconds", "gauge", "Mean difference of consecutive round trips.",
     lambda s: s.jitter if s.up else None),
    ("vcops_link_probes_sent_total", "counter", "Echoes sent since the agent started.", lambda s: float(s.sent)),
    ("vcops_link_probes_lost_total", "counter", "Echoes lost since the agent started.", lambda s: float(s.lost)),
]


def link_families(links: list[LinkState]) -> list[Family]:
    families = []
    for name, kind, text, value_of in FAMILIES:
        samples = []
        for state in links:
            value = value_of(state)
            if value is not None:
                samples.append(({"link": state.link, "site": state.site}, value))
        families.append(Family(name, kind, text, samples))
    return families


class LinkCollector(Collector):
    """prometheus-client's way: the families built anew from the agent's state at every scrape."""

    def __init__(self, links: list[LinkState]) -> None:
        self.links = links

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        for name, kind, text, value_of in FAMILIES:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = cls(name, text, labels=["link", "site"])
            for state in self.links:
                value = value_of(state)
                if value is not None:
                    family.add_metric([state.link, state.site], value)
            yield family


def scrape_times(host: str, port: int, count: int) -> tuple[list[float], int]:
    """Seconds per scrape (request sent to last byte read), on one kept-alive connection when the server allows."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    times, size = [], 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip", "User-Agent": "Prometheus/2.42.0"})
            response = conn.getresponse()
            data = response.read()
            times.append(time.perf_counter() - started)
            assert response.status == 200 and response.getheader("Content-Encoding") == "gzip", response.status
            size = len(data)
    finally:
        conn.close()
    return times, size


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=11400)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5, help="renders timed for (a)")
    args = parser.parse_args()

    rng = random.Random(5)
    links = make_links(args.links, rng)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{args.links} links, {args.scrapes} scrapes per case")

    # (a) render once per step, serve the finished page
    build_t, render_t, gzip_t = [], [], []
    page = MetricsPage()
    body = b""
    for _ in range(args.steps):
        t0 = time.perf_counter()
        families = link_families(links)
        t1 = time.perf_counter()
        body = render(families)
        t2 = time.perf_counter()
        page.update(body)
        t3 = time.perf_counter()
        build_t.append(t1 - t0)
        render_t.append(t2 - t1)
        gzip_t.append(t3 - t2)
    samples = sum(len(f.samples) for f in link_families(links))
    step_total = [b + r + g for b, r, g in zip(build_t, render_t, gzip_t, strict=True)]

    server = serve(page, "127.0.0.1:0")
    try:
        scrape_times(server.host, server.port, 5)  # warm up
        ours_idle, gz_size = scrape_times(server.host, server.port, args.scrapes)

        stop = threading.Event()

        def steps_back_to_back() -> None:
            while not stop.is_set():
                page.update(render(link_families(links)))

        busy = threading.Thread(target=steps_back_to_back, daemon=True)
        busy.start()
        ours_busy, _ = scrape_times(server.host, server.port, args.scrapes)
        stop.set()
        busy.join()
    finally:
        server.close()

    # (b) prometheus-client: collect at every scrape
    registry = CollectorRegistry()
    registry.register(LinkCollector(links))
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = httpd.server_address[1]
        scrape_times("127.0.0.1", port, 3)
        theirs, their_size = scrape_times("127.0.0.1", port, args.scrapes)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)

    print(f"page: {samples} samples, {len(body) / 1e6:.1f} MB plain, {gz_size / 1e6:.2f} MB gzip "
          f"(prometheus-client's gzip: {their_size / 1e6:.2f} MB)")
    print(f"(a) step render, median of {args.steps}: build families {ms(statistics.median(build_t))}, "
          f"render {ms(statistics.median(render_t))}, gzip {ms(statistics.median(gzip_t))}, "
          f"total {ms(statistics.median(step_total))} (max {ms(max(step_total))})")
    print()
    print("| case | scrapes | p50 | p95 | max |")
    print("| --- | --- | --- | --- | --- |")
    for label, times in (("(a) ours: cached gzip page, agent idle", ours_idle),
                         ("(a) ours: cached gzip page, steps rendered back to back meanwhile", ours_busy),
                         ("(b) prometheus-client: Collector per scrape, start_http_server", theirs)):
        print(f"| {label} | {len(times)} | {ms(pct(times, 50))} | {ms(pct(times, 95))} | {ms(max(times))} |")
    p95 = pct(ours_idle, 95)
    print(f"\ntarget: our scrape p95 under 50 ms: {'met' if p95 < 0.05 else 'NOT met'} ({ms(p95)} idle, "
          f"{ms(pct(ours_busy, 95))} while rendering)")


if __name__ == "__main__":
    main()
