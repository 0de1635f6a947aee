"""The calls of a simulated Cisco room system: a daemon that answers and places SIP calls with real RTP media and
writes what it measures into the device's state file, where the xAPI shell (simulators/cisco_xapi.py) reads it.

A test and benchmark tool, not part of the app; only the standard library is used. The SSH login shell is one
process per session, so the calls live here, in one long-running process per simulated endpoint, started next
to sshd in the endpoint's test host (tests/support/hosts.py) and ending with it:

    python3 endpoint_calls.py --state xapi.json --address 198.18.1.2 [--port 5060] [--media-rate 1.0]

- Incoming INVITEs (simulators/sip.py) on address:5060 are answered as the state file says: 480 Temporarily
  Unavailable when the endpoint is not registered (`registrar` is "reject" or "silent", or SIP Mode is Off);
  otherwise by `answer`: "auto" (200, the default), "busy" (486), "decline" (603) or "ignore" (it rings until
  the caller gives up); 486 as well when the device already holds its one call. An unreachable endpoint is one
  whose daemon is not running, or whose link drops the packets: the caller's INVITE times out (408).
- `xCommand Dial Number: <uri>` makes the shell add a call in status "Dialling" to the state file; this daemon
  (which looks at the file every 0.1 s) dials it: "sip:8800@198.18.1.6", "8800@198.18.1.6" or "198.18.1.6"
  as given, a bare number through the configured SIP Proxy 1 Address. The call goes Dialling -> Connecting
  (the far end rings) -> Connected; a call that fails or ends shows Disconnecting for 2 s, then leaves the
  file.
- `xCommand Call Disconnect` (or a reboot) removes the call from the file; the daemon then sends BYE. A call
  the far end ends, or whose media stop arriving, leaves the file too.
- Every second, under the same lock as the shell (cisco_xapi.StateStore), each call's entry in `calls` gets
  its status, `connected_at` and `media`: {"audio": ..., "video": ...}, the figures simulators/media.py
  measured on the packets that crossed the network (MediaSession.stats()). Ended calls go to `call_log` (the
  last 20: number, direction, SIP status code, reason, duration).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # imported from the checkout, or run in a test host from a folder holding copies of the simulators
    from simulators import cisco_xapi, sip
except ImportError:  # pragma: no cover - the script's own folder is on sys.path
    import cisco_xapi  # type: ignore[no-redef]
    import sip  # type: ignore[no-redef]

POLL_SECONDS = 0.1
UPDATE_SECONDS = 1.0
CALL_LOG = 20
DISCONNECTING_SECONDS = 2.0
ANSWERS = {"auto": 200, "busy": 486, "decline": 603, "ignore": None}
# What the device's xStatus Call [n] Status says in each of a SIP call's states.
STATUS = {("outgoing", "calling"): "Dialling", ("outgoing", "ringing"): "Connecting",
          ("incoming", "ringing"): "Ringing", ("outgoing", "connected"): "Connected",
          ("incoming", "connected"): "Connected"}


def dial_target(number: str, proxy: str) -> tuple[str, tuple[str, int] | None] | None:
    """(SIP URI, next hop or None) for what the user dialled; None when a bare number has no proxy to go to."""
    number = number.strip()
    if number.lower().startswith(("sip:", "sips:")):
        return number, None
    if "@" in number or "." in number or ":" in number:
        return "sip:" + number, None
    if not proxy:
        return None
    host, _, port = proxy.partition(":")
    return f"sip:{number}@{host}", (host, int(port) if port.isdigit() else sip.SIP_PORT)


def answer_code(state: dict[str, Any], others: int) -> int | None:
    """How the endpoint answers an INVITE, from its state, while it holds `others` calls already."""
    # A device without SIP URI or proxy still takes direct calls, as the real one does: only a registrar that
    # refuses or does not answer (the test's "not registered") and SIP switched off make it unavailable.
    sip_mode = cisco_xapi.config_value(state, ("SIP", "Mode"))
    if sip_mode == "Off" or state.get("registrar", "accept") != "accept":
        return 480
    code = ANSWERS.get(state.get("answer", "auto"), 200)
    if code == 200 and others >= cisco_xapi.MAX_CALLS:
        return 486
    return code


class EndpointCalls:
    """The daemon: one SIP agent, and the state file kept in step with its calls."""

    def __init__(self, store: cisco_xapi.StateStore, address: str, port: int = sip.SIP_PORT, *,
                 media_rate: float = 1.0, t1: float = sip.T1, timer_b: float | None = None,
                 media_timeout: float = 10.0, ring_timeout: float = 60.0) -> None:
        self.store = store
        self._snapshot = store.read()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._mtime = 0
        self._last_update = 0.0
        self.by_id: dict[int, sip.Call] = {}  # the state file's call id -> the SIP call
        uri = str(cisco_xapi.config_value(self._snapshot, ("SIP", "URI")) or "")
        user = uri.removeprefix("sip:").split("@", 1)[0] if "@" in uri else "endpoint"
        self.agent = sip.SipAgent(address, port, user=user, answer=self._answer,
                                  on_change=lambda _call: self._changed.set(), media_rate=media_rate, t1=t1,
                                  timer_b=timer_b, media_timeout=media_timeout, ring_timeout=ring_timeout)

    # ------------------------------------------------------------ the agent's questions

    def _answer(self, call: sip.Call) -> int | None:
        # Called with the agent's lock held, so the file's lock must not be waited for here (the sync loop holds
        # it while it asks the agent to dial or hang up). The store replaces the file whole (rename), so reading
        # it without the lock still gives one consistent state: the latest, as a test or the shell just left it.
        try:
            state = json.loads(self.store.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = self._snapshot
        others = len([c for c in self.agent.active_calls() if c is not call])
        others = max(others, len(state.get("calls", [])))
        return answer_code(state, others)

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        self.agent.start()
        try:
            while not self._stop.is_set():
                changed = self._changed.wait(POLL_SECONDS)
                self._changed.clear()
                self.sync(force=changed)
        finally:
            self.agent.stop()
            with contextlib.suppress(Exception):
                self.sync(force=True)

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def sync(self, force: bool = False) -> None:
        """Dial what the shell asked for, hang up what it removed, and write the calls' state and figures:
        when the file changed, a call changed (`force`), or a second went by."""
        try:
            mtime = self.store.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        now = time.monotonic()
        if mtime == self._mtime and not force and now - self._last_update < UPDATE_SECONDS:
            return
        self._last_update = now
        with self.store.edit() as state:
            self._sync(state)
            self._snapshot = {k: v for k, v in state.items() if k != "call_log"}
        self._mtime = self.store.path.stat().st_mtime_ns

    def _sync(self, state: dict[str, Any]) -> None:
        calls = state.setdefault("calls", [])
        # Removed by Call Disconnect or a reboot, or the whole state written anew (whose call ids start at 1
        # again: an entry is this call only if it names the call's SIP Call-ID).
        present = {c["id"]: c.get("sip") for c in calls}
        for call_id, call in list(self.by_id.items()):
            if present.get(call_id, "") != call.call_id:
                call.hangup()
                del self.by_id[call_id]
                self.agent.forget(call)
        proxy = str(cisco_xapi.config_value(state, ("SIP", "Proxy", "1", "Address")) or "")
        for entry in calls:
            if entry.get("status") == "Dialling" and entry["id"] not in self.by_id and not entry.get("sip"):
                target = dial_target(str(entry["number"]), proxy)
                if target is None:
                    entry["status"] = "Failed"
                    entry["reason"] = "No proxy to dial a number through"
                    continue
                uri, via = target
                self.by_id[entry["id"]] = self.agent.dial(uri, kbps=int(entry.get("rate") or 0) or None, via=via)
                entry["sip"] = self.by_id[entry["id"]].call_id
        known = {c.call_id for c in self.by_id.values()}
        for call in self.agent.calls():  # an incoming call: a new entry of its own
            if call.direction == "incoming" and call.call_id not in known and call.state not in sip.FINAL_STATES:
                call_id = state["next_call_id"]
                state["next_call_id"] += 1
                calls.append({"id": call_id, "number": call.remote_uri.removeprefix("sip:"), "protocol": "Sip",
                              "rate": call.kbps, "direction": "Incoming", "started_at": call.created_at,
                              "sip": call.call_id, "display_name": call.remote_display})
                self.by_id[call_id] = call
            elif call.call_id not in known and call.state in sip.FINAL_STATES:
                self.agent.forget(call)  # refused before it was ever written: nothing to keep
        kept = []
        for entry in calls:
            call = self.by_id.get(entry["id"])
            if call is None:  # not dialable, or the daemon restarted and lost it
                self._log(state, entry, None)
                continue
            if call.state in sip.FINAL_STATES:
                # As the device does, an ended call shows "Disconnecting" for a moment before it goes.
                if entry.get("status") != "Disconnecting":
                    entry["status"] = "Disconnecting"
                    entry["media"] = call.stats() if call.connected_at is not None else {}
                    entry["disconnected_at"] = time.time()
                if time.time() - entry["disconnected_at"] < DISCONNECTING_SECONDS:
                    kept.append(entry)
                    continue
                self._log(state, entry, call)
                del self.by_id[entry["id"]]
                self.agent.forget(call)
                continue
            entry["status"] = STATUS.get((call.direction, call.state), "Connecting")
            entry["rate"] = call.kbps
            if call.connected_at is not None:
                entry["connected_at"] = call.connected_at
                entry["media"] = call.stats()
            kept.append(entry)
        state["calls"] = kept

    def _log(self, state: dict[str, Any], entry: dict[str, Any], call: sip.Call | None) -> None:
        log = state.setdefault("call_log", [])
        log.append({"id": entry["id"], "number": entry["number"], "direction": entry.get("direction", "Outgoing"),
                    "status_code": call.status_code if call else None,
                    "reason": call.reason if call else entry.get("reason", ""),
                    "started_at": entry.get("started_at"), "ended_at": time.time(),
                    "duration": round(call.duration, 1) if call else 0.0})
        del log[:-CALL_LOG]


@contextlib.contextmanager
def running(store: cisco_xapi.StateStore, address: str, port: int = 0, **options: Any) -> Iterator[EndpointCalls]:
    """The daemon in a thread of this process (port 0: any free port, `daemon.agent.port` says which), stopped
    when the block ends: for tests without network namespaces, and for benchmarks."""
    daemon = EndpointCalls(store, address, port, **options)
    thread = threading.Thread(target=daemon.run, name=f"endpoint-calls-{address}", daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state", required=True, type=Path, help="the device's JSON state file")
    parser.add_argument("--address", required=True, help="the endpoint's address: SIP and media listen there")
    parser.add_argument("--port", type=int, default=sip.SIP_PORT)
    parser.add_argument("--media-rate", type=float, default=1.0, help="share of the real packet rates to send")
    parser.add_argument("--t1", type=float, default=sip.T1, help="SIP timer T1 in seconds")
    parser.add_argument("--timer-b", type=float, default=None, help="give up an unanswered INVITE after this")
    parser.add_argument("--media-timeout", type=float, default=10.0,
                        help="end a call when its media stop arriving for this many seconds")
    parser.add_argument("--pidfile", type=Path, help="write the daemon's pid here")
    args = parser.parse_args(argv)
    daemon = EndpointCalls(cisco_xapi.StateStore(args.state), args.address, args.port, media_rate=args.media_rate,
                           t1=args.t1, timer_b=args.timer_b, media_timeout=args.media_timeout)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")
    try:
        daemon.run()
    finally:
        if args.pidfile:
            with contextlib.suppress(OSError):
                args.pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
