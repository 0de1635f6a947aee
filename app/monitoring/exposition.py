"""Monitoring room: metrics in Prometheus' text format (0.0.4), rendered once per step and served as they are to
every scrape; shared by the probe agent and the exporter.

The probe agent and the state exporter measure once per step (a minute) but are scraped by one or more
Prometheus servers at their own pace. At national scale a page holds about 100,000 samples, so it is
rendered (and gzipped) once when the step ends, and a scrape only copies finished bytes: it costs no
rendering, and every scrape of a step sees the same, complete step.

    page = MetricsPage()
    server = serve(page, "127.0.0.1:9561")       # a background thread; server.port is the bound port
    page.update(render([Family("vcops_link_up", "gauge", "…", [({"link": "L1", "site": "S1"}, 1.0)])]))
    server.close()
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TYPES = {"gauge": "gauge", "counter": "counter", "untyped": "untyped",
         # An info metric (a constant 1 whose labels carry the facts) is a gauge in the 0.0.4 format.
         "info": "gauge"}

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_SPECIAL_VALUES = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


@dataclass
class Family:
    """One metric: its name, type, help text and samples (label set, value)."""

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.name):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.type not in TYPES:
            raise ValueError(f"metric {self.name}: unknown type {self.type!r} (one of {', '.join(TYPES)})")


def _escape_label_value(value: str) -> str:
    # The format's three escapes; most values (codes) have none, and a miss of `in` is cheaper than replace().
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    if "\n" in value:
        value = value.replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus reads it: Python's shortest round-trip form, and NaN, +Inf, -Inf."""
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)


def render(families: Iterable[Family]) -> bytes:
    """The families in the text exposition format 0.0.4 (HELP and TYPE lines, then one line per sample)."""
    lines: list[str] = []
    append = lines.append
    checked: set[tuple[str, ...]] = set()
    seen: set[str] = set()
    for family in families:
        name = family.name
        if name in seen:
            # Prometheus rejects the whole page when a family appears twice; say which, here.
            raise ValueError(f"metric {name} appears twice")
        seen.add(name)
        append(f"# HELP {name} {_escape_help(family.help)}")
        append(f"# TYPE {name} {TYPES[family.type]}")
        for labels, value in family.samples:
            text = format_value(value)
            if not labels:
                append(f"{name} {text}")
                continue
            keys = tuple(labels)
            if keys not in checked:  # label names are checked once per distinct set, not per sample
                bad = [k for k in keys if not _LABEL_NAME.match(k) or k.startswith("__")]
                if bad:
                    raise ValueError(f"metric {name}: invalid label name {bad[0]!r}")
                checked.add(keys)
            pairs = ",".join([f'{k}="{_escape_label_value(v)}"' for k, v in labels.items()])
            append(f"{name}{{{pairs}}} {text}")
    if not lines:
        return b""
    append("")  # the format ends with a line feed
    return "\n".join(lines).encode()


class MetricsPage:
    """The latest rendered page and its gzip, replaced whole at each step; scrapes read it and nothing else.

    `stale_after` (seconds): /healthz answers 503 once the page has not been updated for that long, so a stuck
    step loop shows up in health checks even though scrapes keep getting the last page.
    """

    def __init__(self, body: bytes = b"", stale_after: float | None = None) -> None:
        self.stale_after = stale_after
        self._content: tuple[bytes, bytes] = (b"", b"")
        self._updated = time.monotonic()
        self.update(body)

    def update(self, body: bytes) -> None:
        """Store a new page; its gzip is made here, once, not at each scrape."""
        # mtime=0: the same page compresses to the same bytes.
        compressed = gzip.compress(body, compresslevel=6, mtime=0)
        # One attribute assignment swaps body and gzip together: a scrape never pairs two steps.
        self._content = (body, compressed)
        self._updated = time.monotonic()

    @property
    def content(self) -> tuple[bytes, bytes]:
        """(body, gzipped body) of the latest step."""
        return self._content

    @property
    def age(self) -> float:
        """Seconds since the last update."""
        return time.monotonic() - self._updated

    @property
    def stale(self) -> bool:
        return self.stale_after is not None and self.age > self.stale_after


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110: `gzip;q=0` and `*;q=0` refuse it)."""
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    star_q: float | None = None
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            gzip_q = q
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


class _Handler(BaseHTTPRequestHandler):
    page: MetricsPage  # set on the subclass that serve() makes
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection from scrape to scrape
    timeout = 120  # an idle kept-alive connection is closed after this, so its thread ends
    server_version = "vcops"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        headers: dict[str, str] = {}
        if path == "/metrics":
            body, compressed = self.page.content
            status = 200
            headers["Content-Type"] = CONTENT_TYPE
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(self.headers.get("Accept-Encoding")):
                body = compressed
                headers["Content-Encoding"] = "gzip"
        elif path == "/healthz":
            stale = self.page.stale
            status = 503 if stale else 200
            age = self.page.age
            body = (f"stale: last update {age:.0f} s ago\n" if stale else "ok\n").encode()
            headers["Content-Type"] = "text/plain; charset=utf-8"
        else:
            status, body = 404, b"not found: try /metrics or /healthz\n"
            headers["Content-Type"] = "text/plain; charset=utf-8"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a line per scrape would drown the agent's own log


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Server:
    """A running metrics server; `close()` stops it and frees the port."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        address = httpd.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' as (host, port); port 0 means any free port.

    The host is never implied: listening on every interface (0.0.0.0) has to be asked for by name.
    """
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address must be host:port (e.g. 127.0.0.1:9561), got {listen!r}")
    return host, int(port)


def serve(page: MetricsPage, listen: str) -> Server:
    """Serve GET /metrics (gzip when the client accepts it) and GET /healthz from a background thread."""
    host, port = parse_listen(listen)
    handler = type("MetricsHandler", (_Handler,), {"page": page})
    server_class = _HTTPServer
    if ":" in host:
        server_class = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
    try:
        httpd = server_class((host, port), handler)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror}") from exc
    thread = threading.Thread(target=httpd.serve_forever, name=f"metrics-{listen}", daemon=True)
    thread.start()
    return Server(httpd, thread)
