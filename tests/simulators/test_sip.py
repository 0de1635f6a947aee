"""The simulators' SIP user agent sets calls up and down as RFC 3261 says, over UDP on this machine's loopback
(no root needed): offers and answers, refusals, cancels, retransmissions, and a bounded timeout when nobody
answers. Calls to endpoints in network namespaces are in test_endpoint_calls.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from simulators import sip
from simulators.sip import Call, SipAgent, parse_message, parse_sdp

T1 = 0.05  # fast timers: timer B = 64 * T1 = 3.2 s


@pytest.fixture
def agents() -> Iterator[Callable[..., SipAgent]]:
    made: list[SipAgent] = []

    def make(answer: Callable[[Call], int | None] | None = None, **options: object) -> SipAgent:
        agent = SipAgent("127.0.0.1", 0, user=f"ua{len(made)}", answer=answer, t1=T1, **options).start()
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()


def test_an_offer_and_its_answer_carry_the_media_ports_and_the_call_rate():
    offer = sip.Sdp("198.18.4.2", 40000, 40002, 1920).to_text(7)
    assert "m=audio 40000 RTP/AVP 0" in offer and "m=video 40002 RTP/AVP 96" in offer
    assert "b=AS:1920" in offer and "c=IN IP4 198.18.4.2" in offer
    assert parse_sdp(offer) == sip.Sdp("198.18.4.2", 40000, 40002, 1920)


def test_a_message_is_read_back_with_compact_headers_and_its_body():
    raw = (b"INVITE sip:room@198.18.4.2 SIP/2.0\r\nv: SIP/2.0/UDP 198.18.4.1:5060;branch=z9hG4bKabc\r\n"
           b"f: <sip:bridge@198.18.4.1>;tag=1\r\nt: <sip:room@198.18.4.2>\r\ni: xyz\r\nCSeq: 1 INVITE\r\n"
           b"l: 4\r\n\r\nv=0\r\nignored")
    message = parse_message(raw)
    assert message is not None and message.is_request
    assert (message.method, message.call_id, message.branch, message.cseq, message.body) == (
        "INVITE", "xyz", "z9hG4bKabc", (1, "INVITE"), "v=0\r")
    assert parse_message(b"\x00\x01 not sip") is None


def test_a_call_answered_carries_media_both_ways_and_ends_with_bye(agents):
    room = agents(lambda call: 200)
    bridge = agents()
    call = bridge.dial(room.uri, kbps=1024)
    assert call.wait("connected", timeout=5), call
    (incoming,) = room.calls()
    assert (call.status_code, incoming.direction, incoming.state, incoming.kbps) == (200, "incoming", "connected",
                                                                                     1024)
    time.sleep(1.5)
    for figures in (call.stats(), incoming.stats()):
        assert set(figures) == {"audio", "video"}
        assert figures["audio"]["received_packets"] >= 50  # 50 a second
        assert figures["video"]["received_packets"] >= 100  # ~100 a second at 1 Mbit/s
        assert figures["audio"]["lost"] == 0
    call.hangup()
    assert incoming.wait("ended", timeout=3)
    assert (call.state, call.ended_by, incoming.reason, incoming.ended_by) == ("ended", "local", "remote hangup",
                                                                              "remote")
    assert all(s.state == "stopped" for s in [*call.media.values(), *incoming.media.values()])


def test_the_answer_takes_the_lower_call_rate():
    with SipAgent("127.0.0.1", 0, kbps=768, t1=T1) as room, SipAgent("127.0.0.1", 0, t1=T1) as bridge:
        call = bridge.dial(room.uri, kbps=1920)
        assert call.wait("connected", timeout=5)
        assert call.kbps == 768 and room.calls()[0].kbps == 768


@pytest.mark.parametrize(("code", "reason"), [(486, "Busy Here"), (480, "Temporarily Unavailable"),
                                              (603, "Decline")])
def test_a_refusal_fails_the_call_with_the_code_and_reason(agents, code, reason):
    room = agents(lambda call: code)
    call = agents().dial(room.uri)
    assert call.wait("failed", timeout=5)
    assert (call.status_code, call.reason, call.media) == (code, reason, {})
    assert room.calls()[0].status_code == code


def test_a_peer_that_never_answers_times_out_with_408_within_timer_b():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, reads nothing, answers nothing
    silent.bind(("127.0.0.1", 0))
    received = []

    def count() -> None:
        silent.settimeout(0.5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                received.append((time.monotonic(), silent.recv(65535)))
            except TimeoutError:
                continue
            except OSError:
                return

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    with SipAgent("127.0.0.1", 0, t1=T1) as bridge:
        started = time.monotonic()
        call = bridge.dial(f"sip:room@127.0.0.1:{silent.getsockname()[1]}")
        assert call.wait("failed", timeout=10)
        elapsed = time.monotonic() - started
    silent.close()
    counter.join(timeout=6)
    assert (call.status_code, call.reason) == (408, "Request Timeout")
    assert 64 * T1 - 0.1 <= elapsed <= 64 * T1 + 2  # bounded (the margin is for a busy machine)
    # Timer A: the INVITE went at 0, T1, 3 T1, 7 T1, ... 63 T1 (the last may fall after timer B on a busy
    # machine): the gaps double, from T1 to 32 T1.
    times = [at for at, message in received if message.startswith(b"INVITE")]
    assert len(times) in (6, 7), times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] < 4 * T1 and gaps[-1] > 12 * T1 and sum(gaps) <= 64 * T1 + 0.5, gaps


def test_a_call_left_ringing_is_cancelled_by_the_caller_and_answered_487(agents):
    room = agents(lambda call: None)  # rings until someone answers
    call = agents().dial(room.uri)
    assert call.wait("ringing", timeout=5)
    call.hangup()
    (incoming,) = room.calls()
    assert incoming.wait("ended", timeout=3)
    assert (call.status_code, call.reason, incoming.status_code, incoming.reason) == (487, "cancelled", 487,
                                                                                      "cancelled")


def test_a_ringing_call_is_answered_or_refused_when_the_application_says(agents):
    room = agents(lambda call: None, ring_timeout=10)
    bridge = agents()
    first = bridge.dial(room.uri)
    assert first.wait("ringing", timeout=5)
    room.calls()[0].accept()
    assert first.wait("connected", timeout=5)
    second = bridge.dial(room.uri)
    assert second.wait("ringing", timeout=5)
    room.calls()[1].reject(603)
    assert second.wait("failed", timeout=5) and second.status_code == 603


def test_a_call_whose_media_stop_arriving_is_hung_up_by_the_agent(agents):
    room = agents(lambda call: 200, media_timeout=1.0)
    bridge = agents()
    call = bridge.dial(room.uri)
    assert call.wait("connected", timeout=5)
    # The bridge dies without a word: its agent's thread stops (no BYE), its media sockets close.
    bridge._stop.set()
    assert bridge._thread is not None
    bridge._thread.join(timeout=2)
    for session in call.media.values():
        session.stop()
    (incoming,) = room.calls()
    assert incoming.wait("ended", timeout=5)
    assert (incoming.reason, incoming.ended_by) == ("media timeout", "local")


def test_a_call_keeps_the_states_it_went_through_and_on_change_hears_each_change(agents):
    heard: list[str] = []
    room = agents(lambda call: 200, ring_seconds=0.2)
    bridge = agents(on_change=lambda call: heard.append(call.state))
    call = bridge.dial(room.uri)
    assert call.wait("connected", timeout=5)
    call.hangup()
    deadline = time.monotonic() + 2
    while heard[-1:] != ["ended"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert call.history == ["calling", "ringing", "connected", "ended"]
    assert room.calls()[0].history == ["ringing", "connected", "ended"]
    assert len(heard) >= 4 and heard[-1] == "ended"
