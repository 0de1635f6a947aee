"""The reports page: the period and subtree chosen, the figures with their assumptions, the charts drawn on the
server, the tables behind them; staff see it, site staff do not; a user with a scope sees their subtree."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import sqlalchemy as sa

from app.auth.models import Role, User
from tests.reports.conftest import book, link_rollup, local, set_travel, site

SHOTS = Path("/tmp/shots")


def _month_with_a_meeting(session, month: dt.date) -> str:
    set_travel(session, "TQ-LB", km=40)
    set_travel(session, "TQ-NH", km=100)
    day = month + dt.timedelta(days=3)
    book(session, "Giao ban trực tuyến", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "10:00"))
    session.commit()
    return f"{month:%Y-%m}"


def test_staff_read_the_months_figures_with_their_assumptions_charts_and_tables(app, session, login):
    page = login("secretariat").get("/reports/")  # last month by default
    text = page.get_data(as_text=True)

    assert page.status_code == 200
    for section in ('data-table="summary"', 'data-table="sites"', 'data-table="savings"', 'data-table="links"',
                    'data-figure="cost"', 'class="assumptions"', "VCOPS_REPORT_COST_PER_KM"):
        assert section in text, section
    assert text.count('<svg class="report-chart"') >= 1  # the usage chart, drawn on the server
    for fmt in ("csv", "xlsx", "pdf"):
        assert f"/reports/download.{fmt}?month=" in text


def test_the_figures_of_a_month_with_a_meeting_are_on_the_page(app, session, login, monkeypatch):
    from app.reports import report as report_module

    month = dt.date.today().replace(day=1) + dt.timedelta(days=40)
    month = month.replace(day=1)
    asked = _month_with_a_meeting(session, month)
    real = report_module.build_report
    # the meeting is ahead of us: read the page as it will be once the month is over
    monkeypatch.setattr("app.reports.routes.build_report",
                        lambda *a, **kw: real(*a, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=800), **kw))

    text = login("viewer").get(f"/reports/?month={asked}").get_data(as_text=True)

    held = re.search(r'data-figure="held"><b>([^<]+)</b>', text).group(1)
    assert held == "1"
    assert "Giao ban trực tuyến" in text and "Huyện Lâm Bình" in text
    # 3 people x 2 x (40 + 100) km
    assert re.search(r'data-figure="km"><b>840</b>', text)


def test_the_districts_availability_and_the_worst_links_are_drawn_from_the_probes_rollups(app, session, login):
    day = dt.date(2026, 11, 10)
    link_rollup(session, "TQ-LB", day, up=1380, down=60)  # 95.833 %
    link_rollup(session, "TQ-NH", day, up=1440, down=0)
    session.commit()

    text = login("operator").get("/reports/?month=2026-11").get_data(as_text=True)

    assert '<svg class="report-chart rows"' in text
    bars = re.findall(r'<rect class="bar( bad)?"[^>]*><title>([^<]+)</title>', text)
    assert (" bad", "Huyện Lâm Bình: 95.83 %") in bars  # below the target, in the warning colour
    assert ("", "Huyện Na Hang: 100.00 %") in bars
    links = text[text.index('data-table="links"'):]
    assert links.index("Huyện Lâm Bình") < links.index("Huyện Na Hang")  # the worst first


def test_site_staff_have_no_reports_page(app, login):
    assert login("site_staff").get("/reports/").status_code == 403


def test_a_user_with_a_scope_sees_their_districts_subtree_and_not_another(app, session, login):
    user = session.scalar(sa.select(User).where(User.role == Role.VIEWER))
    user.scope_site_id = site(session, "TQ-LB").id
    session.commit()
    client = login("viewer")

    mine = client.get("/reports/")
    other = client.get("/reports/?site=TQ-HY")

    assert mine.status_code == 200
    assert '<option value="TQ-LB" selected>' in mine.get_data(as_text=True)
    assert "Toàn tỉnh" not in mine.get_data(as_text=True) and "Whole province" not in mine.get_data(as_text=True)
    assert other.status_code == 403


def test_the_api_gives_the_same_tables(app, api):
    response = api("technician").get("/api/v1/reports?month=2026-11")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    keys = [t["key"] for t in body["tables"]]
    assert keys[:3] == ["summary", "assumptions", "months"]
    assert body["start"].startswith("2026-10-31T17:00:00")


def test_a_month_that_is_not_one_is_refused_in_the_one_error_format(app, api):
    response = api("viewer").get("/api/v1/reports?month=2026-13")

    assert response.status_code == 422
    assert "month" in response.get_json()["error"]["fields"]


def test_the_page_fits_a_1366_screen_in_vietnamese(fresh_app):
    from app.auth.service import create_user
    from app.db import commit_scope, db
    from app.sites.demo import seed
    from tests.conftest import PASSWORD
    from tests.support.browser import logged_in_page, served

    app = fresh_app("sqlite", DEFAULT_LANGUAGE="vi")
    with app.app_context():
        with commit_scope() as session:
            seed(session)
            create_user(session, "viewer@example.com", Role.VIEWER, PASSWORD, name="viewer")
            month = dt.date.today().replace(day=1)
            set_travel(session, "TQ-LB", km=40)
            yesterday = dt.date.today() - dt.timedelta(days=1)
            for code, down in (("TQ-LB", 60), ("TQ-NH", 0), ("TQ-CH", 400), ("TQ-HY", 5)):
                link_rollup(session, code, month, up=1440 - down, down=down)
            if yesterday.month == month.month:
                book(session, "Giao ban trực tuyến tháng", ["TQ-LB", "TQ-NH", "TQ-CH"], local(yesterday, "08:00"),
                     local(yesterday, "10:00"), now=local(yesterday, "07:00"))
        db.session.remove()
    with served(app) as base, logged_in_page(base, "viewer@example.com", PASSWORD) as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(f"{base}/reports/?month={month:%Y-%m}")
        assert page.locator("h1").inner_text() == "Báo cáo"
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the screen"
        # the figure cards stay one line each
        heights = page.evaluate("[...document.querySelectorAll('.report-cards .card b')].map(e => e.offsetHeight)")
        assert heights and max(heights) < 40
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "reports_vi.png"), full_page=True)
