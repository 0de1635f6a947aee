"""Readiness by itself, as the technicians on meeting day read it: at the start of a meeting's setup time VCOps
checks every site (the room system over real SSH in a network namespace, the probes' latest measurements of its
path) and says ready, not ready with the reason and the fix, or unknown; the site's contacts and the technicians
on duty are mailed once per occurrence and change (a real SMTP server, aiosmtpd)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.conference.readiness import Readiness, ReadinessCheck, Round, start_due_checks
from app.db import commit_scope
from app.devices import service as devices
from app.devices.bridges import service as bridges
from app.devices.models import HostKey, HostKeyState
from app.monitoring.models import Incident, IncidentStatus
from app.sites.models import Endpoint, Link
from simulators.cisco_xapi import StateStore
from tests.calendar.conftest import Recorder, smtp, smtp_server  # noqa: F401 - fixtures: the SMTP server
from tests.devices.conftest import login_of
from tests.monitoring.probe_rows import all_fine, meeting, rooms_of, set_link, uplink_code
from tests.support.cms import FAST, bridge_fixture, cms_fixture, trust  # noqa: F401 - fixtures
from tests.support.hosts import LabHost, ssh_hosts  # noqa: F401 - a fixture
from tests.support.netlab import netlab  # noqa: F401 - a fixture
from tests.support.outbox import drain_outbox

SITE = "TQ-LB-LC"  # Xã Lăng Can, below the district Lâm Bình
HOST = "TQ-LB"
SIP = {"SIP URI": "xa.langcan@tuyenquang.vn", "SIP Proxy 1 Address": "sip.tuyenquang.vn",
       "NetworkServices NTP Server 1 Address": "ntp.tuyenquang.vn"}


@pytest.fixture
def room(ssh_hosts: Any, session: Any) -> Iterator[tuple[LabHost, int]]:  # noqa: F811
    """Xã Lăng Can's room system is a simulated Cisco endpoint over SSH, its host key accepted, registered."""
    (host,) = ssh_hosts(1, "xapi")
    with StateStore(host.state_path).edit() as state:
        state["config"].update(SIP)
    endpoint_id = rooms_of(session, SITE)[0]
    endpoint = session.get(Endpoint, endpoint_id)
    endpoint.mgmt_address, endpoint.mgmt_port = host.address, host.port
    session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                        fingerprint=host.host_key_fingerprint(), state=HostKeyState.ACCEPTED))
    session.flush()
    previous = devices.set_credential_source(lambda _s, _e: login_of(host))
    yield host, endpoint_id
    devices.set_credential_source(previous)


@pytest.fixture
def mailed(app: Any, smtp_server: tuple[Recorder, int], smtp: Recorder) -> Iterator[Recorder]:  # noqa: F811
    _recorder, port = smtp_server
    saved = dict(app.config)
    # The province's language: the reasons are recorded and mailed in it.
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False, SMTP_TIMEOUT=10,
                      DEFAULT_LANGUAGE="vi")
    yield smtp
    app.config.clear()
    app.config.update(saved)


def _book(session: Any, room_id: int, title: str = "Giao ban phòng chống lũ",
          starts_in: dt.timedelta = dt.timedelta(minutes=55)) -> Any:
    """A meeting hosted by Lâm Bình with Lăng Can, whose setup (60 minutes) has just started."""
    return meeting(session, title, HOST, [SITE], starts_in=starts_in, rooms={SITE: room_id})


def _run_due(app: Any, session: Any) -> None:
    start_due_checks(session)
    with commit_scope():
        pass
    drain_outbox(app)  # the checks
    drain_outbox(app)  # the mail they asked for


def _site_check(session: Any, occurrence_id: int, round: Round | None = None) -> ReadinessCheck:
    session.expire_all()
    rows = list(session.scalars(sa.select(ReadinessCheck).join(ReadinessCheck.site).where(
        ReadinessCheck.occurrence_id == occurrence_id, ReadinessCheck.site.has(code=SITE))
        .where(ReadinessCheck.round == round if round else sa.true()).order_by(ReadinessCheck.id)))
    assert rows, "no check of the site"
    return rows[-1]


