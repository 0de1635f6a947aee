"""The bridge (MCU) layer against the simulated Cisco Meeting Server (simulators/cisco_cms.py) in a network
namespace: a technician accepts the bridge's certificate, then VCOps runs a conference on it with a room that
really answers the call; a bridge that does not answer and a bad parameter are told in the technician's words.

`CmsLab` (tests/support/cms.py) is the harness: the simulator serving HTTPS inside a probe lab's namespace
(tests/support/netlab.py), its requests.log read back to see what reached it.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from app.auth.audit import AuditEntry
from app.devices.bridges import service as bridges
from app.devices.bridges.base import (
    BridgeCertificatePending,
    BridgeRefused,
    BridgeTiming,
    BridgeUnreachable,
    ConferenceNotFound,
    ConferenceSpec,
    Direction,
    Layout,
    Participant,
    ParticipantState,
)
from app.devices.models import BridgeCertificate, CertificateState
from simulators.sip import SipAgent
from tests.support.cms import FAST, bridge_fixture, cms_fixture, trust, wait_for  # noqa: F401 - fixtures
from tests.support.netlab import netlab  # noqa: F401 - a fixture

# ---------------------------------------------------------------- the stories

def test_a_technician_accepts_the_bridge_certificate_then_vcops_runs_a_conference_on_it(login, session, cms, bridge):
    client = login("technician")
    page = client.get("/devices/certificates").get_data(as_text=True)
    assert "MCU-LAB" in page and "Fetch certificate" in page

    # Fetching reads the certificate in the TLS handshake: nothing reaches the API.
    fetched = client.post(f"/devices/bridges/{bridge.id}/fetch-certificate")
    assert fetched.status_code == 302
    page = client.get("/devices/certificates").get_data(as_text=True)
    assert cms.fingerprint in page and "CN=cms-simulator" in page and "compare it with" in page
    assert cms.requests() == []
    row = session.scalar(sa.select(BridgeCertificate))
    assert row.state == CertificateState.PENDING and row.not_after > row.not_before

    # Not accepted yet: refused, still before any request.
    with pytest.raises(BridgeCertificatePending, match=cms.fingerprint):
        with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
            mcu.list_conferences()
    assert cms.requests() == []

    accepted = client.post(f"/devices/certificates/{row.id}/accept", data={"fingerprint": row.fingerprint})
    assert accepted.status_code == 302
    session.refresh(row)
    assert row.state == CertificateState.ACCEPTED and row.accepted_by.email == "technician@example.com"
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "BridgeCertificate",
                                                       AuditEntry.action == "update"))
    assert entry.actor == "technician@example.com" and entry.after["state"] == "accepted"

    with bridges.open_bridge(session, bridge, timing=FAST) as mcu, \
            SipAgent(cms.lab.host_address, user="phonghop", answer=lambda _call: 200) as room:
        made = mcu.create_conference(ConferenceSpec("Giao ban tuần", "8801", pin="2468", layout=Layout.PRESENCE))
        assert (made.name, made.number, made.pin, made.layout, made.active) == (
            "Giao ban tuần", "8801", "2468", Layout.PRESENCE, False)
        assert [c.id for c in mcu.list_conferences()] == [made.id]
        changed = mcu.update_conference(made.id, ConferenceSpec("Giao ban tháng", "8801", pin="1357",
                                                                layout=Layout.EQUAL))
        assert (changed.name, changed.pin, changed.layout) == ("Giao ban tháng", "1357", Layout.EQUAL)

        dialled = mcu.dial_out(made.id, room.uri, name="Xã Lăng Can")
        assert dialled.state in (ParticipantState.DIALLING, ParticipantState.CONNECTED)

        def connected_with_media() -> Participant | None:
            found = [p for p in mcu.participants(made.id) if p.id == dialled.id]
            if found and found[0].state is ParticipantState.CONNECTED and any(
                    m.direction is Direction.IN and m.kind == "audio" and (m.bitrate_kbps or 0) > 0
                    for m in found[0].media):
                return found[0]
            return None

        participant = wait_for(connected_with_media)
        assert participant is not None, mcu.participants(made.id)
        assert participant.name == "Xã Lăng Can" and participant.address == room.uri
        assert participant.joined_at is not None and not participant.muted and not participant.important
        audio_in = next(m for m in participant.media if m.direction is Direction.IN and m.kind == "audio")
        assert audio_in.loss_percent == 0 and audio_in.jitter_ms is not None and 40 < audio_in.bitrate_kbps < 100
        assert {(m.direction, m.kind) for m in participant.media} == {
            (Direction.IN, "audio"), (Direction.OUT, "audio"), (Direction.IN, "video"), (Direction.OUT, "video")}
        assert room.active_calls(), "the room has the bridge's call"

        mcu.set_muted(made.id, participant.id, True)
        assert mcu.participants(made.id)[0].muted
        mcu.set_muted(made.id, participant.id, False)
        assert not mcu.participants(made.id)[0].muted
        mcu.make_important(made.id, participant.id)
        assert mcu.participants(made.id)[0].important
        mcu.make_important(made.id, None)
        assert not mcu.participants(made.id)[0].important

        mcu.set_locked(made.id, True)
        running = mcu.get_conference(made.id)
        assert running.active and running.locked and running.participant_count == 1
        mcu.set_locked(made.id, False)
        assert mcu.get_conference(made.id).locked is False

        mcu.end_conference(made.id)
        assert mcu.participants(made.id) == [] and not mcu.get_conference(made.id).active
        assert wait_for(lambda: not room.active_calls(), 5), "the room was hung up"

        mcu.delete_conference(made.id)
        assert mcu.list_conferences() == []
        with pytest.raises(ConferenceNotFound, match="is not on the MCU MCU-LAB"):
            mcu.get_conference(made.id)

    log = cms.requests()
    assert any(line.startswith("POST /api/v1/coSpaces 200") for line in log)
    assert any(line.startswith(f"DELETE /api/v1/coSpaces/{made.id} 200") for line in log)


def test_a_bad_parameter_is_refused_with_the_bridges_reason_in_words(session, cms, bridge):
    trust(session, bridge)
    with bridges.open_bridge(session, bridge, timing=FAST) as mcu:
        with pytest.raises(BridgeRefused) as refused:
            mcu.create_conference(ConferenceSpec("Họp", "88-01"))
        assert refused.value.message == (f"The MCU MCU-LAB ({cms.address}) refused “POST /coSpaces”: the conference "
                                         "number is not accepted (callId: invalid value)")
        made = mcu.create_conference(ConferenceSpec("Họp", "8802"))
        with pytest.raises(BridgeRefused, match="another conference already uses this number"):
            mcu.create_conference(ConferenceSpec("Họp khác", "8802"))
        # A duplicate number leaves nothing behind, not even the participant limit's call profile.
        with pytest.raises(BridgeRefused, match="another conference already uses this number"):
            mcu.create_conference(ConferenceSpec("Họp trùng", "8802", max_participants=5))
        assert [c.number for c in mcu.list_conferences()] == ["8802"]
        made_profiles = [line for line in cms.requests() if line.startswith("POST /api/v1/callProfiles 200")]
        removed_profiles = [line for line in cms.requests() if line.startswith("DELETE /api/v1/callProfiles/")]
        assert len(made_profiles) == len(removed_profiles) == 1

        # The participant limit holds: one room fits, the second is refused in words.
        small = mcu.create_conference(ConferenceSpec("Họp nhỏ", "8803", max_participants=1))
        assert small.max_participants == 1
        with SipAgent(cms.lab.host_address, user="phong1", answer=lambda _call: 200) as first, \
                SipAgent(cms.lab.host_address, port=5062, user="phong2", answer=lambda _call: 200) as second:
            mcu.dial_out(small.id, first.uri)
            with pytest.raises(BridgeRefused, match="the call holds as many participants as it may"):
                mcu.dial_out(small.id, second.uri)
            assert len(mcu.participants(small.id, with_media=False)) == 1
            mcu.end_conference(small.id)
        larger = mcu.update_conference(small.id, ConferenceSpec("Họp nhỏ", "8803", max_participants=8))
        assert larger.max_participants == 8
        assert mcu.update_conference(small.id, ConferenceSpec("Họp nhỏ", "8803")).max_participants is None
        mcu.delete_conference(small.id)
        assert any(line.startswith("DELETE /api/v1/callProfiles/") for line in cms.requests())
        with pytest.raises(ConferenceNotFound, match="No call is running"):
            mcu.set_locked(made.id, True)
        with pytest.raises(ConferenceNotFound, match="no longer in the call"):
            mcu.set_muted(made.id, "3f0c9a57-0b64-4f0e-9d2c-4a4bd7f1e0aa", True)
        with force_locale("vi"):
            with pytest.raises(BridgeRefused, match="số hội nghị"):
                mcu.create_conference(ConferenceSpec("Họp", "tám"))


def test_a_bridge_that_does_not_answer_is_reported_within_the_connect_timeout(session, cms, bridge):
    # The bridge is switched off: its address swallows every packet.
    nft = "table inet vcops_bridge_off {\n chain input {\n  type filter hook input priority 0; policy accept;\n" \
          "  tcp dport 443 drop\n }\n}\n"
    subprocess.run(["ip", "netns", "exec", cms.lab.namespace, "nft", "-f", "-"], input=nft.encode(), check=True)
    timing = BridgeTiming(connect_timeout=2, read_timeout=5)
    started = time.monotonic()
    with pytest.raises(BridgeUnreachable) as unreachable:
        with bridges.open_bridge(session, bridge, timing=timing) as mcu:
            mcu.list_conferences()
    assert time.monotonic() - started < 3.5
    assert unreachable.value.message == f"Could not connect to the MCU MCU-LAB ({cms.address}) within 2 seconds."
    with force_locale("vi"):
        with pytest.raises(BridgeUnreachable) as in_vietnamese:
            bridges.open_bridge(session, bridge, timing=timing).list_conferences()
    assert in_vietnamese.value.message == f"Không kết nối được tới MCU MCU-LAB ({cms.address}) trong 2 giây."
    assert session.scalar(sa.select(sa.func.count()).select_from(BridgeCertificate)) == 0
