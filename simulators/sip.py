"""A minimal SIP user agent over UDP (a subset of RFC 3261), with SDP offers and answers (RFC 4566) and the
calls' RTP media (simulators/media.py): the simulated bridge and endpoints call each other with it.

A test and benchmark tool, not part of the app; only the standard library is used.

    agent = SipAgent("198.18.1.2", user="room", answer=lambda call: 200).start()   # 5060 by default
    call = agent.dial("sip:8800@198.18.1.6", kbps=1920)        # returns at once; the call progresses alone
    call.wait("connected", "failed", timeout=10)
    call.state, call.status_code, call.reason                  # "connected", 200, "OK"
    call.stats()                                               # {"audio": {...}, "video": {...}} (media.py)
    call.hangup()                                              # BYE (or CANCEL while it rings)
    agent.stop()                                               # hangs up what is left, closes the socket

One `SipAgent` is both sides: the UAC (`dial`) and the UAS, which answers each INVITE as its `answer(call)`
callback says: 200 to answer, 486 (Busy Here), 480 (Temporarily Unavailable: not registered), 603 (Decline)
or any other final code to refuse, None to leave the call ringing until `call.accept()` or
`call.reject(code)`. It sends 100 Trying at once and 180 Ringing, then the answer (after `ring_seconds`).
`on_change(call)` is called after every change of a call's state, from the agent's thread and without its
lock held (so it may take other locks, such as a state file's); `answer` is called from the agent's thread with
its lock held: keep it short and do not call the agent from it.

Transactions, over UDP: an INVITE is retransmitted after T1, 2T1, 4T1... (timer A) until a response comes;
with no response at all within timer B (64*T1 by default, `timer_b` to bound it otherwise) the call fails with
408 Request Timeout, so an unreachable peer is known in bounded time. A ringing call that nobody answers within
`ring_timeout` is cancelled (487). 2xx answers are retransmitted until the ACK comes (timers G/H), non-2xx finals
are ACKed by the UAC inside the transaction, BYE and CANCEL are retransmitted (timer E, capped at T2) until
their 200 or timer F. Responses go back to where the request came from. OPTIONS is answered 200 (a ping).

Call states (`call.history` keeps them in order): "calling" (INVITE sent) -> "ringing" (180 sent or received)
-> "connected" (200 OK; the media run both ways) -> "ended" (BYE either way, a cancel, or the media stopped
arriving for `media_timeout` seconds: the agent then sends BYE itself, reason "media timeout"); or "failed" (a
final answer >= 300, 408 on timer B, or 503 "DNS failure" when the URI's host does not resolve). `status_code`
is the INVITE's final code (200, 486, 480, 603, 408, 487, 503...), `reason` its phrase or why the call ended,
`ended_by` "local" or "remote".

Media: each call opens two UDP sockets on the agent's address (any free ports): audio (m=audio PORT RTP/AVP 0,
PCMU) and video (m=video PORT RTP/AVP 96, H264/90000), RTP and RTCP multiplexed (a=rtcp-mux), the call rate as
b=AS:kbps (the answer takes the lower of the offer's and its own `kbps`). `media_rate` scales the packet rates
down for benchmarks (media.audio_stream/video_stream).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:  # imported from the checkout, or run in a test host from a folder holding copies of the simulators
    from simulators import media as rtp
except ImportError:  # pragma: no cover - the script's own folder is on sys.path
    import media as rtp  # type: ignore[no-redef]

MediaSession, audio_stream, open_socket, video_stream = (rtp.MediaSession, rtp.audio_stream, rtp.open_socket,
                                                         rtp.video_stream)

SIP_PORT = 5060
T1 = 0.5
T2 = 4.0
MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: branches that start with it are unique per transaction
USER_AGENT = "VCOps simulator"
REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented",
           503: "Service Unavailable", 603: "Decline"}
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject"}


# ---------------------------------------------------------------- messages

@dataclass
class Message:
    """A SIP request or response: its first line, its headers in order, and its body."""

    first: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0] if self.is_request else self.cseq[1]

    @property
    def uri(self) -> str:
        return self.first.split(" ")[1]

    @property
    def code(self) -> int:
        return int(self.first.split(" ")[1]) if not self.is_request else 0

    @property
    def reason(self) -> str:
        return self.first.split(" ", 2)[2] if not self.is_request and self.first.count(" ") >= 2 else ""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if COMPACT.get(key.lower(), key.lower()) == name:
                return value
        return None

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "0 ?").partition(" ")
        return int(number) if number.isdigit() else 0, method.strip().upper()

    @property
    def branch(self) -> str:
        return _param(self.header("via") or "", "branch")

    def to_bytes(self) -> bytes:
        body = self.body.encode()
        lines = [self.first, *(f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"),
                 f"Content-Length: {len(body)}", "", ""]
        return "\r\n".join(lines).encode() + body


def parse_message(data: bytes) -> Message | None:
    """A datagram as a SIP message, or None when it is not one (keep-alives, garbage)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    separator = "\r\n\r\n" if "\r\n\r\n" in text else "\n\n"
    head, _, body = text.partition(separator)
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines or not (lines[0].startswith("SIP/2.0 ") or re.match(r"^[A-Z]+ \S+ SIP/2\.0$", lines[0])):
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded header line
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    message = Message(lines[0], headers, body)
    length = message.header("content-length")
    if length and length.isdigit():
        message.body = body.encode()[:int(length)].decode(errors="replace")
    return message


