"""The simulated Meeting Server's SIP side: its dial-outs and the calls that come in, with their media.

A part of simulators/cisco_cms.py (see its docstring for what a client sees), on the shared SIP user agent and
RTP media of simulators/sip.py and simulators/media.py. One `SipAgent` on the bridge's SIP address carries every
call leg; its calls' progress becomes the legs' states (ringing, connected) and their ends the callLegEnd
reasons a CDR would carry.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from simulators import sip

# The INVITE's final answer -> the callLegEnd reason of the CMS CDR reference.
REFUSALS = {486: "remoteBusy", 600: "remoteBusy", 603: "remoteRejected", 404: "unknownDestination",
            480: "unknownDestination", 484: "unknownDestination", 408: "timeout"}


class Telephony:
    """Dials out for the bridge's legs and takes the calls that come in to its coSpaces."""

    def __init__(self, bridge: Any, address: str, sip_listen: tuple[str, int] | None, *, timer_b: float | None = None,
                 ring_timeout: float = 60.0, media_timeout: float = 10.0, kbps: int = 1920,
                 media_rate: float = 1.0) -> None:
        self.bridge = bridge
        host, port = sip_listen if sip_listen else (address, 0)  # without --sip-listen: dial-outs only
        self.agent = sip.SipAgent(host, port, user="cms", display_name="Cisco Meeting Server", answer=self._answer,
                                  on_change=self._changed, kbps=kbps, media_timeout=media_timeout,
                                  ring_timeout=ring_timeout, timer_b=timer_b, media_rate=media_rate)
        self._lock = threading.Lock()
        self._leg_of: dict[str, str] = {}  # SIP Call-ID -> call leg id
        self._call_of: dict[str, sip.Call] = {}  # call leg id -> SIP call

    def start(self) -> None:
        self.agent.start()

    def stop(self) -> None:
        self.agent.stop()

    # ------------------------------------------------------------ what the bridge asks

    def dial(self, leg: Any) -> None:
        """Send the leg's INVITE; the leg follows the call from here (its state, its end)."""
        target = _sip_uri(leg.remote_party)
        if target is None:
            self.bridge.end_leg(leg.id, "dnsFailure")  # no IP address to send it to: CMS would look the name up
            return
        kbps = max(64, leg.bandwidth // 1000) if leg.bandwidth else None
        call = self.agent.dial(target, kbps=kbps, display_name="Cisco Meeting Server")
        with self._lock:
            self._leg_of[call.call_id] = leg.id
            self._call_of[leg.id] = call
        self.bridge.leg_progress(leg.id, None, sip_call_id=call.call_id,
                                 local_address=f"{self.agent.address}:{self.agent.port}")
        self._changed(call)  # what happened before the mapping was made (a fast answer on a LAN) is caught up

    def release(self, leg: Any, hang_up: bool) -> None:
        """The leg is gone from the bridge: hang its call up (BYE or CANCEL) when the bridge ended it. In a thread
        of its own, so no lock of the bridge is held while the agent works."""
        with self._lock:
            call = self._call_of.pop(leg.id, None)
            if call is not None:
                self._leg_of.pop(call.call_id, None)
        if call is not None and hang_up and call.state not in sip.FINAL_STATES:
            threading.Thread(target=call.hangup, name=f"hangup-{leg.id[:8]}", daemon=True).start()

    # ------------------------------------------------------------ what the network says

    def _answer(self, call: sip.Call) -> int | None:
        # Runs under the agent's lock: the bridge is asked from another thread, which accepts or refuses.
        threading.Thread(target=self._admit, args=(call,), name="admit", daemon=True).start()
        return None

    def _admit(self, call: sip.Call) -> None:
        user = _user_part(call.local_uri)
        co_space_id = self.bridge.co_space_for_dialled(user)
        if co_space_id is None:
            call.reject(404)  # no coSpace has that uri or callId
            return
        leg = self.bridge.incoming_leg(co_space_id, call.remote_uri)
        if leg is None:
            call.reject(486)  # the space's call holds its participantLimit already
            return
        with self._lock:
            self._leg_of[call.call_id] = leg.id
            self._call_of[leg.id] = call
        self.bridge.leg_progress(leg.id, "ringing", sip_call_id=call.call_id,
                                 local_address=f"{self.agent.address}:{self.agent.port}")
        call.accept()

    def _changed(self, call: sip.Call) -> None:
        with self._lock:
            leg_id = self._leg_of.get(call.call_id)
        if leg_id is None:
            return
        if call.state == "ringing":
            self.bridge.leg_progress(leg_id, "ringing")
        elif call.state == "connected":
            self.bridge.leg_progress(leg_id, "connected", sessions=dict(call.media))
        elif call.state == "failed":
            self.bridge.end_leg(leg_id, REFUSALS.get(call.status_code or 0, "remoteRejected"))
        elif call.state == "ended":
            if call.ended_by == "remote":
                reason = "remoteTeardown"
            elif call.reason == "no answer":
                reason = "ringingTimeout"
            elif call.reason == "media timeout":
                reason = "timeout"
            else:
                reason = "localTeardown"
            self.bridge.end_leg(leg_id, reason)


def dialled_address(remote_party: str) -> tuple[str, str, int] | None:
    """(user, host, port) of `sip:user@host[:port]`, `user@host` or a bare `host[:port]`, when the host is an IP
    address (the simulator resolves no names)."""
    value = remote_party.strip()
    if value.lower().startswith("sip:"):
        value = value[4:]
    value = value.split(";", 1)[0]
    user, _, hostport = value.rpartition("@")
    host, _, port_text = hostport.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    if port_text and not port_text.isdigit():
        return None
    return user, host, int(port_text or sip.SIP_PORT)


def _sip_uri(remote_party: str) -> str | None:
    """The SIP URI to dial for a remoteParty (`sip:room@ADDR[:PORT]`, `room@ADDR`, `ADDR`), when its host is an
    IP address."""
    parsed = dialled_address(remote_party)
    if parsed is None:
        return None
    user, host, port = parsed
    return f"sip:{user + '@' if user else ''}{host}{'' if port == sip.SIP_PORT else f':{port}'}"


def _user_part(uri: str) -> str:
    value = uri.strip("<>")
    if value.lower().startswith(("sip:", "sips:")):
        value = value.split(":", 1)[1]
    return value.split("@", 1)[0] if "@" in value else ""
