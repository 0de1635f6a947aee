"""Real Prometheus and Alertmanager servers for tests, each on a loopback port with a data folder of its own.

    with prometheus(tmp_path / "prom", {"vcops-exporter": ["127.0.0.1:9560"]}) as prom:
        prom.wait_for(lambda: prom.query("vcops_site_info"))
    with webhook_receiver() as hook, alertmanager(tmp_path / "am", am_test_config(hook.url, token_file)) as am:
        am.post_alerts([...]); am.alerts()
    with vcops_exporter(app) as url: ...          # `vcops exporter` as a process, on the app's database
    prometheus(..., alertmanager=f"127.0.0.1:{am.port}", rule_files=rules_with_short_for(tmp_path / "rules"))

Prometheus loads the project's rules (monitoring/rules/*.yml) unless told otherwise and scrapes every second;
`am_test_config` is monitoring/alertmanager.yml with only what must change in a test changed: the webhook
points at the test's receiver, mail goes to the test's SMTP server, and groups are sent after a second instead
of half a minute. The routes and inhibit rules are the project's. Without the binaries, `missing_*()` give the
reason to skip (tests/conftest.py turns the skip into a failure in CI). Processes are stopped and folders left to
pytest's tmp_path when a block ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
MONITORING = REPO / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


def missing_prometheus() -> str | None:
    if PROMETHEUS is None or PROMTOOL is None:
        return "prometheus/promtool not installed: apt-get install prometheus"
    return None


def missing_alertmanager() -> str | None:
    if ALERTMANAGER is None or AMTOOL is None:
        return "Alertmanager/amtool not installed: apt-get install prometheus-alertmanager"
    return None


def free_port() -> int:
    """A loopback port free right now, for servers that cannot be told to bind port 0 and report it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll until `predicate()` is truthy and return it; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class _Server:
    """A server process on a loopback port; `close()` stops it (TERM, then KILL)."""

    name = "server"

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    return response.status == 200
            except (OSError, urllib.error.URLError):
                return False

        wait_for(ready, timeout, f"{self.name} on port {self.port} to be ready")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


S = TypeVar("S", bound=_Server)


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _serving(kind: type[S], argv: list[str], log: Path) -> Iterator[S]:
    """Start `argv` listening on a free loopback port (--web.listen-address), wait until it is ready, stop it
    at the end of the block."""
    for _attempt in range(3):  # the free port can be taken between the check and the bind: try another
        port = free_port()
        server = kind(_start([*argv, f"--web.listen-address=127.0.0.1:{port}"], log), port, log)
        try:
            server._wait_ready()
            break
        except AssertionError:
            server.close()
            if "address already in use" not in log.read_text():
                raise
    else:
        raise AssertionError(f"no free port for {kind.name} after three tries")
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------- Prometheus

class Prometheus(_Server):
    name = "prometheus"

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            answer = _http("GET", f"{self.url}/api/v1/{path}?{query}")
        except urllib.error.HTTPError as exc:  # a bad query: say what Prometheus said about it
            raise AssertionError(f"Prometheus refused {path} {params}: {exc.read().decode()}") from exc
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (a list of {metric, value}), or a scalar as a one-element list."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60, what: str = "Prometheus") -> Any:
        return wait_for(predicate, timeout, what)

    def wait_until_scraped(self, timeout: float = 60) -> None:
        """Until every target has been scraped successfully at least once."""
        wait_for(lambda: (t := self.targets()) and all(x["health"] == "up" for x in t), timeout,
                 "every target to be scraped")


def prometheus_config(scrape: dict[str, list[str]], *, rule_files: list[Path] | None = None,
                      alertmanager: str | None = None, interval: str = "1s") -> dict[str, Any]:
    """A configuration like monitoring/prometheus.yml's: `scrape` maps job names (vcops-probe, vcops-exporter,
    vcops-web: the rules use them) to targets."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in (RULE_FILES if rule_files is None else rule_files)],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in scrape.items()],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def rules_with_short_for(workdir: Path, duration: str = "2s") -> list[Path]:
    """A copy of the project's rules whose alerts wait `duration` instead of their `for`, for tests of delivery
    (Prometheus -> Alertmanager -> webhook) that need not wait minutes; the rules' timing has its own tests
    (monitoring/tests). Pass the result as `rule_files=`."""
    workdir.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in RULE_FILES:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = duration
        copy_path = workdir / path.name
        copy_path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
        copies.append(copy_path)
    return copies


@contextlib.contextmanager
def prometheus(workdir: Path, scrape: dict[str, list[str]], **options: Any) -> Iterator[Prometheus]:
    """A Prometheus scraping `scrape` every second with the project's rules (see prometheus_config)."""
    reason = missing_prometheus()
    if reason:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(scrape, **options)))
    check = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise AssertionError(f"promtool refused the test configuration:\n{check.stdout}{check.stderr}")
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}", "--log.level=warn"]
    with _serving(Prometheus, argv, workdir / "prometheus.log") as server:
        yield server