def _param(header: str, name: str) -> str:
    m = re.search(rf";\s*{name}=([^;,\s>]+)", header, flags=re.IGNORECASE)
    return m.group(1) if m else ""


def _tag(header: str | None) -> str:
    return _param(header or "", "tag")


def uri_target(uri: str) -> tuple[str, int]:
    """'sip:room@198.18.1.2:5070;transport=udp' -> ('198.18.1.2', 5070); the port is 5060 when not given."""
    m = re.match(r"^(?:<)?sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", uri.strip(), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"not a SIP URI: {uri!r}")
    return m.group(1).strip("[]"), int(m.group(2) or SIP_PORT)


def _uri_in(header: str) -> str:
    m = re.search(r"<([^>]+)>", header)
    return m.group(1) if m else header.split(";", 1)[0].strip()


# ---------------------------------------------------------------- SDP

@dataclass(frozen=True)
class Sdp:
    """What this agent offers and answers: one address, an audio and a video port (None or 0: no such stream),
    and the call rate."""

    address: str
    audio_port: int | None
    video_port: int | None
    kbps: int | None = None

    def to_text(self, session_id: int = 0) -> str:
        lines = ["v=0", f"o=- {session_id} {session_id} IN IP4 {self.address}", "s=-",
                 f"c=IN IP4 {self.address}", "t=0 0"]
        if self.kbps:
            lines.append(f"b=AS:{self.kbps}")
        if self.audio_port is not None:
            lines += [f"m=audio {self.audio_port} RTP/AVP {rtp.PCMU}", f"a=rtpmap:{rtp.PCMU} PCMU/{rtp.AUDIO_CLOCK}",
                      "a=rtcp-mux", "a=sendrecv"]
        if self.video_port is not None:
            lines.append(f"m=video {self.video_port} RTP/AVP {rtp.H264}")
            if self.kbps:
                lines.append(f"b=AS:{video_kbps(self.kbps)}")
            lines += [f"a=rtpmap:{rtp.H264} H264/{rtp.VIDEO_CLOCK}", "a=rtcp-mux", "a=sendrecv"]
        return "\r\n".join(lines) + "\r\n"


def parse_sdp(text: str) -> Sdp:
    """The address, the audio and video ports and the session's b=AS of an offer or answer (RFC 4566)."""
    address = ""
    ports: dict[str, int] = {}
    kbps: int | None = None
    media: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        kind, _, value = line.strip().partition("=")
        if kind == "c" and value.startswith("IN IP4 ") and (media is None or not address):
            address = value.split()[2].split("/")[0]
        elif kind == "m":
            words = value.split()
            media = words[0] if words else None
            if media in ("audio", "video") and len(words) > 1 and words[1].isdigit() and media not in ports:
                ports[media] = int(words[1])
        elif kind == "b" and value.upper().startswith("AS:") and media is None:
            with contextlib.suppress(ValueError):
                kbps = int(value[3:])
    return Sdp(address, ports.get("audio"), ports.get("video"), kbps)


def video_kbps(call_kbps: int) -> int:
    """A call's video share: what is left after the audio's 64 kbit/s (at least 64)."""
    return max(64, call_kbps - rtp.AUDIO_KBPS)


# ---------------------------------------------------------------- calls

FINAL_STATES = ("ended", "failed")


