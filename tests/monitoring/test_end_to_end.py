"""The operators' whole chain, every part real: the probe agent measures namespaced links, `vcops exporter` tells
the tree, the Debian Prometheus scrapes both and fires LinkDown, the Debian Alertmanager holds back what the
district's cut explains and posts the rest to VCOps' own webhook (an operator's bearer token read from a file),
the incident appears in the app, and the board in Chromium shows the district down.

The rules wait 5 s instead of their `for` (their timing is the promtool tests' business); the probes step every
second with a few echoes (the defaults stay 20 echoes over a 60 s step)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.auth.service import create_token, create_user
from app.db import commit_scope, db
from app.monitoring.agent.probe import Agent
from app.monitoring.models import Incident
from tests.conftest import PASSWORD
from tests.monitoring.promlab import (
    alertmanager,
    am_test_config,
    missing_alertmanager,
    missing_prometheus,
    prometheus,
    rules_with_short_for,
    vcops_exporter,
    wait_for,
)
from tests.monitoring.test_rules import seed_two_districts
from tests.support.browser import logged_in_page, served

pytestmark = pytest.mark.skipif(missing_prometheus() is not None or missing_alertmanager() is not None,
                                reason=str(missing_prometheus() or missing_alertmanager()))


def _incidents(app: Any) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = [(i.alertname, i.link_code or i.site_code, i.status.value)
                for i in db.session.scalars(sa.select(Incident).order_by(Incident.id))]
        db.session.remove()
    return rows


def test_a_cut_district_becomes_one_incident_in_vcops_and_shows_down_on_the_board(fresh_app, netlab, tmp_path):
    cut, healthy = netlab(3), netlab(1)
    app = fresh_app("sqlite", PROBE_STEP_SECONDS=1, PROBE_ECHOES=5, PROBE_ECHO_INTERVAL=0.02, PROBE_TIMEOUT=0.5)
    seed_two_districts(app, cut.addresses, healthy.addresses)
    with app.app_context():
        with commit_scope() as session:
            create_user(session, "operator@example.com", Role.OPERATOR, PASSWORD, name="Trực vận hành")
            hook_user = create_user(session, "alertmanager@example.com", Role.OPERATOR, PASSWORD, name="Alertmanager")
            _token, secret = create_token(session, hook_user, "alertmanager")
        db.session.remove()
    token_file = tmp_path / "webhook-token"
    token_file.write_text(secret)
    token_file.chmod(0o600)

    agent = Agent(app, listen="127.0.0.1:0")
    agent.start()
    try:
        assert agent.server is not None
        with served(app) as base, vcops_exporter(app, "--refresh-seconds", "1") as exporter_url, \
                alertmanager(tmp_path / "am", am_test_config(f"{base}/api/v1/alerts/webhook", token_file)) as am:
            scrape = {"vcops-probe": [f"127.0.0.1:{agent.server.port}"],
                      "vcops-exporter": [exporter_url.removeprefix("http://").removesuffix("/metrics")]}
            with prometheus(tmp_path / "prometheus", scrape, alertmanager=f"127.0.0.1:{am.port}",
                            rule_files=rules_with_short_for(tmp_path / "rules", "5s")) as prom:
                prom.wait_for(lambda: len(prom.query("vcops_link_up == 1")) == 3
                              and prom.query("vcops_link_ancestor_info"), 60, "the links up and the tree known")
                assert _incidents(app) == []
                cut.set_down()

                # Prometheus fires LinkDown for the district's uplink ...
                wait_for(lambda: any(a["labels"].get("alertname") == "LinkDown" and a["labels"].get("link") == "LAB-A-1"
                                     and a["state"] == "firing" for a in prom.alerts()), 60,
                         "LinkDown for LAB-A-1 firing in Prometheus")
                # ... Alertmanager posts it to VCOps, where it is an incident; the commune's alerts are held back.
                wait_for(lambda: ("LinkDown", "LAB-A-1", "firing") in _incidents(app), 60,
                         "the district's LinkDown as an incident in VCOps")
                held = wait_for(lambda: (a := am.alert(alertname="LinkDown", link="LAB-A-X-1"))
                                and a["status"]["inhibitedBy"] and a, 60, "the commune's LinkDown inhibited")
                assert held["status"]["state"] == "suppressed"
                time.sleep(3)  # past the group wait: nothing more arrives
                assert _incidents(app) == [("LinkDown", "LAB-A-1", "firing")]

                # The operator's board, in a real browser: the district is down, its commune unreachable upstream.
                with logged_in_page(base, "operator@example.com", PASSWORD) as page:
                    page.goto(f"{base}/monitoring/board")
                    page.wait_for_selector('tr[data-site="LAB-A"][data-state="down"]')
                    assert page.get_attribute('tr[data-site="LAB-B"]', "data-state") == "ok"
                    assert page.get_attribute('tr[data-site="LAB-A-X"]', "data-state") != "ok"

                cut.set_up()  # the link comes back: Alertmanager resolves the incident in VCOps
                wait_for(lambda: ("LinkDown", "LAB-A-1", "resolved") in _incidents(app), 90,
                         "the incident resolved when the link came back")
    finally:
        agent.stop()