def test_a_registered_endpoint_with_its_path_up_is_ready_at_the_setup_start(app, session, room):
    all_fine(session)
    occurrence = _book(session, room[1])
    _run_due(app, session)

    check = _site_check(session, occurrence.id)
    assert check.round is Round.SETUP
    assert check.status is Readiness.READY, (check.reason, check.checks)
    assert {c["name"] for c in check.checks} >= {"link", "endpoint", "registration", "clock"}


def test_an_endpoint_not_registered_is_not_ready_saying_so_and_naming_provision_endpoint(app, session, room,
                                                                                       mailed):
    host, room_id = room
    with StateStore(host.state_path).edit() as state:
        state["registrar"] = "reject"
    all_fine(session)
    occurrence = _book(session, room_id)
    _run_due(app, session)

    check = _site_check(session, occurrence.id)
    assert check.status is Readiness.NOT_READY
    assert "chưa đăng ký với máy chủ SIP" in check.reason and "403 Forbidden" in check.reason
    assert "provision_endpoint" in check.action
    # The technicians on duty are told, with the reason in their words.
    [message] = _about_lang_can(mailed)
    assert "provision_endpoint" in message.get_content() and "403 Forbidden" in message.get_content()
    contacts = [c.email for c in occurrence.participations[1].site.contacts if c.email]
    assert contacts and all(len([m for m in mailed.to(a) if "Lăng Can" in m["Subject"]]) == 1 for a in contacts)

    # Once per occurrence and change: the same failure at the next round mails nobody again ...
    _rerun(app, session, occurrence.id)
    assert len(_about_lang_can(mailed)) == 1
    # ... a different failure does.
    with StateStore(host.state_path).edit() as state:
        state["registrar"] = "accept"
        state["config"]["NetworkServices NTP Server 1 Address"] = ""
    session.execute(sa.delete(ReadinessCheck).where(ReadinessCheck.round == Round.T15))
    _rerun(app, session, occurrence.id)
    assert len(_about_lang_can(mailed)) == 2
    assert "chưa được đồng bộ" in _about_lang_can(mailed)[-1].get_content()


def _about_lang_can(mailed: Recorder) -> list[Any]:
    return [m for m in mailed.to("technician@example.com") if "Xã Lăng Can" in m["Subject"]]


def _rerun(app: Any, session: Any, occurrence_id: int) -> None:
    from app.queue import outbox

    outbox.enqueue(session, "readiness.check", occurrence_id=occurrence_id, round=Round.T15.value)
    with commit_scope():
        pass
    drain_outbox(app)
    drain_outbox(app)


