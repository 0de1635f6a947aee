"""The operators' board, as an operator reads it (page and JSON) on the demo province: a downed district link
shows the district down and its communes unreachable via upstream; filters by subtree and state; stale
measurements are unknown; a failover, a lossy link or an unregistered room is degraded; maintenance shows as
such. The probe agent's rows are written directly here (the probe itself is tested with the agent)."""

from __future__ import annotations

import datetime as dt
import html
import re

import sqlalchemy as sa

from app.db import commit_scope, utcnow
from app.monitoring.models import LinkState
from app.sites import equipment
from app.sites.models import Link, LinkMedium, MaintenanceWindow
from tests.monitoring.probe_rows import (
    add_samples,
    all_fine,
    rooms_of,
    set_endpoint,
    set_link,
    site_id,
    uplink_code,
)

DISTRICT, COMMUNES, OTHER_DISTRICT = "TQ-TP", ("TQ-TP-MX", "TQ-TP-AT"), "TQ-LB"


def _board(api, query: str = "") -> dict[str, dict]:
    response = api("operator").get(f"/api/v1/monitoring/board{query}")
    assert response.status_code == 200, response.get_json()
    return {s["code"]: s for s in response.get_json()["sites"]}


def _row_states(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)"', page))


def test_operator_sees_a_down_district_link_as_down_and_its_communes_as_unreachable_via_upstream(session, api,
                                                                                                   login):
    all_fine(session)
    link = uplink_code(session, DISTRICT)
    set_link(session, link, up=False)
    with commit_scope():
        pass

    sites = _board(api)
    assert sites[DISTRICT]["state"] == "down"
    assert [p["code"] for p in sites[DISTRICT]["problems"]] == ["link_down"]
    assert link in sites[DISTRICT]["problems"][0]["message"]
    for commune in COMMUNES:
        assert sites[commune]["state"] == "unreachable", sites[commune]
        assert sites[commune]["upstream_site"] == DISTRICT and sites[commune]["upstream_link"] == link
        assert [p["code"] for p in sites[commune]["problems"]] == ["upstream_down"]
    assert sites[OTHER_DISTRICT]["state"] == "ok" and sites["TQ"]["state"] == "ok"
    assert sites["TQ-LB-LC"]["state"] == "ok"

    page = login("operator").get("/monitoring/board")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    states = _row_states(text)
    assert states[DISTRICT] == "down" and states[COMMUNES[0]] == "unreachable" and states["TQ"] == "ok"
    assert "Unreachable via upstream" in html.unescape(text)
    # The page polls the JSON for its updates; that JSON carries the rows as the page renders them.
    live = login("operator").get("/monitoring/board.json").get_json()
    rows = {r["code"]: r for r in live["rows"]}
    assert rows[DISTRICT]["state"] == "down" and 'data-state="down"' in rows[DISTRICT]["html"]
    assert live["summary"]["down"] == 1 and live["summary"]["unreachable"] == 2


