"""The web app's own request metrics (count and duration per view), one set for all gunicorn workers, at /metrics.

Each gunicorn worker is its own process with its own counters, and a scrape reaches one of them. prometheus-client's
multiprocess mode makes them one set: every worker writes its values into memory-mapped files in a shared folder
(METRICS_DIR, or INSTANCE_PATH/metrics), and /metrics in any worker sums the files of all. The folder must be in
the environment (PROMETHEUS_MULTIPROC_DIR) before a worker creates its first metric; `vcops serve` calls
`gunicorn_hooks()` in the master, which empties the folder, sets the variable and returns the hook that marks
dead workers. A process without it (tests, `flask run`) keeps its metrics in memory and serves those.

The endpoint label is the name of the view (e.g. `meetings.meeting_detail`), never the path, and unknown methods
count as "other", so no client can make up new series.

/metrics is read by Prometheus without a user; it is answered only to client addresses in METRICS_ALLOW.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, request
from flask_babel import gettext as _
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.web.access import public

log = logging.getLogger(__name__)
bp = Blueprint("webmetrics", __name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; pages answer in milliseconds, uploads and exports may take tens of seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the endpoint label of requests no view answered (404, 405)
_STARTED = "vcops.request_started"


@dataclass
class _RequestMetrics:
    requests: Any  # prometheus_client.Counter
    duration: Any  # prometheus_client.Histogram
    registry: Any  # the in-process registry (used when not in multiprocess mode)
    multiprocess_dir: str | None


_metrics: _RequestMetrics | None = None
_metrics_lock = threading.Lock()


def metrics_dir(config: Mapping[str, Any]) -> Path:
    """The folder the workers share: METRICS_DIR, or INSTANCE_PATH/metrics."""
    return Path(config["METRICS_DIR"] or Path(config["INSTANCE_PATH"]) / "metrics")


def prepare_multiprocess(config: Mapping[str, Any]) -> Path:
    """Empty the shared folder and point prometheus-client at it; in the master, before any worker starts.

    Files left by an earlier run are removed: their counts belong to processes that are gone, and added to the
    new workers' they would make the counters jump at start. Only prometheus-client's files ({kind}_{pid}.db) go:
    the folder is a setting, and a mistyped one must not cost anything else that is in it.
    """
    directory = metrics_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*_*.db"):
        leftover.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus-client chooses how values are stored when it is first imported; if a module imported it before
    # this point, choose again now, so the workers forked from here write to the shared files.
    import prometheus_client.values

    prometheus_client.values.ValueClass = prometheus_client.values.get_value_class()
    return directory


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def gunicorn_hooks(config: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
    """Prepare the shared folder (see `prepare_multiprocess`) and return gunicorn settings to set on its config."""
    prepare_multiprocess(config)
    return {"child_exit": _child_exit}


def _request_metrics() -> _RequestMetrics:
    """The metrics of this process, created at its first request: in a gunicorn worker that is after the fork,
    with the master's PROMETHEUS_MULTIPROC_DIR already in the environment."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                from prometheus_client import CollectorRegistry, Counter, Histogram

                registry = CollectorRegistry(auto_describe=True)
                requests = Counter("vcops_http_requests_total", "HTTP requests answered by the web app.",
                                   ["method", "endpoint", "status"], registry=registry)
                duration = Histogram("vcops_http_request_duration_seconds",
                                     "Time the web app took to answer a request, up to its response headers.",
                                     ["method", "endpoint"], buckets=DURATION_BUCKETS, registry=registry)
                _metrics = _RequestMetrics(requests, duration, registry, os.environ.get(MULTIPROC_ENV))
    return _metrics


def _parse_allow(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise RuntimeError(f"VCOPS_METRICS_ALLOW: {item!r} is not an address or network "
                               "(e.g. 127.0.0.1/32,10.0.0.0/24)") from None
    return tuple(networks)


def init_app(app: Flask) -> None:
    """Time every request and count it by method, view and status; read METRICS_ALLOW (a bad value stops here)."""
    app.extensions["vcops_metrics_allow"] = _parse_allow(app.config["METRICS_ALLOW"])
    # First before the other hooks, so the time includes the access check and the loading of the user; last
    # after them (after_request functions run in reverse order), so the status is the one sent: the commit point
    # may still turn a 200 into a 409.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request_funcs.setdefault(None, []).insert(0, _observe)


def _start_timer() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _observe(response: Response) -> Response:
    started = request.environ.get(_STARTED)
    method = request.method if request.method in METHODS else "other"
    rule = request.url_rule
    endpoint = rule.endpoint if rule is not None else UNMATCHED
    try:
        metrics = _request_metrics()
        metrics.requests.labels(method, endpoint, str(response.status_code)).inc()
        if started is not None:
            metrics.duration.labels(method, endpoint).observe(time.perf_counter() - started)
    except Exception:  # counting must never cost a user their answer
        log.exception("request metrics not recorded")
    return response


def _client_allowed() -> bool:
    if not current_app.config["PROXY_COUNT"] and ("X-Forwarded-For" in request.headers
                                                  or "Forwarded" in request.headers):
        # Sent through a proxy the app does not trust: the address seen is the proxy's, not the client's.
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # gunicorn bound to [::] sees IPv4 clients as ::ffff:a.b.c.d
    return any(address in network for network in current_app.extensions["vcops_metrics_allow"])


def exposition() -> bytes:
    """The request metrics of every worker (multiprocess mode) or of this process, in the text format 0.0.4."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics = _request_metrics()
    if metrics.multiprocess_dir is None:
        return generate_latest(metrics.registry)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics.multiprocess_dir)
    return generate_latest(registry)


@bp.get("/metrics")
@public("Prometheus reads it without a user; answered only to client addresses in METRICS_ALLOW; "
        "request counts per view, no data")
def metrics() -> Response:
    if not _client_allowed():
        log.warning("metrics refused to %s (not in METRICS_ALLOW, or through an untrusted proxy)", request.remote_addr)
        abort(403, description=_("The metrics are served only to the addresses in METRICS_ALLOW."))
    return Response(exposition(), status=200,
                    headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"})