def test_a_link_of_the_path_down_makes_the_site_not_ready_naming_the_link_and_its_incident(app, session, room):
    all_fine(session)
    code = uplink_code(session, SITE)
    set_link(session, code, up=False)
    incident = Incident(fingerprint="f" * 16, alertname="LinkDown", status=IncidentStatus.FIRING, site_code=SITE,
                        link_code=code, summary="down", labels={}, annotations={},
                        starts_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    session.add(incident)
    session.flush()
    occurrence = _book(session, room[1])
    _run_due(app, session)

    check = _site_check(session, occurrence.id)
    assert check.status is Readiness.NOT_READY
    assert code in check.reason and f"#{incident.id}" in check.action
    link_id = session.scalar(sa.select(Link.id).where(Link.code == code))
    [failed] = [c for c in check.checks if c["ok"] is False]
    assert (failed["link_id"], failed["incident_id"]) == (link_id, incident.id)


def test_stale_measurements_make_the_site_unknown_never_ready(app, session, room):
    all_fine(session)
    set_link(session, uplink_code(session, SITE), age=dt.timedelta(minutes=10))
    occurrence = _book(session, room[1])
    _run_due(app, session)

    check = _site_check(session, occurrence.id)
    assert check.status is Readiness.UNKNOWN
    assert uplink_code(session, SITE) in check.reason


def test_the_t15_round_checks_again_only_the_sites_not_ready(app, session, room):
    all_fine(session)
    occurrence = _book(session, room[1], starts_in=dt.timedelta(minutes=50))
    _run_due(app, session)
    assert _site_check(session, occurrence.id).status is Readiness.READY
    # 15 minutes before the start: the host site (its room is no simulator, so not ready) is checked again,
    # Lăng Can, ready, is not.
    start_due_checks(session, now=occurrence.starts_at - dt.timedelta(minutes=14))
    with commit_scope():
        pass
    drain_outbox(app)
    session.expire_all()
    again = {r.site.code for r in session.scalars(sa.select(ReadinessCheck).where(
        ReadinessCheck.occurrence_id == occurrence.id, ReadinessCheck.round == Round.T15))}
    assert again == {HOST}


def test_the_today_page_shows_go_no_go_per_site_and_site_staff_see_only_their_own_site(app, session, login):
    from tests.monitoring.probe_rows import site_id

    occurrence = meeting(session, "Họp trực tuyến hôm nay", "TQ", ["TQ-TP-MX", SITE], starts_in=dt.timedelta(minutes=5))
    session.add_all([
        ReadinessCheck(occurrence_id=occurrence.id, site_id=site_id(session, SITE), round=Round.SETUP,
                       status=Readiness.NOT_READY, checks=[{"name": "registration", "ok": False,
                                                            "action": "Launch provision_endpoint for this endpoint."}],
                       reason="The endpoint is not registered to the SIP server (403 Forbidden).",
                       action="Launch provision_endpoint for this endpoint.", endpoint_id=rooms_of(session, SITE)[0]),
        ReadinessCheck(occurrence_id=occurrence.id, site_id=site_id(session, "TQ-TP-MX"), round=Round.SETUP,
                       status=Readiness.READY, checks=[])])
    with commit_scope():
        pass

    page = login("operator").get("/today").get_data(as_text=True)
    assert "Họp trực tuyến hôm nay" in page and 'data-site="TQ-LB-LC" data-status="not_ready"' in page
    assert "403 Forbidden" in page and 'data-site="TQ-TP-MX" data-status="ready"' in page
    assert 'data-site="TQ" data-status="pending"' in page
    data = login("operator").get("/today.json").get_json()
    [today] = [o for o in data["occurrences"] if o["occurrence_id"] == occurrence.id]
    assert {s["code"]: s["status"] for s in today["sites"]} == {"TQ": "pending", "TQ-TP-MX": "ready",
                                                                  SITE: "not_ready"}
    # The meeting's page gets the same table (its part of the page, through the meeting_page signal), with the
    # way to fix it.
    from app.auth.models import User
    from app.meetings import signals

    operator = session.scalar(sa.select(User).where(User.email == "operator@example.com"))
    with app.test_request_context():
        extras = signals.page_extras(session, occurrence.meeting, operator, deliveries=False)
        section = " ".join(str(s) for s in extras.sections)
    assert 'data-site="TQ-LB-LC" data-status="not_ready"' in section and "provision_endpoint" in section

    # Site staff (of Mỹ Lâm, TQ-TP-MX) see their own site's row only.
    login("operator").post("/logout")
    staff = login("site_staff")
    mine = staff.get("/today.json").get_json()
    [today] = [o for o in mine["occurrences"] if o["occurrence_id"] == occurrence.id]
    assert [s["code"] for s in today["sites"]] == ["TQ-TP-MX"]
    assert "403 Forbidden" not in staff.get("/today").get_data(as_text=True)


def test_a_clean_test_call_from_the_bridge_leaves_the_site_ready_and_the_bridge_as_it_was(app, session, room, cms,
                                                                                        bridge):
    from simulators.sip import SipAgent

    trust(session, bridge)
    all_fine(session)
    occurrence = _book(session, room[1])
    occurrence.bridge_id = bridge.id
    with SipAgent(cms.lab.host_address, user="langcan", answer=lambda _call: 200) as answering:
        session.get(Endpoint, room[1]).sip_uri = answering.uri
        session.flush()
        _run_due(app, session)
        assert answering.calls(), "the bridge called the room"

    check = _site_check(session, occurrence.id)
    assert check.status is Readiness.READY, (check.reason, check.checks)
    [call] = [c for c in check.checks if c["name"] == "test_call"]
    assert call["ok"] is True
    with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
        assert mcu.list_conferences() == []  # the temporary conference is gone
