"""The web app's own /metrics: requests of every gunicorn worker counted together, by view, for allowed scrapers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import PROJECT_ROOT, SETTINGS
from tests.support.served import free_port

STARTUP_SECONDS = 60


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with these labels (others may be there too); 0 when it is absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _label_values(text: str, name: str, label: str) -> set[str]:
    return {s.labels[label] for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


# ------------------------------------------------------------------ under gunicorn, as `vcops serve` runs it

class Served:
    """`vcops serve` with two web workers in a session of its own; stop() ends it and everything it started."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            # `-m app.cli` from the project folder: the code under test, as `vcops serve` runs it.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "2"], cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        booted = 0
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and self.proc.poll() is None:
            booted = self.log.read_text().count("Booting worker with pid")
            if booted >= 2 * self.starts:
                try:
                    _get(f"{self.url}/healthz")  # 503 without a queue worker, but an answer: listening
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not start (workers booted: {booted}); log:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:  # whatever is left of its session (a worker that ignored the master)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not any(k == f"VCOPS_{s.key}" for s in SETTINGS)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(VCOPS_INSTANCE_PATH=str(tmp_path / "instance"), VCOPS_EMBEDDED_WORKER="false",
               VCOPS_METRICS_DIR=str(tmp_path / "metrics"), PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-m", "app.cli", "db", "upgrade"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    server = Served(env, tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def _login_pages(url: str, count: int) -> None:
    # Several at once, each on a new connection: the two sync workers share them.
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: _get(f"{url}/login")[0], range(count)))
    assert statuses == [200] * count


def _worker_pids_with_counts(metrics_dir: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}


def test_prometheus_sees_the_requests_of_every_web_worker_added_up_whichever_worker_answers(served, tmp_path):
    served.start()
    _login_pages(served.url, 60)
    # The premise of the test: both workers answered some of the pages (each keeps its own counts).
    assert len(_worker_pids_with_counts(tmp_path / "metrics")) == 2

    for _ in range(12):  # new connections: each scrape reaches whichever worker accepts it
        status, text = _get(f"{served.url}/metrics")
        assert status == 200
        assert _sample(text, "vcops_http_requests_total", method="GET", endpoint="auth.login", status="200") == 60
        assert _sample(text, "vcops_http_request_duration_seconds_count", method="GET", endpoint="auth.login") == 60
        assert _sample(text, "vcops_http_request_duration_seconds_bucket", method="GET", endpoint="auth.login",
                       le="+Inf") == 60
        assert _sample(text, "vcops_http_request_duration_seconds_sum", method="GET", endpoint="auth.login") > 0

    # A restart starts from the new workers' counts: the old workers' files are gone, not added in.
    served.stop()
    served.start()
    _login_pages(served.url, 7)
    text = _get(f"{served.url}/metrics")[1]
    assert _sample(text, "vcops_http_requests_total", method="GET", endpoint="auth.login", status="200") == 7


# ------------------------------------------------------------------ in one process (the test client)

def _scrape(client: Any, **environ: str) -> tuple[int, str]:
    response = client.get("/metrics", environ_base=environ)
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_paths_and_made_up_methods_never_become_new_series(client):
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    client.open("/login", method="BREW")
    client.get("/sites")  # a view, anonymous: sent to log in
    status, text = _scrape(client)
    assert status == 200
    endpoints = _label_values(text, "vcops_http_requests_total", "endpoint")
    assert not any("/" in endpoint for endpoint in endpoints), endpoints
    assert {"unmatched", "sites.site_list"} <= endpoints
    assert _label_values(text, "vcops_http_requests_total", "method") <= {"GET", "HEAD", "POST", "PUT", "PATCH",
                                                                          "DELETE", "OPTIONS", "other"}
    assert _sample(text, "vcops_http_requests_total", method="other", endpoint="unmatched", status="405") >= 1
    assert _sample(text, "vcops_http_requests_total", method="GET", endpoint="sites.site_list", status="302") >= 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_each_request_counts_once_with_the_status_it_got(client):
    before = _scrape(client)[1]
    for _ in range(3):
        client.get("/no/such/page")
    after = _scrape(client)[1]
    labels = {"method": "GET", "endpoint": "unmatched", "status": "404"}
    assert _sample(after, "vcops_http_requests_total", **labels) - _sample(before, "vcops_http_requests_total",
                                                                           **labels) == 3


def test_metrics_are_refused_to_addresses_outside_the_allow_list(fresh_app):
    client = fresh_app("sqlite", METRICS_ALLOW="198.18.0.0/15, 2001:db8::/32").test_client()

    status, text = _scrape(client)  # the test client comes from 127.0.0.1
    assert status == 403
    assert "METRICS_ALLOW" in text
    assert _scrape(client, REMOTE_ADDR="198.18.4.7")[0] == 200
    assert _scrape(client, REMOTE_ADDR="2001:db8::7")[0] == 200
    assert _scrape(client, REMOTE_ADDR="::ffff:198.18.4.7")[0] == 200  # an IPv4 client of a server on [::]
    assert _scrape(client, REMOTE_ADDR="198.20.0.1")[0] == 403


def test_behind_a_trusted_proxy_the_real_client_address_decides(fresh_app):
    direct = fresh_app("sqlite").test_client()
    # Through a proxy the app was not told about, the address seen is the proxy's: refused, whatever it is.
    assert direct.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert direct.get("/metrics", headers={"Forwarded": "for=127.0.0.1"}).status_code == 403

    proxied = fresh_app("sqlite", PROXY_COUNT=1).test_client()
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_a_bad_allow_list_stops_the_app_naming_the_setting(fresh_app):
    with pytest.raises(RuntimeError, match="VCOPS_METRICS_ALLOW: 'localhost' is not an address"):
        fresh_app("sqlite", METRICS_ALLOW="127.0.0.1, localhost")
