"""The Grafana dashboards as operators open them: every panel's query is valid PromQL that returns data from a real
Prometheus scraping the real probe agent (measuring links whose far ends live in a probe lab) and the real
`vcops exporter`, with the rules loaded; and every panel shows seconds as time and ratios as percentages."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.db import commit_scope, db, utcnow
from app.monitoring.agent.probe import Agent
from app.sites import equipment, maintenance, service
from app.sites.models import EndpointKind, LinkMedium
from tests.monitoring.promlab import MONITORING, missing_prometheus, prometheus, vcops_exporter

DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
# Grafana's own variables, as Grafana would fill them in for a query over the last hour.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


def queries(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in panels(dashboard) for target in panel.get("targets", [])]


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in {**GRAFANA_VARIABLES, **{f"${k}": v for k, v in variables.items()}}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a variable is left in {expr!r}"
    return expr


def unit_of(panel: dict[str, Any], target: dict[str, Any]) -> str:
    """The unit Grafana shows a query's values in: the table column's override, or the panel's default."""
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": f"Value #{target['refId']}"}:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    return str(prop["value"])
    return str(panel["fieldConfig"]["defaults"].get("unit", ""))


def expected_unit(expr: str) -> str:
    if re.search(r"_seconds\b(?!_total)", expr) and "timestamp_seconds" not in expr:
        return "s"
    if "ratio" in expr:
        return "percentunit"
    return "none"  # counts of links, sites, endpoints, echoes; up/down


# ---------------------------------------------------------------- the files

def test_there_is_an_overview_and_a_per_link_dashboard_with_a_link_variable():
    by_uid = {d["uid"]: d for d in map(load, DASHBOARDS)}
    assert set(by_uid) == {"vcops-overview", "vcops-link"}
    variables = {v["name"]: v for v in by_uid["vcops-link"]["templating"]["list"]}
    assert variables["link"]["query"]["query"] == "label_values(vcops_link_up, link)"
    assert variables["datasource"]["type"] == "datasource"
    # Every panel of the link dashboard shows the chosen link.
    for panel, target in queries(by_uid["vcops-link"]):
        assert "$link" in target["expr"], panel["title"]
    # The overview's table opens the link dashboard of the clicked link.
    overview = json.dumps(by_uid["vcops-overview"])
    assert "/d/vcops-link/" in overview and "var-link=" in overview


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_show_seconds_as_time_ratios_as_percentages_and_counts_as_numbers(path):
    dashboard = load(path)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel, target in queries(dashboard):
        assert panel["title"] and panel["description"], panel
        assert unit_of(panel, target) == expected_unit(target["expr"]), f"{panel['title']}: {target['expr']}"
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(dashboard):
        if panel["fieldConfig"]["defaults"].get("unit") == "percentunit" and panel["type"] == "timeseries":
            assert panel["fieldConfig"]["defaults"]["max"] == 1, panel["title"]


# ---------------------------------------------------------------- against a real Prometheus

FAST = {"PROBE_STEP_SECONDS": 1, "PROBE_ECHOES": 5, "PROBE_ECHO_INTERVAL": 0.02, "PROBE_TIMEOUT": 0.5,
        "DEVICE_CONNECT_TIMEOUT": 3, "DEVICE_COMMAND_TIMEOUT": 3}


def seed(app: Any, addresses: list[str]) -> None:
    """A province, a district with a primary uplink and a mobile backup, a commune below it with an endpoint and
    a maintenance window; every far end and the endpoint live in the probe lab."""
    with app.app_context():
        with commit_scope() as session:
            service.ensure_levels(session, "three-level")
            province = service.create_site(session, {"code": "LAB", "name": "Tỉnh thử", "level": "province"})
            district = service.create_site(session, {"code": "LAB-D", "name": "Huyện thử", "level": "district",
                                                     "parent_id": province.id})
            commune = service.create_site(session, {"code": "LAB-D-C", "name": "Xã thử", "level": "commune",
                                                    "parent_id": district.id})
            for code, child, parent, address, medium in (
                    ("LAB-D-1", district, province, addresses[0], LinkMedium.DEDICATED),
                    ("LAB-D-4G", district, province, addresses[1], LinkMedium.MOBILE_BACKUP),
                    ("LAB-D-C-1", commune, district, addresses[2], LinkMedium.DEDICATED)):
                equipment.save_link(session, {"code": code, "site_a_id": child.id, "address_a": address,
                                            "site_b_id": parent.id, "medium": medium, "bandwidth_kbps": 8000})
            equipment.save_endpoint(session, {"site_id": commune.id, "room_name": "Phòng họp", "vendor": "",
                                            "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": addresses[3]})
            now = utcnow()
            maintenance.create_maintenance(session, "site", commune.id, now - dt.timedelta(minutes=5),
                                       now + dt.timedelta(hours=1), "Thay bộ định tuyến", None)
        db.session.remove()


@pytest.mark.skipif(missing_prometheus() is not None, reason=str(missing_prometheus()))
def test_every_panel_query_returns_data_from_prometheus_scraping_the_agent_and_the_exporter(
        fresh_app, netlab, tmp_path):
    lab = netlab(4)
    app = fresh_app("sqlite", **FAST)
    seed(app, lab.addresses)
    agent = Agent(app, listen="127.0.0.1:0")
    failures: list[str] = []
    agent.start()
    try:
        assert agent.server is not None
        with vcops_exporter(app, "--refresh-seconds", "1") as exporter_url:
            exporter = re.sub(r"^http://|/metrics$", "", exporter_url)
            scrape = {"vcops-probe": [f"127.0.0.1:{agent.server.port}"], "vcops-exporter": [exporter]}
            with prometheus(tmp_path / "prometheus", scrape) as prom:
                prom.wait_until_scraped()
                # The loss ratio needs two scrapes of the counters; the rest is there after one.
                prom.wait_for(lambda: len(prom.query("link:vcops_link_packet_loss:ratio5m")) == 3, 60,
                              "the loss ratio of the three links")
                links = prom.label_values("link", "vcops_link_up")
                assert links == ["LAB-D-1", "LAB-D-4G", "LAB-D-C-1"]
                failures = check_every_query(prom, {"link": "LAB-D-1"})
                # The overview's table has a row for every link, with each of its columns.
                rows = prom.query("max by (link, site) (vcops_link_rtt_seconds)")
                assert sorted(r["metric"]["link"] for r in rows) == links
    finally:
        agent.stop()
    assert not failures, "panels without data:\n" + "\n".join(failures)


def check_every_query(prom: Any, variables: dict[str, str]) -> list[str]:
    """Run every panel's query as Grafana would (instant, and over the last minute for graphs); the problems."""
    failures = []
    end = time.time()
    for path in DASHBOARDS:
        for panel, target in queries(load(path)):
            expr = substitute(target["expr"], variables)
            where = f"{path.stem} / {panel['title']} / {expr}"
            try:
                if not prom.query(expr):
                    failures.append(f"{where}: no data")
                if target.get("range", True) and not prom.query_range(expr, end - 60, end, 1):
                    failures.append(f"{where}: no data over the last minute")
            except AssertionError as exc:  # Prometheus refused the query
                failures.append(f"{where}: {exc}")
    return failures
