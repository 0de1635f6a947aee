"""The board in a real browser (Playwright driving Debian's chromium): an operator has the board open when a
district link goes down; within a few seconds the district turns down and its communes unreachable via
upstream, in place, on the same page load (no reload), as the probe agent's write reaches the database."""

from __future__ import annotations

import pytest

from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope, db
from app.sites.demo import seed
from tests.conftest import PASSWORD
from tests.monitoring.probe_rows import all_fine, set_link, uplink_code
from tests.support.browser import logged_in_page
from tests.support.browser import served as serving


@pytest.fixture
def served(fresh_app):
    """(app, base URL): the demo province with every link and room fine, an operator, served on a free port."""
    app = fresh_app("sqlite")
    with app.app_context():
        with commit_scope() as session:
            seed(session)
            create_user(session, "operator@example.com", Role.OPERATOR, PASSWORD, name="Trực vận hành")
            all_fine(session)
        db.session.remove()
    with serving(app) as base:
        yield app, base


def test_operator_sees_a_district_go_down_on_the_open_board_without_reloading(served):
    app, base = served
    with logged_in_page(base, "operator@example.com", PASSWORD) as page:
        problems: list[str] = []  # script errors and refused resources (the CSP) would break the board
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

        page.goto(f"{base}/monitoring/board")
        assert page.get_attribute('tr[data-site="TQ-TP"]', "data-state") == "ok"
        assert page.get_attribute('tr[data-site="TQ-TP-MX"]', "data-state") == "ok"
        page.evaluate("window.vcopsLoaded = true")  # marks this page load: a reload would drop it
        loads = page.evaluate("performance.getEntriesByType('navigation').length")

        with app.app_context():
            with commit_scope() as session:
                set_link(session, uplink_code(session, "TQ-TP"), up=False)  # as the probe agent writes it
            db.session.remove()

        page.wait_for_function(
            """() => document.querySelector('tr[data-site="TQ-TP"]').dataset.state === 'down'
                     && window.vcopsLoaded === true""", timeout=30_000)
        assert page.get_attribute('tr[data-site="TQ-TP-MX"]', "data-state") == "unreachable"
        assert page.get_attribute('tr[data-site="TQ-TP-AT"]', "data-state") == "unreachable"
        assert page.get_attribute('tr[data-site="TQ-LB"]', "data-state") == "ok"
        assert "Unreachable via upstream" in page.inner_text('tr[data-site="TQ-TP-MX"]')
        assert page.inner_text('[data-count="down"]') == "1"
        assert page.evaluate("window.vcopsLoaded") is True
        assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
        assert page.is_hidden("#board-offline")
        assert problems == []
