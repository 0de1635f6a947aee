"""Incidents from Alertmanager's webhook, as Alertmanager posts them and as operators take them on: created and
resolved idempotently, refused clearly when unauthenticated, unauthorised or malformed, acknowledged with who
and when, listed by status and site."""

from __future__ import annotations

import copy
import datetime as dt
import html

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import User
from app.db import db, utcnow
from app.monitoring.models import Incident, IncidentStatus

WEBHOOK = "/api/v1/alerts/webhook"
STARTS = "2025-03-04T01:02:03.123456789Z"  # Alertmanager writes nanoseconds


def _alert(fingerprint: str, *, status: str = "firing", site: str = "TQ-TP", link: str = "TQ-TP-TQ",
           alertname: str = "LinkDown", starts: str = STARTS, ends: str = "0001-01-01T00:00:00Z") -> dict:
    return {"status": status,
            "labels": {"alertname": alertname, "severity": "critical", "site": site, "link": link},
            "annotations": {"summary": f"Đường truyền {link} mất kết nối", "description": "All echoes lost."},
            "startsAt": starts, "endsAt": ends, "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": fingerprint}


def _payload(*alerts: dict, status: str = "firing") -> dict:
    """A notification as Alertmanager's webhook sends it (version 4)."""
    return {"version": "4", "groupKey": '{}:{alertname="LinkDown"}', "truncatedAlerts": 0, "status": status,
            "receiver": "vcops", "groupLabels": {"alertname": "LinkDown"}, "commonLabels": {"alertname": "LinkDown"},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def _incidents(app) -> list[Incident]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(Incident).order_by(Incident.id)))
        db.session.expunge_all()
    return rows


def test_a_notification_creates_incidents_and_the_same_notification_again_changes_nothing(app, api):
    hook = api("operator")
    payload = _payload(_alert("a1b2c3d4e5f60708"), _alert("1111222233334444", site="TQ-LB", link="TQ-LB-TQ"))
    first = hook.post(WEBHOOK, json=payload)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"created": 2, "updated": 0, "unchanged": 0}
    rows = _incidents(app)
    assert [(i.fingerprint, i.status, i.site_code, i.link_code, i.alertname, i.severity) for i in rows] == [
        ("a1b2c3d4e5f60708", IncidentStatus.FIRING, "TQ-TP", "TQ-TP-TQ", "LinkDown", "critical"),
        ("1111222233334444", IncidentStatus.FIRING, "TQ-LB", "TQ-LB-TQ", "LinkDown", "critical")]
    assert rows[0].ends_at is None and rows[0].summary == "Đường truyền TQ-TP-TQ mất kết nối"
    assert rows[0].starts_at == dt.datetime(2025, 3, 4, 1, 2, 3, 123456, tzinfo=dt.UTC)

    again = hook.post(WEBHOOK, json=payload)
    assert again.get_json() == {"created": 0, "updated": 0, "unchanged": 2}
    after = _incidents(app)
    assert [(i.id, i.status, i.ends_at) for i in after] == [(i.id, i.status, i.ends_at) for i in rows]


def test_a_resolved_notification_closes_the_incident_with_its_end_and_a_late_firing_does_not_reopen_it(app, api):
    hook = api("operator")
    hook.post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708")))
    resolved = _payload(_alert("a1b2c3d4e5f60708", status="resolved", ends="2025-03-04T01:12:00Z"), status="resolved")
    answer = hook.post(WEBHOOK, json=resolved)
    assert answer.get_json() == {"created": 0, "updated": 1, "unchanged": 0}
    (incident,) = _incidents(app)
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.ends_at == dt.datetime(2025, 3, 4, 1, 12, tzinfo=dt.UTC)

    assert hook.post(WEBHOOK, json=resolved).get_json()["unchanged"] == 1
    late = hook.post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708")))  # delivered out of order
    assert late.get_json() == {"created": 0, "updated": 0, "unchanged": 1}
    assert _incidents(app)[0].status is IncidentStatus.RESOLVED

    # Firing again later is a new period: a new incident.
    hook.post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708", starts="2025-03-04T02:00:00Z")))
    assert [i.status for i in _incidents(app)] == [IncidentStatus.RESOLVED, IncidentStatus.FIRING]


def test_a_resolved_alert_never_seen_firing_is_recorded_resolved(app, api):
    answer = api("admin").post(WEBHOOK, json=_payload(
        _alert("9999888877776666", status="resolved", ends="2025-03-04T01:30:00Z"), status="resolved"))
    assert answer.get_json()["created"] == 1
    (incident,) = _incidents(app)
    assert incident.status is IncidentStatus.RESOLVED and incident.ends_at is not None