def test_the_board_polled_between_two_probe_steps_answers_not_modified_until_a_state_changes(session, login):
    all_fine(session)
    with commit_scope():
        pass
    client = login("operator")
    first = client.get("/monitoring/board.json")
    assert first.status_code == 200 and first.headers["ETag"]
    same = client.get("/monitoring/board.json", headers={"If-None-Match": first.headers["ETag"]})
    assert same.status_code == 304 and same.get_data() == b""

    set_link(session, uplink_code(session, OTHER_DISTRICT), up=False)
    with commit_scope():
        pass
    changed = client.get("/monitoring/board.json", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200
    assert {r["code"]: r["state"] for r in changed.get_json()["rows"]}[OTHER_DISTRICT] == "down"


def test_operator_filters_the_board_by_a_district_and_by_state(session, api, login):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-LB-LC"), up=False)
    with commit_scope():
        pass

    under = _board(api, f"?under={DISTRICT}")
    assert set(under) == {DISTRICT, *COMMUNES}
    down = _board(api, "?state=down")
    assert set(down) == {"TQ-LB-LC"}
    both = _board(api, "?under=TQ-LB&state=ok")
    assert set(both) == {"TQ-LB", "TQ-LB-TL"}

    page = login("operator").get("/monitoring/board?under=TQ-LB&state=down").get_data(as_text=True)
    assert _row_states(page) == {"TQ-LB-LC": "down"}
    # The live updates keep to the same filters.
    assert 'data-url="/monitoring/board.json?under=TQ-LB&amp;state=down"' in page
    live = login("operator").get("/monitoring/board.json?under=TQ-LB&state=down").get_json()
    assert [r["code"] for r in live["rows"]] == ["TQ-LB-LC"]


def test_an_unknown_site_code_in_the_filter_is_named_in_a_404(api, login):
    response = api("operator").get("/api/v1/monitoring/board?under=NO-SUCH")
    assert response.status_code == 404
    assert "NO-SUCH" in response.get_json()["error"]["message"]
    assert login("viewer").get("/monitoring/board?under=NO-SUCH").status_code == 404
    bad_state = api("operator").get("/api/v1/monitoring/board?state=purple")
    assert bad_state.status_code == 422 and "state" in bad_state.get_json()["error"]["fields"]


def test_measurements_older_than_three_steps_show_unknown_and_a_site_never_measured_too(session, api):
    all_fine(session)
    step = 60.0
    set_link(session, uplink_code(session, OTHER_DISTRICT), age=dt.timedelta(seconds=3 * step + 30))
    set_link(session, uplink_code(session, "TQ-NH"), age=dt.timedelta(seconds=2 * step))  # still fresh
    never = session.scalar(sa.select(Link.id).where(Link.code == uplink_code(session, "TQ-CH")))
    session.execute(sa.delete(LinkState).where(LinkState.link_id == never))
    with commit_scope():
        pass

    sites = _board(api)
    assert sites[OTHER_DISTRICT]["state"] == "unknown"
    assert [p["code"] for p in sites[OTHER_DISTRICT]["problems"]] == ["stale"]
    assert sites[OTHER_DISTRICT]["uplink"]["stale"] is True
    assert sites["TQ-NH"]["state"] == "ok"
    assert sites["TQ-CH"]["state"] == "unknown" and sites["TQ-CH"]["problems"][0]["code"] == "no_data"
    # A stale "up" says nothing about the communes below: they keep their own state.
    assert sites["TQ-LB-LC"]["state"] == "ok"


def test_a_failover_to_the_backup_link_shows_the_site_degraded_not_down_and_its_communes_fine(session, api):
    district = site_id(session, DISTRICT)
    province = site_id(session, "TQ")
    backup = equipment.save_link(session, {"site_a_id": district, "site_b_id": province, "code": "TQ-TP-TQ-4G",
                                               "address_a": "198.18.200.1", "address_b": "198.18.200.2",
                                               "medium": LinkMedium.MOBILE_BACKUP, "bandwidth_kbps": 4000})
    all_fine(session)
    primary = uplink_code(session, DISTRICT)
    assert primary != backup.code  # the dedicated line stays the primary
    set_link(session, primary, up=False)
    with commit_scope():
        pass

    sites = _board(api)
    assert sites[DISTRICT]["state"] == "degraded"
    assert sites[DISTRICT]["problems"][0]["code"] == "failover"
    assert backup.code in sites[DISTRICT]["problems"][0]["message"]
    assert [b["code"] for b in sites[DISTRICT]["backups"]] == [backup.code]
    assert all(sites[c]["state"] == "ok" for c in COMMUNES)

    set_link(session, backup.code, up=False)  # both down now: down, and the communes cut off
    with commit_scope():
        pass
    sites = _board(api)
    assert sites[DISTRICT]["state"] == "down" and sites[COMMUNES[0]]["state"] == "unreachable"


def test_loss_latency_and_jitter_over_the_thresholds_degrade_a_site_and_name_the_figure(session, api):
    all_fine(session)
    set_link(session, uplink_code(session, "TQ-TP-MX"), lost=1, sent=20)  # 5 % loss
    set_link(session, uplink_code(session, "TQ-TP-AT"), rtt=0.350)
    set_link(session, uplink_code(session, "TQ-LB-LC"), jitter=0.045)
    set_link(session, uplink_code(session, "TQ-LB-TL"), rtt=0.290, jitter=0.029, lost=0)  # just under
    with commit_scope():
        pass

    sites = _board(api)
    assert (sites["TQ-TP-MX"]["state"], sites["TQ-TP-MX"]["problems"][0]["code"]) == ("degraded", "loss")
    assert "5.0%" in sites["TQ-TP-MX"]["problems"][0]["message"]
    assert (sites["TQ-TP-AT"]["state"], sites["TQ-TP-AT"]["problems"][0]["code"]) == ("degraded", "latency")
    assert "350 ms" in sites["TQ-TP-AT"]["problems"][0]["message"]
    assert (sites["TQ-LB-LC"]["state"], sites["TQ-LB-LC"]["problems"][0]["code"]) == ("degraded", "jitter")
    assert sites["TQ-LB-TL"]["state"] == "ok"
    assert sites["TQ-TP-AT"]["uplink"]["rtt_seconds"] == 0.350


def test_rooms_show_reachable_registered_and_in_call_and_an_unregistered_room_degrades_its_site(session, api,
                                                                                                 login):
    all_fine(session)
    room = rooms_of(session, "TQ-NH-NH")[0]
    set_endpoint(session, room, registered=False)
    in_call = rooms_of(session, "TQ-NH-TT")[0]
    set_endpoint(session, in_call, in_call=True)
    unreachable = rooms_of(session, "TQ-CH-KB")[0]
    set_endpoint(session, unreachable, up=False)
    with commit_scope():
        pass

    sites = _board(api)
    assert sites["TQ-NH-NH"]["state"] == "degraded"
    assert sites["TQ-NH-NH"]["problems"][0]["code"] == "endpoint_unregistered"
    assert sites["TQ-NH-TT"]["state"] == "ok" and sites["TQ-NH-TT"]["endpoints"][0]["in_call"] is True
    # Its only room unreachable: the site cannot take part, whatever its link says.
    assert sites["TQ-CH-KB"]["state"] == "down"
    assert sites["TQ-CH-KB"]["problems"][0]["code"] == "endpoint_down"

    page = html.unescape(login("operator").get("/monitoring/board?under=TQ-NH").get_data(as_text=True))
    row = page[page.index('data-site="TQ-NH-TT"'):]
    row = row[:row.index("</tr>")]
    assert "reachable" in row and "registered" in row and "in a call" in row
    assert "not registered" in page


def test_a_site_under_maintenance_shows_maintenance(session, api):
    all_fine(session)
    link = uplink_code(session, "TQ-HY")
    set_link(session, link, up=False)
    now = utcnow()
    session.add(MaintenanceWindow(site_id=site_id(session, "TQ-HY"), starts_at=now - dt.timedelta(minutes=5),
                                  ends_at=now + dt.timedelta(hours=1), reason="Thay bộ định tuyến"))
    with commit_scope():
        pass

    sites = _board(api)
    assert sites["TQ-HY"]["state"] == "maintenance"
    assert sites["TQ-HY"]["problems"][0]["code"] == "maintenance"
    assert sites["TQ-HY"]["maintenance_until"] is not None
    # What is below a link down for maintenance is still cut off.
    assert sites["TQ-HY-TY"]["state"] == "unreachable"


def test_the_board_draws_the_last_hour_of_round_trips_with_the_lost_steps_marked(session, login):
    all_fine(session)
    link = uplink_code(session, "TQ-SD")
    add_samples(session, link, 60, down_at=(10, 11))
    with commit_scope():
        pass

    page = login("operator").get("/monitoring/board?under=TQ-SD").get_data(as_text=True)
    row = page[page.index('data-site="TQ-SD"'):]
    row = row[:row.index("</tr>")]
    svg = row[row.index("<svg"):row.index("</svg>")]
    assert svg.count("<polyline") == 2  # the replies before and after the two lost steps
    assert svg.count('class="lost"') == 2


def test_operator_reads_a_links_history_table_chart_and_incidents(session, api, login):
    all_fine(session)
    link = uplink_code(session, DISTRICT)
    add_samples(session, link, 30, rtt=0.040, down_at=(5,))
    set_link(session, link, up=False)
    with commit_scope():
        pass

    page = login("operator").get(f"/monitoring/links/{link}")
    assert page.status_code == 200
    text = html.unescape(page.get_data(as_text=True))
    assert 'id="link-state" data-state="down"' in text
    assert text.count('<tr class="row-bad">') == 1 and text.count("<tr class=\"\">") == 29
    assert all(f'data-chart="{k}"' in text for k in ("rtt", "loss", "jitter"))

    body = api("operator").get(f"/api/v1/monitoring/links/{link}").get_json()
    assert body["state"]["state"] == "down" and len(body["samples"]) == 30
    assert body["samples"][0]["measured_at"] < body["samples"][-1]["measured_at"]
    assert body["site"] == DISTRICT and body["parent_site"] == "TQ" and body["primary"] == ""
    assert login("operator").get("/monitoring/links/NO-SUCH-LINK").status_code == 404