# ---------------------------------------------------------------- Alertmanager

class Alertmanager(_Server):
    name = "alertmanager"

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts: each {labels: {...}, annotations: {...}} (startsAt defaults to now)."""
        _http("POST", f"{self.url}/api/v2/alerts", alerts)

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: every alert with its status (state, inhibitedBy, silencedBy)."""
        return list(_http("GET", f"{self.url}/api/v2/alerts"))

    def alert(self, **labels: str) -> dict[str, Any] | None:
        """The alert whose labels include `labels`, or None."""
        for found in self.alerts():
            if all(found["labels"].get(k) == v for k, v in labels.items()):
                return found
        return None


def am_test_config(webhook_url: str, token_file: Path, smtp: str | None = None, *,
                   group_wait: str = "1s") -> dict[str, Any]:
    """monitoring/alertmanager.yml for a test: the webhook to `webhook_url` (the bearer token from `token_file`),
    mail through `smtp` (host:port, plain SMTP) or none, groups sent after `group_wait`. Routes, receivers'
    names and inhibit rules stay the project's."""
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    config = copy.deepcopy(config)
    for key in ("smtp_auth_username", "smtp_auth_password", "smtp_auth_password_file"):
        config["global"].pop(key, None)
    config["global"]["smtp_require_tls"] = False
    config["global"]["smtp_smarthost"] = smtp or "127.0.0.1:9"  # never used without `smtp`: the mail is removed
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        if not smtp:
            receiver.pop("email_configs", None)

    def speed_up(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = group_wait
        for child in route.get("routes", []):
            speed_up(child)

    speed_up(config["route"])
    return config


@contextlib.contextmanager
def alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[Alertmanager]:
    """A lone Alertmanager (no cluster) with `config`, checked by amtool first."""
    reason = missing_alertmanager()
    if reason:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    check = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise AssertionError(f"amtool refused the test configuration:\n{check.stdout}{check.stderr}")
    argv = [ALERTMANAGER, f"--config.file={path}", f"--storage.path={workdir / 'data'}", "--cluster.listen-address=",
            "--log.level=warn"]
    with _serving(Alertmanager, argv, workdir / "alertmanager.log") as server:
        yield server


# ---------------------------------------------------------------- a webhook receiver

@dataclass
class Delivery:
    path: str
    authorization: str
    payload: dict[str, Any]


@dataclass
class WebhookReceiver:
    """Records every POST it gets: what Alertmanager delivers to a webhook."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert delivered so far, in order (an alert delivered twice appears twice)."""
        return [alert for d in list(self.deliveries) for alert in d.payload.get("alerts", [])]


@contextlib.contextmanager
def webhook_receiver(path: str = "/api/v1/alerts/webhook") -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.deliveries.append(Delivery(self.path, self.headers.get("Authorization", ""), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # the base class names it `format`
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- the state exporter as a process

def vcops_environment(app: Any, **settings: Any) -> dict[str, str]:
    """The environment of a `vcops` process working on `app`'s database, with `settings` as VCOPS_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCOPS_")}
    env.update({"VCOPS_DATABASE_URL": app.config["DATABASE_URL"], "VCOPS_INSTANCE_PATH": app.config["INSTANCE_PATH"],
                "VCOPS_REDIS_URL": "", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    env.update({f"VCOPS_{key}": str(value) for key, value in settings.items()})
    return env


@contextlib.contextmanager
def vcops_exporter(app: Any, *args: str, **settings: Any) -> Iterator[str]:
    """`vcops exporter --listen 127.0.0.1:0 ARGS` on `app`'s database; yields its /metrics address. Stopped with
    SIGTERM (and must exit 0) when the block ends."""
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "exporter", "--listen", "127.0.0.1:0", *args],
                            cwd=REPO, env=vcops_environment(app, **settings), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"serving (http://\S+/metrics)", line)
        if not match:
            proc.kill()
            raise AssertionError(f"vcops exporter did not start: {line}{proc.communicate(timeout=10)}")
        yield match[1]
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, f"vcops exporter exited with {proc.returncode}: {err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
