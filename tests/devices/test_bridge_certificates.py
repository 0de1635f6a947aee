"""A bridge's pinned certificate: first contact waits for a technician, a changed certificate is refused before any
request reaches the bridge, named with both fingerprints and recorded, and accepting it replaces the pin.

Against the simulated Cisco Meeting Server in a network namespace (the harness is in test_bridge_client.py); what
reached the bridge is read from its requests.log.
"""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa
from flask_babel import force_locale

from app.devices.bridges import service as bridges
from app.devices.bridges.base import BridgeCertificateChanged, BridgeCertificatePending, BridgeTarget
from app.devices.bridges.tls import pinned_session
from app.devices.models import BridgeCertificate, CertificateState
from tests.support.cms import FAST, PASSWORD, USER, bridge_fixture, cms_fixture, trust  # noqa: F401
from tests.support.netlab import netlab  # noqa: F401 - a fixture


def rows(session) -> list[tuple[str, CertificateState]]:
    session.expire_all()
    return [(r.fingerprint, r.state) for r in session.scalars(sa.select(BridgeCertificate)
                                                               .order_by(BridgeCertificate.id))]


def test_first_contact_records_the_certificate_as_pending_and_sends_nothing(session, cms, bridge):
    with pytest.raises(BridgeCertificatePending) as pending:
        with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
            mcu.list_conferences()
    assert pending.value.message == (
        f"First contact with the MCU MCU-LAB ({cms.address}): its certificate (SHA-256 {cms.fingerprint}) awaits a "
        "technician's acceptance on the certificates page.")
    assert rows(session) == [(cms.fingerprint, CertificateState.PENDING)]
    row = session.scalar(sa.select(BridgeCertificate))
    assert row.subject == "CN=cms-simulator" and row.port == 443 and row.address == cms.address
    assert cms.requests() == []


def test_a_bridge_presenting_another_certificate_is_refused_before_any_request_and_recorded(login, session, cms,
                                                                                            bridge):
    trust(session, bridge)
    pinned = cms.fingerprint
    with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
        assert mcu.list_conferences() == []
    seen = len(cms.requests())
    assert seen >= 2  # the calls and the coSpaces

    cms.renew_certificate()  # the bridge was replaced, or something sits in the middle
    presented = cms.fingerprint
    assert presented != pinned
    with pytest.raises(BridgeCertificateChanged) as changed:
        with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
            mcu.list_conferences()
    assert (changed.value.pinned, changed.value.presented) == (pinned, presented)
    assert pinned in changed.value.message and presented in changed.value.message
    assert "Nothing was sent to it" in changed.value.message
    assert len(cms.requests()) == seen, "no request reached the bridge"
    # Recorded beside the pin, which stays: never replaced silently.
    assert rows(session) == [(pinned, CertificateState.ACCEPTED), (presented, CertificateState.PENDING)]
    with force_locale("vi"), pytest.raises(BridgeCertificateChanged, match="Chứng chỉ của MCU MCU-LAB .* đã thay đổi"):
        bridges.open_bridge(session, bridge, timing=FAST).list_conferences()

    client = login("technician")
    page = client.get("/devices/certificates").get_data(as_text=True)
    assert f"Changed: the accepted certificate is {pinned}; accepting this one replaces it." in page
    fetched = client.post(f"/devices/bridges/{bridge.id}/fetch-certificate", follow_redirects=True)
    assert "has changed: pinned" in fetched.get_data(as_text=True)
    new = session.scalar(sa.select(BridgeCertificate).where(BridgeCertificate.fingerprint == presented))
    # A page showing another certificate under this id accepts nothing.
    client.post(f"/devices/certificates/{new.id}/accept", data={"fingerprint": pinned})
    assert rows(session) == [(pinned, CertificateState.ACCEPTED), (presented, CertificateState.PENDING)]

    client.post(f"/devices/certificates/{new.id}/accept", data={"fingerprint": presented})
    assert rows(session) == [(presented, CertificateState.ACCEPTED)]
    with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
        assert mcu.list_conferences() == []
    assert len(cms.requests()) > seen


def test_a_certificate_changed_during_a_session_is_refused_on_the_connection_that_carries_the_request(session, cms,
                                                                                                     bridge):
    trust(session, bridge)
    pinned = cms.fingerprint
    with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
        mcu.list_conferences()
        seen = len(cms.requests())
        cms.renew_certificate()
        with pytest.raises(BridgeCertificateChanged) as changed:
            mcu.list_conferences()
    assert (changed.value.pinned, changed.value.presented) == (pinned, cms.fingerprint)
    assert len(cms.requests()) == seen
    assert rows(session) == [(pinned, CertificateState.ACCEPTED), (cms.fingerprint, CertificateState.PENDING)]


def test_the_https_session_checks_the_fingerprint_before_it_writes_the_request(cms):
    target = BridgeTarget(cms.address, cms.port)
    wrong = ":".join(["AB"] * 32)
    with pinned_session(target, wrong, USER, PASSWORD) as http, pytest.raises(requests.exceptions.SSLError,
                                                                             match="(?i)fingerprint"):
        http.get(f"https://{cms.address}/api/v1/coSpaces", timeout=5)
    assert cms.requests() == []
    with pinned_session(target, cms.fingerprint, USER, PASSWORD) as http:
        assert http.get(f"https://{cms.address}/api/v1/coSpaces", timeout=5).status_code == 200
        with pytest.raises(requests.exceptions.InvalidSchema):  # never in clear text
            http.get(f"http://{cms.address}/api/v1/coSpaces", timeout=5)
    assert cms.requests() == ["GET /api/v1/coSpaces 200"]


def test_forgetting_a_pin_makes_the_next_contact_a_first_contact_again(login, session, cms, bridge):
    row = trust(session, bridge)
    client = login("technician")
    assert cms.fingerprint in client.get("/devices/certificates").get_data(as_text=True)
    client.post(f"/devices/certificates/{row.id}/forget")
    assert rows(session) == []
    with pytest.raises(BridgeCertificatePending):
        bridges.open_bridge(session, bridge, timing=FAST).list_conferences()
    assert rows(session) == [(cms.fingerprint, CertificateState.PENDING)]
