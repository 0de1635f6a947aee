"""The alerting as operators live with it: Prometheus' configuration and rules pass promtool, every alert has unit
tests that fire it and keep it quiet, every alert says what to do; and a real Alertmanager with the project's
configuration delivers to the VCOps webhook (with its bearer token) and to the operators' mail, while holding back
what a downed district uplink or a maintenance window explains."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from app.db import commit_scope, db
from app.monitoring.agent.probe import Agent
from app.sites import equipment, service
from app.sites.models import EndpointKind, LinkMedium
from tests.monitoring.promlab import (
    AMTOOL,
    MONITORING,
    PROMTOOL,
    RULE_FILES,
    alertmanager,
    am_test_config,
    free_port,
    missing_alertmanager,
    missing_prometheus,
    prometheus,
    rules_with_short_for,
    vcops_exporter,
    wait_for,
    webhook_receiver,
)

UNIT_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
needs_promtool = pytest.mark.skipif(missing_prometheus() is not None, reason=str(missing_prometheus()))
needs_alertmanager = pytest.mark.skipif(missing_alertmanager() is not None, reason=str(missing_alertmanager()))


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def run(*argv: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- Prometheus' side

@needs_promtool
def test_prometheus_configuration_and_its_rules_pass_promtool():
    checked = run(PROMTOOL, "check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout and "rules found" in checked.stdout
    checked = run(PROMTOOL, "check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_scrapes_the_agents_the_exporter_and_the_web_app_and_alerts_alertmanager():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The rules name these jobs (MonitoringTargetDown inhibits LinkNotProbed for vcops-probe).
    assert set(jobs) == {"vcops-probe", "vcops-exporter", "vcops-web"}
    assert jobs["vcops-exporter"]["static_configs"][0]["targets"] == ["127.0.0.1:9560"]  # EXPORTER_LISTEN
    assert jobs["vcops-probe"]["static_configs"][0]["targets"] == ["127.0.0.1:9561"]  # PROBE_LISTEN
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert "file_sd_configs" in (MONITORING / "prometheus.yml").read_text()  # how to add shards is written down


@needs_promtool
def test_every_alert_passes_its_promtool_unit_tests():
    assert UNIT_TESTS, "no promtool unit tests in monitoring/tests"
    tested = run(PROMTOOL, "test", "rules", *(str(p.relative_to(MONITORING)) for p in UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(UNIT_TESTS), tested.stdout


def test_every_alert_has_unit_tests_that_fire_it_and_that_keep_it_quiet():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


def test_every_alert_says_what_happened_and_what_to_do_with_a_severity():
    for rule in alert_rules():
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert len(annotations.get(key, "").split()) >= 5, f"{rule['alert']}: {key} missing or too short"
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule["alert"]
    required = {"LinkDown", "LinkHighLoss", "LinkHighLatency", "LinkHighJitter", "LinkFlapping", "EndpointUnreachable",
                "EndpointNotRegistered", "LinkFailover", "MeetingSiteAtRisk", "MaintenanceWindow"}
    assert required <= {rule["alert"] for rule in alert_rules()}


@needs_promtool
def test_the_unit_tests_catch_a_wrong_threshold_or_a_lost_failover(tmp_path):
    """The promtool tests bite: a copy of the rules with a flapping threshold of 2 and with backups ignored
    (every primary down counted as a cut) fails them."""
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING / "rules", copy / "rules")
    shutil.copytree(MONITORING / "tests", copy / "tests")
    path = copy / "rules" / "vcops.yml"
    text = path.read_text()
    broken = text.replace("(changes(vcops_link_up[15m])) > 3", "(changes(vcops_link_up[15m])) > 2")
    broken = re.sub(r"unless on \(link\)\n\s+label_replace\(\n\s+count by \(backup_of\).*?\"\(\.\+\)\"\)\n",
                    "\n", broken, count=1, flags=re.S)
    assert broken.count("(changes(vcops_link_up[15m])) > 2") == 2 and len(broken) < len(text) - 200
    path.write_text(broken)
    tested = run(PROMTOOL, "test", "rules", "tests/links_test.yml", cwd=copy)
    assert tested.returncode != 0
    report = tested.stdout + tested.stderr
    assert "alertname: LinkFlapping" in report and "alertname: LinkFailover" in report


# ---------------------------------------------------------------- Alertmanager's side

@needs_alertmanager
def test_alertmanager_configuration_passes_amtool():
    checked = run(AMTOOL, "check-config", "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alertmanager_posts_to_the_vcops_webhook_with_a_token_file_and_mails_the_operators():
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    (hook,) = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert hook["url"].endswith("/api/v1/alerts/webhook") and hook["send_resolved"] is True
    # The token is read from a file, never written in the configuration.
    assert hook["http_config"]["authorization"] == {"type": "Bearer",
                                                    "credentials_file": "/etc/prometheus/vcops-webhook-token"}
    assert receivers[config["route"]["receiver"]]["email_configs"][0]["to"]
    assert "smtp_auth_password" not in config["global"] and config["global"]["smtp_auth_password_file"]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"127.0.0.1:{port}"
    finally:
        controller.stop()


def alert(name: str, severity: str = "warning", **labels: str) -> dict[str, Any]:
    """An alert as Prometheus sends it (labels as the rules make them; see monitoring/tests/links_test.yml)."""
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} {labels}", "description": "-", "runbook": "-"}}


# The district D2's uplink is cut: its LinkDown is the origin, everything of D2 and of the commune C21 below it is
# downstream. D1 is another district, with its own trouble, that nothing explains.
DISTRICT_DOWN = alert("LinkDown", "critical", link="L-D2", site="D2", outage="L-D2", outage_role="origin")
BELOW = [
    alert("LinkDown", "critical", link="L-C21", site="C21", outage="L-D2", outage_role="downstream"),
    alert("EndpointUnreachable", endpoint="8", site="C21", outage="L-D2", outage_role="downstream"),
    alert("EndpointUnreachable", endpoint="7", site="D2", outage="L-D2", outage_role="downstream"),
]
AT_RISK = alert("MeetingSiteAtRisk", "critical", meeting="41", title="Giao ban", site="C21", outage="L-D2",
                outage_role="downstream")
ELSEWHERE = [
    alert("LinkDown", "critical", link="L-D1", site="D1", outage="L-D1", outage_role="origin"),
    alert("LinkHighLoss", link="L-C11", site="C11"),
]


def names(alerts: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"]["site"]) for a in alerts}


@needs_alertmanager
def test_a_downed_district_uplink_holds_back_the_alerts_of_every_site_below_it(tmp_path, mailbox):
    box, smtp = mailbox
    token = tmp_path / "webhook-token"
    token.write_text("vcops-test-token-7f3a")
    with webhook_receiver() as hook, alertmanager(tmp_path / "am", am_test_config(hook.url, token, smtp)) as am:
        am.post_alerts([DISTRICT_DOWN, *BELOW, AT_RISK, *ELSEWHERE])

        district = wait_for(lambda: am.alert(alertname="LinkDown", site="D2"), 10, "the district's LinkDown")
        for below in BELOW:
            found = wait_for(lambda b=below: (a := am.alert(**b["labels"])) and a["status"]["inhibitedBy"] and a,
                             10, f"{below['labels']} to be inhibited")
            assert found["status"]["state"] == "suppressed"
            assert found["status"]["inhibitedBy"] == [district["fingerprint"]]
        assert district["status"] == {"state": "active", "inhibitedBy": [], "silencedBy": []}
        for other in [AT_RISK, *ELSEWHERE]:
            assert am.alert(**other["labels"])["status"]["state"] == "active", other["labels"]

        # What the operators receive: the cause, the other district's trouble and the meeting at risk.
        expected = {("LinkDown", "D2"), ("LinkDown", "D1"), ("LinkHighLoss", "C11"), ("MeetingSiteAtRisk", "C21")}
        wait_for(lambda: names(hook.alerts()) >= expected, 20, "the webhook deliveries")
        time.sleep(2)  # a group sent late would show here
        assert names(hook.alerts()) == expected
        assert {d.authorization for d in hook.deliveries} == {"Bearer vcops-test-token-7f3a"}
        assert {d.path for d in hook.deliveries} == {"/api/v1/alerts/webhook"}
        mail = wait_for(lambda: [m for m in box.messages if "LinkDown" in str(m["Subject"])
                                 and "L-D2" in m.get_body(("html", "plain")).get_content()], 20, "the mail")
        assert mail[0]["To"] == "truc-van-hanh@example.gov.vn"
        assert not [m for m in box.messages if "EndpointUnreachable" in str(m["Subject"])]


@needs_alertmanager
def test_a_maintenance_window_holds_back_the_site_alerts_but_not_its_meeting_at_risk(tmp_path):
    token = tmp_path / "webhook-token"
    token.write_text("vcops-test-token-7f3a")
    window = alert("MaintenanceWindow", "none", site="C11")
    # The router is being replaced: the link is down; the endpoint of the room next door is being upgraded.
    inside = [alert("LinkDown", "critical", link="L-C11", site="C11", outage="L-C11", outage_role="origin"),
              alert("EndpointUnreachable", endpoint="5", site="C13")]
    window_too = alert("MaintenanceWindow", "none", site="C13")
    at_risk = alert("MeetingSiteAtRisk", "critical", meeting="42", title="Họp khẩn", site="C11", outage="L-C11",
                    outage_role="downstream")
    outside = alert("EndpointUnreachable", endpoint="6", site="C12")
    with webhook_receiver() as hook, alertmanager(tmp_path / "am", am_test_config(hook.url, token)) as am:
        am.post_alerts([window, window_too, *inside, at_risk, outside])

        for held in inside:
            maintenance = wait_for(lambda h=held: am.alert(alertname="MaintenanceWindow", site=h["labels"]["site"]),
                                   10, "the maintenance alert")
            found = wait_for(lambda h=held: (a := am.alert(**h["labels"])) and a["status"]["inhibitedBy"] and a,
                             10, f"{held['labels']} to be inhibited")
            assert found["status"]["inhibitedBy"] == [maintenance["fingerprint"]]
        assert am.alert(**at_risk["labels"])["status"]["state"] == "active"
        assert am.alert(**outside["labels"])["status"]["state"] == "active"

        expected = {("MeetingSiteAtRisk", "C11"), ("EndpointUnreachable", "C12")}
        wait_for(lambda: names(hook.alerts()) >= expected, 20, "the webhook deliveries")
        time.sleep(2)
        # The window itself goes to the "null" receiver: nobody is paged about planned work.
        assert names(hook.alerts()) == expected


@needs_alertmanager
def test_work_on_a_district_uplink_silences_the_communes_below_it_too(tmp_path):
    """The window names the district only (its uplink), but the district's LinkDown, held back by the window,
    still holds back the alerts of the communes below."""
    token = tmp_path / "webhook-token"
    token.write_text("vcops-test-token-7f3a")
    with webhook_receiver() as hook, alertmanager(tmp_path / "am", am_test_config(hook.url, token)) as am:
        am.post_alerts([alert("MaintenanceWindow", "none", site="D2"), DISTRICT_DOWN, *BELOW])

        window = wait_for(lambda: am.alert(alertname="MaintenanceWindow"), 10, "the maintenance alert")
        district = wait_for(lambda: (a := am.alert(**DISTRICT_DOWN["labels"])) and a["status"]["inhibitedBy"] and a,
                            10, "the district's LinkDown to be held back by the window")
        assert district["status"]["inhibitedBy"] == [window["fingerprint"]]
        for below in BELOW:
            held = wait_for(lambda b=below: (a := am.alert(**b["labels"])) and a["status"]["inhibitedBy"] and a, 10,
                            f"{below['labels']} to be inhibited")
            assert held["status"]["state"] == "suppressed"
        time.sleep(3)  # past group_wait: nothing was sent
        assert hook.alerts() == []


# ---------------------------------------------------------------- the whole chain

def seed_two_districts(app: Any, cut: list[str], healthy: list[str]) -> None:
    """District LAB-A with a commune below it, and district LAB-B: LAB-A's uplink, its commune's uplink and the
    commune's endpoint are in the lab `cut`; LAB-B's uplink in the lab `healthy`."""
    with app.app_context():
        with commit_scope() as session:
            service.ensure_levels(session, "three-level")
            province = service.create_site(session, {"code": "LAB", "name": "Tỉnh thử", "level": "province"})
            a = service.create_site(session, {"code": "LAB-A", "name": "Huyện A", "level": "district",
                                              "parent_id": province.id})
            b = service.create_site(session, {"code": "LAB-B", "name": "Huyện B", "level": "district",
                                              "parent_id": province.id})
            commune = service.create_site(session, {"code": "LAB-A-X", "name": "Xã X", "level": "commune",
                                                    "parent_id": a.id})
            for code, child, parent, address in (("LAB-A-1", a, province, cut[0]), ("LAB-A-X-1", commune, a, cut[1]),
                                                 ("LAB-B-1", b, province, healthy[0])):
                equipment.save_link(session, {"code": code, "site_a_id": child.id, "address_a": address,
                                            "site_b_id": parent.id, "medium": LinkMedium.DEDICATED,
                                            "bandwidth_kbps": 8000})
            equipment.save_endpoint(session, {"site_id": commune.id, "room_name": "Phòng họp", "vendor": "",
                                            "kind": EndpointKind.ROOM_SYSTEM, "mgmt_address": cut[2]})
        db.session.remove()


@pytest.mark.skipif(missing_prometheus() is not None or missing_alertmanager() is not None,
                    reason=str(missing_prometheus() or missing_alertmanager()))
def test_a_cut_district_reaches_the_operators_as_its_own_link_down_only(fresh_app, netlab, tmp_path):
    """The agent measures, the exporter tells the tree, Prometheus labels the alerts, Alertmanager holds back the
    commune's: the webhook hears of the district's uplink and of nothing below it. (The rules wait 5 s instead
    of their `for`: their timing is the promtool tests' business.)"""
    cut, healthy = netlab(3), netlab(1)
    app = fresh_app("sqlite", PROBE_STEP_SECONDS=1, PROBE_ECHOES=5, PROBE_ECHO_INTERVAL=0.02, PROBE_TIMEOUT=0.5)
    seed_two_districts(app, cut.addresses, healthy.addresses)
    token = tmp_path / "webhook-token"
    token.write_text("vcops-test-token-7f3a")
    agent = Agent(app, listen="127.0.0.1:0")
    agent.start()
    try:
        assert agent.server is not None
        with vcops_exporter(app, "--refresh-seconds", "1") as exporter_url, webhook_receiver() as hook, \
                alertmanager(tmp_path / "am", am_test_config(hook.url, token)) as am:
            scrape = {"vcops-probe": [f"127.0.0.1:{agent.server.port}"],
                      "vcops-exporter": [exporter_url.removeprefix("http://").removesuffix("/metrics")]}
            with prometheus(tmp_path / "prometheus", scrape, alertmanager=f"127.0.0.1:{am.port}",
                            rule_files=rules_with_short_for(tmp_path / "rules", "5s")) as prom:
                prom.wait_for(lambda: len(prom.query("link:vcops_link_up:max == 1")) == 3
                              and prom.query("vcops_link_ancestor_info"), 60, "the links up and the tree known")
                cut.set_down()

                district = wait_for(lambda: (a := am.alert(alertname="LinkDown", link="LAB-A-1"))
                                    and a["status"]["state"] == "active" and a, 60, "the district's LinkDown")
                assert district["labels"]["outage_role"] == "origin" and district["labels"]["outage"] == "LAB-A-1"
                for below in ({"alertname": "LinkDown", "link": "LAB-A-X-1"},
                              {"alertname": "EndpointUnreachable", "site": "LAB-A-X"}):
                    held = wait_for(lambda b=below: (a := am.alert(**b)) and a["status"]["inhibitedBy"] and a, 60,
                                    f"{below} to reach Alertmanager and be inhibited")
                    assert held["labels"]["outage"] == "LAB-A-1" and held["labels"]["outage_role"] == "downstream"
                    assert held["status"]["inhibitedBy"] == [district["fingerprint"]]
                wait_for(lambda: ("LinkDown", "LAB-A") in names(hook.alerts()), 20, "the webhook delivery")
                time.sleep(3)
                assert names(hook.alerts()) == {("LinkDown", "LAB-A")}
                assert not am.alert(link="LAB-B-1")  # the healthy district is quiet
    finally:
        agent.stop()