class Call:
    """One call of an agent, either way. Read its attributes freely; change it only with its methods."""

    def __init__(self, agent: SipAgent, direction: str, call_id: str, local_uri: str, remote_uri: str,
                 target: tuple[str, int], kbps: int) -> None:
        self.agent = agent
        self.direction = direction  # "outgoing" | "incoming"
        self.call_id = call_id
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.target = target  # where requests of this dialog go
        self.kbps = kbps
        self.state = "calling" if direction == "outgoing" else "ringing"
        self.status_code: int | None = None
        self.reason = ""
        self.ended_by = ""
        self.created_at = time.time()
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.media: dict[str, MediaSession] = {}
        self.remote_sdp: Sdp | None = None
        self.history: list[str] = []  # the states it went through, in order
        self.local_tag = secrets.token_hex(4)
        self.remote_tag = ""
        self.cseq = 1
        self.remote_display = ""  # the peer's display name, as its From said (incoming calls)
        self.local_display = agent.display_name
        self._changed = threading.Condition(agent._lock)
        self._sockets: dict[str, socket.socket] = {}
        # The INVITE transaction (ours as UAC, or the peer's as UAS).
        self._invite: Message | None = None
        self._invite_branch = ""
        self._invite_source: tuple[str, int] = target
        self._last_response: Message | None = None
        self._provisional = False  # a 1xx came (UAC): a CANCEL may be sent
        self._ring_deadline = 0.0

    # ------------------------------------------------------------ reading

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.remote_uri} {self.state} {self.status_code or ''}>"

    @property
    def duration(self) -> float:
        if self.connected_at is None:
            return 0.0
        return (self.ended_at or time.time()) - self.connected_at

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each stream's measured figures (simulators/media.py's MediaSession.stats()), by kind."""
        return {kind: session.stats() for kind, session in list(self.media.items())}

    def wait(self, *states: str, timeout: float = 10.0) -> bool:
        """Wait until the call is in one of `states` (default: connected, ended or failed); True when it is."""
        wanted = states or ("connected", *FINAL_STATES)
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.state not in wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.2))
        return True

    # ------------------------------------------------------------ acting

    def hangup(self) -> None:
        """End the call: BYE when connected, CANCEL while it rings (outgoing), 487 (incoming, unanswered)."""
        self.agent._hangup(self)

    def accept(self) -> None:
        """Answer a ringing incoming call (200 OK with the SDP answer; the media start)."""
        self.agent._answer(self, 200)

    def reject(self, code: int = 486) -> None:
        """Refuse a ringing incoming call with a final code (486 Busy Here, 480, 603 Decline...)."""
        if code < 300:
            raise ValueError(f"a refusal is a final code >= 300, not {code}")
        self.agent._answer(self, code)


@dataclass
class _Retransmission:
    """A request or response sent again until answered (or acknowledged), then given up."""

    data: bytes
    to: tuple[str, int]
    interval: float
    next_at: float
    give_up_at: float
    cap: float | None  # T2 for non-INVITE requests and 2xx answers; None doubles without a cap (timer A)
    on_give_up: Callable[[], None] | None = None


class SipAgent:
    """A SIP user agent on address:port (UDP), both UAC and UAS; its calls run in one thread."""

    def __init__(self, address: str, port: int = SIP_PORT, *, user: str = "", display_name: str = "",
                 answer: Callable[[Call], int | None] | None = None,
                 on_change: Callable[[Call], None] | None = None, kbps: int = 1920, media_rate: float = 1.0,
                 media_timeout: float = 10.0, ring_seconds: float = 0.0, ring_timeout: float = 60.0,
                 t1: float = T1, timer_b: float | None = None, max_calls: int | None = None) -> None:
        self.address = address
        self.user = user
        self.display_name = display_name
        self.answer = answer or (lambda _call: 200)
        self.on_change = on_change
        self.kbps = kbps
        self.media_rate = media_rate
        self.media_timeout = media_timeout
        self.ring_seconds = ring_seconds
        self.ring_timeout = ring_timeout
        self.t1 = t1
        self.timer_b = 64 * t1 if timer_b is None else timer_b
        self.max_calls = max_calls
        self._lock = threading.RLock()
        self._calls: dict[str, Call] = {}
        self._retransmissions: dict[tuple[str, str, str], _Retransmission] = {}
        self._pending_answers: list[tuple[float, Call, int]] = []
        self._notify: list[Call] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.port = self.sock.getsockname()[1]

    @property
    def uri(self) -> str:
        host = self.address if self.port == SIP_PORT else f"{self.address}:{self.port}"
        return f"sip:{self.user}@{host}" if self.user else f"sip:{host}"

    def calls(self) -> list[Call]:
        """Every call so far (ended ones too), oldest first."""
        with self._lock:
            return list(self._calls.values())

    def active_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self._calls.values() if c.state not in FINAL_STATES]

    def forget(self, call: Call) -> None:
        """Drop an ended call from calls() (long-running agents keep only what they need)."""
        with self._lock:
            if call.state in FINAL_STATES:
                self._calls.pop(call.call_id, None)

    # ------------------------------------------------------------ running

    def start(self) -> SipAgent:
        self._thread = threading.Thread(target=self._run, name=f"sip-{self.address}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, hangup_timeout: float = 2.0) -> None:
        """Hang up every call (waiting up to `hangup_timeout` for the BYEs' answers), then close the socket."""
        for call in self.active_calls():
            call.hangup()
        deadline = time.monotonic() + hangup_timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not any(key[1] in ("BYE", "CANCEL") for key in self._retransmissions):
                    break
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            for call in self._calls.values():
                self._stop_media(call)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SipAgent:
        return self.start() if self._thread is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                readable, _, _ = select.select([self.sock], [], [], 0.02)
                if readable:
                    data, source = self.sock.recvfrom(65535)
                    message = parse_message(data)
                    if message is not None:
                        with self._lock:
                            self._receive(message, source)
            with self._lock:
                self._tick(time.monotonic())
            self._flush_notifications()

    # ------------------------------------------------------------ dialling (UAC)

    def dial(self, uri: str, *, kbps: int | None = None, via: tuple[str, int] | None = None,
             display_name: str | None = None) -> Call:
        """Call `uri` (sip:user@host[:port]); the INVITE goes to `via` when given, else to the URI's host and
        port. Returns at once, the call in state "calling"; wait() for what follows."""
        target = via or uri_target(uri)
        kbps = kbps or self.kbps
        call_id = f"{secrets.token_hex(8)}@{self.address}"
        try:  # here, in the caller's thread: a slow resolver must not stall every other call
            target = (socket.getaddrinfo(target[0], target[1], socket.AF_INET, socket.SOCK_DGRAM)[0][4][0], target[1])
        except OSError:
            target = ("", target[1])
        with self._lock:
            call = Call(self, "outgoing", call_id, self.uri, uri.strip("<>"), target, kbps)
            call.local_display = self.display_name if display_name is None else display_name
            self._calls[call_id] = call
            if not target[0]:  # RFC 3263 §4.3: no server to try, the request fails with 503
                self._close(call, "failed", 503, "DNS failure", "local")
                return call
            offer = self._open_media(call, kbps)
            call._invite_branch = MAGIC + secrets.token_hex(8)
            invite = self._request(call, "INVITE", call._invite_branch, body=offer.to_text(int(time.time())))
            call._invite = invite
            self._send_retransmitted(("INVITE", "INVITE", call._invite_branch), invite, target, cap=None,
                                     give_up=self.timer_b, on_give_up=lambda: self._timed_out(call))
            self._changed(call)
        return call

    def _request(self, call: Call, method: str, branch: str, body: str = "", cseq: int | None = None) -> Message:
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                call.cseq += 0 if method == "INVITE" else 1
            cseq = call.cseq
        # In a dialog we answered as in one we began, our requests carry us in From and the peer in To.
        local = f"<{call.local_uri}>;tag={call.local_tag}"
        if call.local_display:
            local = f'"{call.local_display}" ' + local
        remote = f"<{call.remote_uri}>" + (f";tag={call.remote_tag}" if call.remote_tag else "")
        headers = [("Via", f"SIP/2.0/UDP {self.address}:{self.port};branch={branch};rport"),
                   ("Max-Forwards", "70"), ("From", local), ("To", remote),
                   ("Call-ID", call.call_id), ("CSeq", f"{cseq} {method}"),
                   ("Contact", f"<{self.uri}>"), ("User-Agent", USER_AGENT)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return Message(f"{method} {call.remote_uri} SIP/2.0", headers, body)

    def _on_response(self, call: Call, response: Message) -> None:
        method = response.cseq[1]
        code = response.code
        if method in ("BYE", "CANCEL"):
            self._retransmissions.pop((method, method, response.branch), None)
            return
        if method != "INVITE":
            return
        self._retransmissions.pop(("INVITE", "INVITE", call._invite_branch), None)  # timer A stops
        if code < 200:
            call._provisional = True
            if call.state == "calling" and code in (180, 183):
                call.state = "ringing"
                self._changed(call)
            if not call._ring_deadline:
                call._ring_deadline = time.monotonic() + self.ring_timeout
            return
        call.remote_tag = call.remote_tag or _tag(response.header("to"))
        if code < 300:
            self._send(self._ack(call, MAGIC + secrets.token_hex(8)), call.target)
            if call.state in ("calling", "ringing"):
                call.status_code, call.reason = code, response.reason
                contact = response.header("contact")
                if contact:
                    with contextlib.suppress(ValueError):
                        call.target = uri_target(_uri_in(contact))
                answer = parse_sdp(response.body)
                call.remote_sdp = answer
                if answer.kbps:
                    call.kbps = min(call.kbps, answer.kbps)
                self._connect(call, answer)
            elif call.state in ("ended",) and call.ended_by == "local" and not call.connected_at:
                # Answered as we cancelled: the call is not wanted any more (RFC 3261 §9.1).
                call.remote_sdp = parse_sdp(response.body)
                self._bye(call)
            return
        # A refusal: ACK it inside the INVITE transaction (same branch), once per retransmission.
        self._send(self._ack(call, call._invite_branch, to_tag=_tag(response.header("to"))), call.target)
        if call.state not in FINAL_STATES:
            self._close(call, "failed", code, response.reason or REASONS.get(code, ""), "remote")
        elif call.status_code is None:
            call.status_code = code

    def _ack(self, call: Call, branch: str, to_tag: str | None = None) -> Message:
        ack = self._request(call, "ACK", branch, cseq=call._invite.cseq[0] if call._invite else call.cseq)
        if to_tag is not None:
            ack.headers = [(k, f"<{call.remote_uri}>;tag={to_tag}" if k == "To" else v) for k, v in ack.headers]
        return ack

    def _timed_out(self, call: Call) -> None:
        if call.state == "calling":
            self._close(call, "failed", 408, REASONS[408], "local")

    # ------------------------------------------------------------ answering (UAS)

    def _on_request(self, request: Message, source: tuple[str, int]) -> None:
        method = request.method
        call = self._calls.get(request.call_id)
        if method == "INVITE" and call is None:
            self._incoming(request, source)
        elif method == "INVITE" and call is not None and call.direction == "incoming":
            if request.branch == call._invite_branch and call._last_response is not None:
                self._send(call._last_response, source)  # a retransmitted INVITE: the same answer again
            else:
                self._send(self._response(request, 488 if call.state == "connected" else 491), source)
        elif method == "ACK":
            if call is not None:
                self._retransmissions.pop(("200", "INVITE", call.call_id), None)
                self._retransmissions.pop(("final", "INVITE", call.call_id), None)
        elif method == "BYE":
            if call is None or call.state in FINAL_STATES and call.ended_by == "local":
                self._send(self._response(request, 481 if call is None else 200), source)
                return
            self._send(self._response(request, 200), source)
            if call.state not in FINAL_STATES:
                self._close(call, "ended", call.status_code, "remote hangup", "remote")
        elif method == "CANCEL":
            if call is None:
                self._send(self._response(request, 481), source)
                return
            self._send(self._response(request, 200), source)
            if call.direction == "incoming" and call.state == "ringing" and call._invite is not None:
                self._pending_answers = [p for p in self._pending_answers if p[1] is not call]
                self._final(call, 487)
                self._close(call, "ended", 487, "cancelled", "remote")
        elif method == "OPTIONS":
            self._send(self._response(request, 200), source)
        else:
            self._send(self._response(request, 501), source)

    def _incoming(self, invite: Message, source: tuple[str, int]) -> None:
        contact = invite.header("contact")
        target = source
        remote_uri = _uri_in(invite.header("from") or "")
        if contact:
            with contextlib.suppress(ValueError):
                target = uri_target(_uri_in(contact))
        offer = parse_sdp(invite.body)
        kbps = min(self.kbps, offer.kbps) if offer.kbps else self.kbps
        call = Call(self, "incoming", invite.call_id, _uri_in(invite.header("to") or self.uri), remote_uri,
                    target, kbps)
        m = re.match(r'^\s*"([^"]*)"', invite.header("from") or "")
        call.remote_display = m.group(1) if m else ""
        call.remote_tag = _tag(invite.header("from"))
        call.cseq = 0
        call.remote_sdp = offer
        call._invite = invite
        call._invite_branch = invite.branch
        call._invite_source = source
        self._calls[call.call_id] = call
        self._respond(call, 100)
        busy = self.max_calls is not None and len(self.active_calls()) > self.max_calls
        try:
            code = 486 if busy else self.answer(call)
        except Exception:  # the application's callback failed: the caller hears it, the agent lives on
            code = 500
        self._respond(call, 180)
        self._changed(call)
        if code is None:
            call._ring_deadline = time.monotonic() + self.ring_timeout
        elif code < 300 and self.ring_seconds > 0:
            self._pending_answers.append((time.monotonic() + self.ring_seconds, call, code))
        else:
            self._answer(call, code)

    def _answer(self, call: Call, code: int) -> None:
        with self._lock:
            if call.direction != "incoming" or call.state != "ringing":
                return
            if code >= 300:
                self._final(call, code)
                self._close(call, "failed", code, REASONS.get(code, ""), "local")
                return
            answer = self._open_media(call, call.kbps)
            response = self._response(call._invite, 200, body=answer.to_text(int(time.time())), tag=call.local_tag)
            call._last_response = response
            self._send_retransmitted(("200", "INVITE", call.call_id), response, call._invite_source, cap=T2,
                                     give_up=64 * self.t1)
            call.status_code, call.reason = 200, REASONS[200]
            self._connect(call, call.remote_sdp or Sdp("", None, None))

    def _final(self, call: Call, code: int) -> None:
        """A non-2xx final answer to the peer's INVITE, sent until its ACK comes (timer G, H)."""
        assert call._invite is not None
        response = self._response(call._invite, code, tag=call.local_tag)
        call._last_response = response
        self._send_retransmitted(("final", "INVITE", call.call_id), response, call._invite_source, cap=T2,
                                 give_up=64 * self.t1)

    def _respond(self, call: Call, code: int) -> None:
        assert call._invite is not None
        response = self._response(call._invite, code, tag=call.local_tag if code > 100 else None)
        call._last_response = response
        self._send(response, call._invite_source)

    def _response(self, request: Message, code: int, body: str = "", tag: str | None = None) -> Message:
        headers: list[tuple[str, str]] = []
        for name, value in request.headers:
            canonical = COMPACT.get(name.lower(), name.lower())
            if canonical == "to" and tag and not _tag(value):
                value = f"{value};tag={tag}"
            if canonical in ("via", "from", "to", "call-id", "cseq"):
                headers.append((name, value))
        headers += [("Contact", f"<{self.uri}>"), ("User-Agent", USER_AGENT)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return Message(f"SIP/2.0 {code} {REASONS.get(code, 'Unknown')}", headers, body)

    # ------------------------------------------------------------ ending

    def _hangup(self, call: Call) -> None:
        with self._lock:
            self._pending_answers = [p for p in self._pending_answers if p[1] is not call]
            if call.state == "connected":
                self._bye(call)
                self._close(call, "ended", call.status_code, "local hangup", "local")
            elif call.state in ("calling", "ringing") and call.direction == "outgoing":
                assert call._invite is not None
                cancel = Message(f"CANCEL {call.remote_uri} SIP/2.0",
                                 [(k, v) for k, v in call._invite.headers
                                  if k in ("Via", "From", "To", "Call-ID", "Max-Forwards")]
                                 + [("CSeq", f"{call._invite.cseq[0]} CANCEL")])
                self._retransmissions.pop(("INVITE", "INVITE", call._invite_branch), None)
                self._send_retransmitted(("CANCEL", "CANCEL", call._invite_branch), cancel, call.target, cap=T2,
                                         give_up=64 * self.t1)
                self._close(call, "ended", 487, "cancelled", "local")
            elif call.state == "ringing":
                self._final(call, 487 if call._invite is not None else 480)
                self._close(call, "ended", 487, "cancelled", "local")

    def _bye(self, call: Call) -> None:
        branch = MAGIC + secrets.token_hex(8)
        bye = self._request(call, "BYE", branch)
        self._send_retransmitted(("BYE", "BYE", branch), bye, call.target, cap=T2, give_up=64 * self.t1)

    def _close(self, call: Call, state: str, code: int | None, reason: str, by: str) -> None:
        call.state = state
        call.status_code = code
        call.reason = reason
        call.ended_by = by
        call.ended_at = time.time()
        self._stop_media(call)
        self._changed(call)

    # ------------------------------------------------------------ media

    def _open_media(self, call: Call, kbps: int) -> Sdp:
        for kind in ("audio", "video"):
            call._sockets[kind] = open_socket(self.address)
        return Sdp(self.address, call._sockets["audio"].getsockname()[1], call._sockets["video"].getsockname()[1],
                   kbps)

    def _connect(self, call: Call, remote: Sdp) -> None:
        call.state = "connected"
        call.connected_at = time.time()
        streams = {"audio": (remote.audio_port, audio_stream(self.media_rate)),
                   "video": (remote.video_port, video_stream(video_kbps(call.kbps), self.media_rate))}
        for kind, (port, stream) in streams.items():
            sock = call._sockets.pop(kind, None)
            if sock is None:
                continue
            if not port or not remote.address:
                sock.close()
                continue
            session = MediaSession(sock, (remote.address, port), secrets.randbits(32), stream,
                                   timeout=self.media_timeout)
            call.media[kind] = session.start()
        self._changed(call)

    def _stop_media(self, call: Call) -> None:
        for session in call.media.values():
            if session.state == "running":
                session.stop("call ended")
        for sock in call._sockets.values():
            sock.close()
        call._sockets.clear()

    # ------------------------------------------------------------ the loop's work

    def _receive(self, message: Message, source: tuple[str, int]) -> None:
        if message.is_request:
            self._on_request(message, source)
            return
        call = self._calls.get(message.call_id)
        if call is not None and call.direction == "outgoing":
            self._on_response(call, message)
        elif call is not None and message.cseq[1] == "BYE":
            self._retransmissions.pop(("BYE", "BYE", message.branch), None)

    def _tick(self, now: float) -> None:
        for key, item in list(self._retransmissions.items()):
            if now >= item.give_up_at:
                del self._retransmissions[key]
                if item.on_give_up is not None:
                    item.on_give_up()
            elif now >= item.next_at:
                self._send_bytes(item.data, item.to)
                item.interval = item.interval * 2 if item.cap is None else min(item.interval * 2, item.cap)
                item.next_at += item.interval  # on schedule: a late tick does not push the next ones
        due = [p for p in self._pending_answers if p[0] <= now]
        self._pending_answers = [p for p in self._pending_answers if p[0] > now]
        for _at, call, code in due:
            self._answer(call, code)
        for call in list(self._calls.values()):
            if call.state == "connected" and call.media and all(s.ended.is_set() for s in call.media.values()):
                self._bye(call)
                self._close(call, "ended", call.status_code, "media timeout", "local")
            elif call.state in ("calling", "ringing") and call._ring_deadline and now >= call._ring_deadline:
                call._ring_deadline = 0.0
                if call.direction == "outgoing":
                    self._hangup(call)
                    call.reason = "no answer"
                else:
                    self._final(call, 480)
                    self._close(call, "failed", 480, "no answer", "local")

    def _send_retransmitted(self, key: tuple[str, str, str], message: Message, to: tuple[str, int], *,
                            cap: float | None, give_up: float, on_give_up: Callable[[], None] | None = None) -> None:
        data = message.to_bytes()
        now = time.monotonic()
        self._retransmissions[key] = _Retransmission(data, to, self.t1, now + self.t1, now + give_up, cap,
                                                     on_give_up)
        self._send_bytes(data, to)

    def _send(self, message: Message, to: tuple[str, int]) -> None:
        self._send_bytes(message.to_bytes(), to)

    def _send_bytes(self, data: bytes, to: tuple[str, int]) -> None:
        # An unreachable peer is not an error here: timer B (or F) decides when it has not answered.
        with contextlib.suppress(OSError):
            self.sock.sendto(data, to)

    def _changed(self, call: Call) -> None:
        with self._lock:
            if not call.history or call.history[-1] != call.state:
                call.history.append(call.state)
            call._changed.notify_all()
            self._notify.append(call)

    def _flush_notifications(self) -> None:
        """Call on_change for what changed, in order, from the agent's thread without the lock."""
        with self._lock:
            pending, self._notify = self._notify, []
        if self.on_change is None:
            return
        for call in pending:
            with contextlib.suppress(Exception):  # the application's callback must not stop the agent
                self.on_change(call)