def test_the_webhook_refuses_without_a_token_or_with_a_role_that_may_not_receive(app, api):
    payload = _payload(_alert("a1b2c3d4e5f60708"))
    anonymous = app.test_client().post(WEBHOOK, json=payload)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = app.test_client().post(WEBHOOK, json=payload, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.get_json()["error"]["message"]
    for role in ("viewer", "technician", "secretariat", "site_staff"):
        assert api(role).post(WEBHOOK, json=payload).status_code == 403, role
    assert _incidents(app) == []


@pytest.mark.parametrize(("change", "field"), [
    (lambda p: p.pop("alerts"), "alerts"),
    (lambda p: p["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
    (lambda p: p["alerts"][0].update(status="burning"), "alerts.0.status"),
    (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
    (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts.0.labels"),
    (lambda p: p.update(version="3"), "version"),
])
def test_a_malformed_notification_is_a_400_naming_the_field(app, api, change, field):
    payload = _payload(_alert("a1b2c3d4e5f60708"))
    change(payload)
    answer = api("operator").post(WEBHOOK, json=payload)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert field in error["fields"] and field in error["message"]
    assert _incidents(app) == []


def test_a_body_that_is_not_json_is_a_400_saying_so(api):
    answer = api("operator").post(WEBHOOK, data="{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "invalid_json"


def test_operator_acknowledges_an_incident_with_a_note_and_who_and_when_are_recorded(app, api, login):
    api("operator").post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708")))
    (incident,) = _incidents(app)
    before = utcnow()
    client = login("operator")
    page = client.get("/monitoring/incidents")
    assert f'action="/monitoring/incidents/{incident.id}/ack"' in page.get_data(as_text=True)

    answer = client.post(f"/monitoring/incidents/{incident.id}/ack",
                         data={"note": "Đã gọi VNPT Tuyên Quang", "next": "/monitoring/incidents"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/monitoring/incidents")
    (acked,) = _incidents(app)
    with app.app_context():
        operator = db.session.scalar(sa.select(User).where(User.email == "operator@example.com"))
        entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "Incident",
                                                              AuditEntry.object_id == str(incident.id)))
        assert entry is not None and entry.action == "acknowledge" and entry.user_id == operator.id
    assert acked.acknowledged_by_id == operator.id
    assert before <= acked.acknowledged_at <= utcnow()
    assert acked.ack_note == "Đã gọi VNPT Tuyên Quang"
    listed = html.unescape(client.get("/monitoring/incidents").get_data(as_text=True))
    assert "operator@example.com" in listed and "Đã gọi VNPT Tuyên Quang" in listed

    # A second acknowledgement is refused, naming who took it.
    again = client.post(f"/monitoring/incidents/{incident.id}/ack", data={"note": "me too"}, follow_redirects=True)
    assert "already acknowledged by operator@example.com" in html.unescape(again.get_data(as_text=True))
    assert _incidents(app)[0].ack_note == "Đã gọi VNPT Tuyên Quang"


def test_viewers_see_incidents_but_cannot_acknowledge_them(app, api, login):
    api("operator").post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708")))
    (incident,) = _incidents(app)
    client = login("viewer")
    page = client.get("/monitoring/incidents").get_data(as_text=True)
    assert "LinkDown" in page and "/ack" not in page
    assert client.post(f"/monitoring/incidents/{incident.id}/ack", data={"note": ""}).status_code == 403
    assert _incidents(app)[0].acknowledged_at is None


def test_incidents_through_the_api_list_get_and_acknowledge(app, api):
    hook = api("operator")
    hook.post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708"), _alert("1111222233334444", site="TQ-LB")))
    hook.post(WEBHOOK, json=_payload(_alert("1111222233334444", site="TQ-LB", status="resolved",
                                            ends="2025-03-04T02:00:00Z"), status="resolved"))
    viewer = api("viewer")
    assert [i["site_code"] for i in viewer.get("/api/v1/incidents").get_json()["items"]] == ["TQ-TP"]
    assert [i["site_code"] for i in viewer.get("/api/v1/incidents?status=resolved").get_json()["items"]] == ["TQ-LB"]
    everything = viewer.get("/api/v1/incidents?status=all").get_json()
    assert everything["total"] == 2
    assert [i["site_code"] for i in viewer.get("/api/v1/incidents?status=all&site=TQ-LB").get_json()["items"]] == [
        "TQ-LB"]
    assert viewer.get("/api/v1/incidents?status=closed").status_code == 422

    open_id = next(i["id"] for i in everything["items"] if i["site_code"] == "TQ-TP")
    one = viewer.get(f"/api/v1/incidents/{open_id}").get_json()
    assert one["labels"]["link"] == "TQ-TP-TQ" and one["acknowledged_by"] is None
    assert viewer.post(f"/api/v1/incidents/{open_id}/ack", json={}).status_code == 403

    acked = api("operator").post(f"/api/v1/incidents/{open_id}/ack", json={"note": "Đang xử lý"})
    assert acked.status_code == 200, acked.get_json()
    assert acked.get_json()["acknowledged_by"] == "operator@example.com"
    assert acked.get_json()["ack_note"] == "Đang xử lý" and acked.get_json()["acknowledged_at"]
    twice = api("admin").post(f"/api/v1/incidents/{open_id}/ack", json={})
    assert twice.status_code == 409 and "operator@example.com" in twice.get_json()["error"]["message"]
    assert api("operator").get("/api/v1/incidents/999999").status_code == 404


def test_the_incident_list_page_filters_by_status_and_site(app, api, login):
    hook = api("operator")
    hook.post(WEBHOOK, json=_payload(_alert("a1b2c3d4e5f60708"), _alert("1111222233334444", site="TQ-LB",
                                                                        alertname="EndpointUnregistered")))
    resolved = copy.deepcopy(_alert("1111222233334444", site="TQ-LB", alertname="EndpointUnregistered",
                                    status="resolved", ends="2025-03-04T02:00:00Z"))
    hook.post(WEBHOOK, json=_payload(resolved, status="resolved"))
    client = login("viewer")

    def rows(query: str) -> str:
        page = client.get(f"/monitoring/incidents{query}").get_data(as_text=True)
        return page[page.index("<tbody>"):page.index("</tbody>")]

    assert "LinkDown" in rows("") and "EndpointUnregistered" not in rows("")
    assert "EndpointUnregistered" in rows("?status=resolved") and "LinkDown" not in rows("?status=resolved")
    assert "LinkDown" in rows("?status=all") and "EndpointUnregistered" in rows("?status=all")
    assert "LinkDown" not in rows("?status=all&site=TQ-LB")
