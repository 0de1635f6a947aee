"""A Cisco room system's xAPI over SSH, as the device speaks it: a test and benchmark tool, not part of the app.

It is the login shell (sshd ForceCommand) of a simulated endpoint test host (tests/support/hosts.py). Like the
device, it greets the user, then reads one command a line and answers:

    xPreferences OutputMode JSON|Terminal       -> OK
    xStatus [path]                              -> *s lines (or JSON), ** end, OK
    xConfiguration [path]                       -> *c lines (or JSON), ** end, OK
    xConfiguration path: value                  -> ** end, OK (or *r ... (status=Error) with a Reason, ERROR)
    xCommand path Param: value ...              -> *r <Name>Result (status=OK) lines, ** end, OK
    echo on|off, bye, help

Configuration paths, their value spaces (text length, number range, choices) and their defaults follow the
device's; unknown paths and bad values are refused with ERROR and the device's kind of reason. The state
(configuration that differs from the defaults, software version, calls, boot time) is kept in one JSON file
per host, so several sessions see the same device and it survives a reboot. The world around the device is in
the state file too, for tests to change: `registrar` (how the SIP registrar answers: "accept", "reject" or
"silent"; a device that is not registered answers calls with 480) and `answer` (how it answers a call: "auto",
"busy", "decline" or "ignore").

Calls are real: the shell does not place them, the endpoint's call daemon (simulators/endpoint_calls.py, one
long-running process next to sshd) does. `xCommand Dial` adds a call in status "Dialling" to the state file,
the daemon dials it over SIP and carries its RTP media, and writes back its status and what it measured on the
packets; `xStatus Call` and `xStatus MediaChannels Call [n] Channel [n] Netstat` (Packets, Bytes, Loss,
LastIntervalLost, LastIntervalReceived, Jitter, MaxJitter, ChannelRate, and the simulator's RoundTripTime)
report exactly those figures, nothing invented. `xCommand Call Disconnect` removes the call; the daemon hangs
it up. Without the daemon a dialled call stays "Dialling". `xCommand SystemUnit Boot` and
`xCommand SystemUnit SoftwareUpgrade URL: ... [Checksum: ...]` (which fetches nothing: the new version is
read from the file name in the URL) reboot it: every session drops, sshd stays down for a few seconds,
then answers again with the new version.

Only the standard library is used, so any Python 3.11 can run it (`python3 simulators/cisco_xapi.py --state
FILE`); driven through a pipe, it is the same shell without SSH.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import termios
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

DEFAULT_VERSION = "ce9.15.3.17"
DEFAULT_PRODUCT = "Cisco Webex Room Kit"
NO_MATCH = "No match on address expression."
MAX_CALLS = 1  # a room system without the MultiSite option holds one video call
REGISTRARS = ("accept", "reject", "silent")
ANSWERS = ("auto", "busy", "decline", "ignore")


class Refused(Exception):
    """The device says ERROR: `reason` is what it prints; `xpath` the address it refused, if any."""

    def __init__(self, reason: str, xpath: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.xpath = xpath


# ---------------------------------------------------------------- value spaces

@dataclass(frozen=True)
class Text:
    low: int
    high: int
    quoted = True

    def parse(self, raw: str) -> str:
        if len(raw) > self.high:
            raise Refused(f"Text too long: {len(raw)} characters (at most {self.high})")
        if len(raw) < self.low:
            raise Refused(f"Text too short: {len(raw)} characters (at least {self.low})")
        return raw

    def describe(self) -> str:
        return f"<S: {self.low}, {self.high}>"


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    quoted = False

    def parse(self, raw: str) -> int:
        if not re.fullmatch(r"-?\d+", raw.strip()):
            raise Refused(f"Not a number: {raw!r} (expected {self.low}..{self.high})")
        value = int(raw)
        if not self.low <= value <= self.high:
            raise Refused(f"Value out of range: {value} (expected {self.low}..{self.high})")
        return value

    def describe(self) -> str:
        return f"<{self.low}..{self.high}>"


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    quoted = False

    def parse(self, raw: str) -> str:
        for value in self.values:
            if value.lower() == raw.strip().lower():
                return value
        if len(self.values) <= 12:
            raise Refused(f"Invalid value: {raw!r} (expected one of {', '.join(self.values)})")
        raise Refused(f"Invalid value: {raw!r} (not in the value space; ask with ?)")

    def describe(self) -> str:
        return "<" + ", ".join(self.values) + ">" if len(self.values) <= 12 else f"<{len(self.values)} values>"


Space = Text | Integer | Choice
OFF_ON = Choice(("Off", "On"))


def _time_zones() -> tuple[str, ...]:
    zones = zoneinfo.available_timezones() or {"Etc/UTC", "Asia/Ho_Chi_Minh", "Asia/Bangkok"}
    return tuple(sorted(zones))


def _expand(pattern: str) -> list[tuple[str, ...]]:
    """'SIP Proxy [1-4] Address' -> ('SIP', 'Proxy', '1', 'Address'), ... ('SIP', 'Proxy', '4', 'Address')."""
    paths: list[tuple[str, ...]] = [()]
    for token in pattern.split():
        m = re.fullmatch(r"\[(\d+)(?:-(\d+))?\]", token)
        if m:
            low, high = int(m.group(1)), int(m.group(2) or m.group(1))
            paths = [p + (str(i),) for p in paths for i in range(low, high + 1)]
        else:
            paths = [p + (token,) for p in paths]
    return paths


# The configuration the simulator knows: a device's paths, value spaces and factory defaults.
_CONFIGURATION: list[tuple[str, Space, str | int]] = [
    ("Audio DefaultVolume", Integer(0, 100), 50),
    ("Conference DefaultCall Protocol", Choice(("Auto", "H323", "Sip", "Spark")), "Auto"),
    ("Conference DefaultCall Rate", Integer(64, 6000), 6000),
    ("Conference MaxReceiveCallRate", Integer(64, 6000), 6000),
    ("Conference MaxTransmitCallRate", Integer(64, 6000), 6000),
    ("H323 Mode", OFF_ON, "Off"),
    ("H323 Gatekeeper Address", Text(0, 255), ""),
    ("H323 H323Alias ID", Text(0, 49), ""),
    ("Network [1] DNS Server [1-3] Address", Text(0, 64), ""),
    ("Network [1] IPv4 Assignment", Choice(("Static", "DHCP")), "DHCP"),
    ("Network [1] QoS Mode", Choice(("Off", "Diffserv")), "Diffserv"),
    ("Network [1] QoS Diffserv Audio", Integer(0, 63), 0),
    ("Network [1] QoS Diffserv Video", Integer(0, 63), 0),
    ("Network [1] QoS Diffserv Data", Integer(0, 63), 0),
    ("Network [1] QoS Diffserv Signalling", Integer(0, 63), 0),
    ("Network [1] QoS Diffserv ICMPv6", Integer(0, 63), 0),
    ("Network [1] QoS Diffserv NTP", Integer(0, 63), 0),
    ("NetworkServices HTTP Mode", Choice(("Off", "HTTP+HTTPS", "HTTPS")), "HTTPS"),
    ("NetworkServices NTP Mode", Choice(("Auto", "Manual", "Off")), "Auto"),
    ("NetworkServices NTP Server [1-3] Address", Text(0, 255), ""),
    ("NetworkServices SSH Mode", OFF_ON, "On"),
    ("SIP Authentication UserName", Text(0, 128), ""),
    ("SIP DefaultTransport", Choice(("TCP", "UDP", "Tls", "Auto")), "Auto"),
    ("SIP DisplayName", Text(0, 255), ""),
    ("SIP Mode", OFF_ON, "On"),
    ("SIP Proxy [1-4] Address", Text(0, 255), ""),
    ("SIP URI", Text(0, 255), ""),
    ("Standby Control", OFF_ON, "On"),
    ("Standby Delay", Integer(1, 480), 10),
    ("SystemUnit Name", Text(0, 50), ""),
    ("Time DateFormat", Choice(("DD_MM_YY", "MM_DD_YY", "YY_MM_DD")), "DD_MM_YY"),
    ("Time TimeFormat", Choice(("24H", "12H")), "24H"),
    ("Time Zone", Choice(_time_zones()), "Etc/UTC"),
]
CONFIGURATION: dict[tuple[str, ...], tuple[Space, str | int]] = {
    path: (space, default) for pattern, space, default in _CONFIGURATION for path in _expand(pattern)}


def key(path: tuple[str, ...]) -> str:
    return " ".join(path)


def xpath(root: str, path: Iterable[str]) -> str:
    return "/".join([root, *path])


# ---------------------------------------------------------------- the state file

def new_state(*, name: str = "", serial: str = "FOC0000A0AA", version: str = DEFAULT_VERSION,
              product: str = DEFAULT_PRODUCT, config: dict[str, str | int] | None = None,
              registrar: str = "accept", answer: str = "auto") -> dict[str, Any]:
    """A device fresh from the factory (with `config` set on top of the defaults), on a network whose SIP
    registrar answers as `registrar` says, answering calls as `answer` says."""
    if registrar not in REGISTRARS:
        raise ValueError(f"registrar must be one of {', '.join(REGISTRARS)}, not {registrar!r}")
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, not {answer!r}")
    return {
        "product": product, "serial": serial,
        "software": {"version": version, "upgrade": {"status": "None", "url": ""}},
        "config": {"SystemUnit Name": name, **(config or {})} if name else dict(config or {}),
        "calls": [], "next_call_id": 1, "booted_at": time.time(), "boots": 0,
        "registrar": registrar, "answer": answer,
    }


class StateStore:
    """The device's state in a JSON file; each change is made under a lock and written whole (rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return new_state()

    def read(self) -> dict[str, Any]:
        with self._locked(exclusive=False):
            return self._load()

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Yield the state to change; it is written back only when the block succeeds."""
        with self._locked(exclusive=True):
            state = self._load()
            yield state
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    def write(self, state: dict[str, Any]) -> None:
        with self.edit() as current:
            current.clear()
            current.update(state)


def config_value(state: dict[str, Any], path: tuple[str, ...]) -> str | int:
    return state["config"].get(key(path), CONFIGURATION[path][1])


def sip_registration(state: dict[str, Any]) -> tuple[str, str, str]:
    """(xStatus SIP Registration 1 Status, its Reason, SIP Proxy 1 Status), with the device's value spaces:
    Deregister/Failed/Inactive/Registered/Registering and Active/AuthenticationFailed/Off/Timeout/..."""
    cfg = lambda *path: config_value(state, path)  # noqa: E731
    if cfg("SIP", "Mode") == "Off":
        return "Inactive", "SIP is off", "Off"
    if not cfg("SIP", "URI"):
        return "Inactive", "No SIP URI configured", "Off"
    if not cfg("SIP", "Proxy", "1", "Address"):
        return "Inactive", "No proxy configured", "Off"
    registrar = state.get("registrar", "accept")
    if registrar == "reject":
        return "Failed", "403 Forbidden", "AuthenticationFailed"
    if registrar == "silent":
        return "Failed", "Timeout: no answer from the proxy", "Timeout"
    return "Registered", "", "Active"


def _ms(value: Any) -> int:
    return round(value) if isinstance(value, int | float) else 0


def media_entries(call: dict[str, Any]) -> list[tuple[tuple[str, ...], str | int, bool]]:
    """The call's media channels (audio and main video, each way) with their Netstat counters, as the call daemon
    measured them (simulators/media.py's figures in `call["media"]`): an incoming channel counts the packets
    that arrived, lost and jitter by RFC 3550; an outgoing one the packets sent, and the loss and jitter the far
    end reported in RTCP. "Last interval" is the last 5 seconds. None before the call is connected."""
    measured = call.get("media") or {}
    out: list[tuple[tuple[str, ...], str | int, bool]] = []
    number = 0
    for kind in ("audio", "video"):
        stats = measured.get(kind)
        if not stats:
            continue
        interval = stats.get("interval") or {}
        for direction in ("Incoming", "Outgoing"):
            number += 1
            c = ("MediaChannels", "Call", str(call["id"]), "Channel", str(100 * call["id"] + number))
            if direction == "Incoming":
                netstat = {"Bytes": stats["received_bytes"], "ChannelRate": stats.get("rate_bps") or 0,
                           "Jitter": _ms(stats.get("jitter_ms")), "LastIntervalLost": max(0, interval.get("lost", 0)),
                           "LastIntervalReceived": interval.get("received", 0), "Loss": max(0, stats["lost"]),
                           "MaxJitter": _ms(interval.get("max_jitter_ms")), "Packets": stats["received_packets"]}
            else:
                remote = stats.get("remote") or {}
                remote_interval = interval.get("remote") or {}
                seconds = interval.get("seconds") or 0
                netstat = {"Bytes": stats["sent_bytes"],
                           "ChannelRate": int(interval.get("sent_bytes", 0) * 8 / seconds) if seconds else 0,
                           "Jitter": _ms(remote.get("jitter_ms")),
                           "LastIntervalLost": max(0, remote_interval.get("lost", 0)),
                           "LastIntervalReceived": max(0, remote_interval.get("received", 0)),
                           "Loss": max(0, remote.get("lost", 0)), "MaxJitter": _ms(remote.get("jitter_ms")),
                           "Packets": stats["sent_packets"]}
            netstat["RoundTripTime"] = _ms(stats.get("rtt_ms"))  # the simulator's own: ms, from RTCP SR/RR
            if kind == "audio":
                out += [(c + ("Audio", "Channels"), 1, False), (c + ("Audio", "Protocol"), "G711Mu", False)]
            out += [(c + ("Direction",), direction, False), (c + ("Encryption",), "Off", False)]
            out += [(c + ("Netstat", name), value, False) for name, value in netstat.items()]
            out.append((c + ("Type",), kind.capitalize(), False))
            if kind == "video":
                out += [(c + ("Video", "ChannelRole"), "Main", False), (c + ("Video", "Protocol"), "H264", False)]
    return out


def status_entries(state: dict[str, Any], now: float | None = None) -> list[tuple[tuple[str, ...], str | int, bool]]:
    """Every status leaf: (path, value, quoted), in the device's order."""
    now = time.time() if now is None else now
    cfg = lambda *path: config_value(state, path)  # noqa: E731
    out: list[tuple[tuple[str, ...], str | int, bool]] = []
    for call in state["calls"]:
        c = ("Call", str(call["id"]))
        connected_at = call.get("connected_at")
        number = str(call["number"]).removeprefix("sip:")
        out += [(c + ("CallbackNumber",), f"sip:{number}", True),
                (c + ("Direction",), call.get("direction", "Outgoing"), False),
                (c + ("DisplayName",), call.get("display_name", ""), True),
                (c + ("Duration",), int(now - connected_at) if connected_at else 0, False),
                (c + ("Protocol",), call["protocol"], False),
                (c + ("ReceiveCallRate",), call["rate"], False),
                (c + ("RemoteNumber",), number, True),
                (c + ("Status",), call.get("status", "Dialling"), False),
                (c + ("TransmitCallRate",), call["rate"], False)]
    h323 = "Inactive" if cfg("H323", "Mode") == "Off" else ("Registered" if cfg("H323", "Gatekeeper", "Address")
                                                          else "Required")
    out.append((("H323", "Gatekeeper", "Status"), h323, False))
    for call in state["calls"]:
        out += media_entries(call)
    ntp_servers = [cfg("NetworkServices", "NTP", "Server", str(i), "Address") for i in (1, 2, 3)]
    ntp_servers = [s for s in ntp_servers if s]
    ntp = "Off" if cfg("NetworkServices", "NTP", "Mode") == "Off" else ("Synced" if ntp_servers else "Unknown")
    out += [(("NetworkServices", "NTP", "CurrentAddress"), ntp_servers[0] if ntp == "Synced" else "", True),
            (("NetworkServices", "NTP", "Status"), ntp, False)]
    registration, reason, proxy_status = sip_registration(state)
    registered = registration == "Registered"
    out += [(("SIP", "Proxy", "1", "Address"), cfg("SIP", "Proxy", "1", "Address"), True),
            (("SIP", "Proxy", "1", "Status"), proxy_status, False),
            (("SIP", "Registration", "1", "Reason"), reason, True),
            (("SIP", "Registration", "1", "Status"), registration, False),
            (("SIP", "Registration", "1", "URI"), cfg("SIP", "URI") if registered else "", True)]
    software = state["software"]
    version = software["version"]
    out += [(("Standby", "State"), "Off", False),
            (("SystemUnit", "Hardware", "Module", "SerialNumber"), state["serial"], True),
            (("SystemUnit", "ProductId"), state["product"], True),
            (("SystemUnit", "ProductPlatform"), state["product"].removeprefix("Cisco Webex "), True),
            (("SystemUnit", "Software", "DisplayName"), f"RoomOS {version}", True),
            (("SystemUnit", "Software", "Name"), "s53200", True),
            (("SystemUnit", "Software", "UpgradeStatus", "Status"), software["upgrade"]["status"], False),
            (("SystemUnit", "Software", "UpgradeStatus", "URL"), software["upgrade"]["url"], True),
            (("SystemUnit", "Software", "Version"), version, True),
            (("SystemUnit", "State", "NumberOfActiveCalls"), len(state["calls"]), False),
            (("SystemUnit", "Uptime"), max(0, int(now - state["booted_at"])), False),
            (("Time", "SystemTime"), dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), True)]
    return out


# ---------------------------------------------------------------- parsing what the user typed

def path_tokens(text: str) -> list[str]:
    """'Network[1] QoS  Diffserv Video' -> ['Network', '1', 'QoS', 'Diffserv', 'Video']."""
    return re.sub(r"\[(\d+)\]", r" \1 ", text).split()


def matches(query: list[str], path: tuple[str, ...]) -> bool:
    """Does the (case-insensitive) query address this path or a node above it?"""
    return len(query) <= len(path) and all(q.lower() == p.lower() for q, p in zip(query, path, strict=False))


def parse_value(raw: str) -> str:
    """The value after 'path:': a quoted text (with \\" and \\\\ escapes) or the rest of the line."""
    raw = raw.strip()
    if not raw.startswith('"'):
        return raw
    m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', raw)
    if not m:
        raise Refused("Invalid value: a quoted text must end with a quote")
    return re.sub(r"\\(.)", r"\1", m.group(1))


def parse_params(text: str) -> list[tuple[str, str]]:
    """'Number: "a b" CallRate: 768' -> [('Number', 'a b'), ('CallRate', '768')]."""
    params: list[tuple[str, str]] = []
    pos = 0
    pattern = re.compile(r'\s*([A-Za-z][\w.]*):\s*("(?:[^"\\]|\\.)*"|[^\s"]\S*|)')
    text = text.rstrip()
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m or m.end() == pos:
            raise Refused(f"Invalid parameter syntax near {text[pos:pos + 20]!r}")
        params.append((m.group(1), parse_value(m.group(2))))
        pos = m.end()
    return params


def version_from_url(url: str) -> str:
    """The software version named by an upgrade file: '.../s53200ce9_15_3_17.k4.pkg' -> 'ce9.15.3.17'."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    found = re.findall(r"(?i)(ce|tc|roomos)[-_.]?(\d+(?:[._]\d+)+)", name)
    if not found:
        raise Refused(f"No software version in the file name {name!r} (expected e.g. s53200ce9_15_3_17.k4.pkg)")
    prefix, numbers = found[-1]
    return prefix.lower() + re.sub(r"_", ".", numbers)


# ---------------------------------------------------------------- the shell

@dataclass
class Param:
    space: Space
    required: bool = False
    default: str | int | None = None


@dataclass
class Command:
    path: tuple[str, ...]
    result: str
    params: dict[str, Param]
    run: Callable[[XapiShell, dict[str, Any]], dict[str, Any]]
    reboots: bool = False


@dataclass
class Reply:
    text: str
    ended: bool = False  # the session is over (bye, reboot)


@dataclass
class XapiShell:
    """One SSH session with the device: its output mode, and the shared state in the store."""

    store: StateStore
    reboot: Callable[[], None] | None = None  # power-cycles the host (drops sessions, restarts sshd)
    boot_seconds: float = 3.0
    tty: int | None = None  # the terminal's file descriptor, for `echo off`
    mode: str = "terminal"
    commands: list[Command] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.commands = [
            Command(("Call", "Disconnect"), "CallDisconnectResult",
                    {"CallId": Param(Integer(0, 65534))}, XapiShell._disconnect),
            Command(("Dial",), "DialResult",
                    {"Number": Param(Text(1, 255), required=True),
                     "Protocol": Param(Choice(("Auto", "H323", "Sip", "Spark")), default="Auto"),
                     "CallRate": Param(Integer(64, 6000))}, XapiShell._dial),
            Command(("SystemUnit", "Boot"), "SystemUnitBootResult",
                    {"Action": Param(Choice(("Restart",)), default="Restart"),
                     "Force": Param(Choice(("False", "True")), default="False")}, XapiShell._boot, reboots=True),
            Command(("SystemUnit", "SoftwareUpgrade"), "SystemUnitSoftwareUpgradeResult",
                    {"URL": Param(Text(1, 255), required=True), "Checksum": Param(Text(0, 128)),
                     "ChecksumType": Param(Choice(("SHA256", "SHA512")), default="SHA512"),
                     "Forced": Param(Choice(("False", "True")), default="False")},
                    XapiShell._upgrade, reboots=True),
        ]

    # ------------------------------------------------------------ framing

    def welcome(self) -> str:
        state = self.store.read()
        name = config_value(state, ("SystemUnit", "Name")) or ""
        return (f"Welcome to {name}\nCisco Codec Release {state['software']['version']}\n"
                f"SW Release Date: 2024-05-15\n*r Login successful\n\nOK\n\n")

    def _end(self, body: list[str], ok: bool = True) -> Reply:
        return Reply("\n".join([*body, "** end", "", "OK" if ok else "ERROR", ""]))

    def _json(self, document: dict[str, Any]) -> list[str]:
        return json.dumps(document, ensure_ascii=False, indent=2).splitlines()

    def _tree(self, entries: Iterable[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
        """Nested JSON as the device writes it: leaves {"Value": "..."}, numbered nodes as lists with "id"."""
        tree: dict[str, Any] = {}
        for path, value in entries:
            node = tree
            i = 0
            while i < len(path):
                name = path[i]
                last = i == len(path) - 1
                if not last and path[i + 1].isdigit():
                    items = node.setdefault(name, [])
                    item = next((it for it in items if it["id"] == path[i + 1]), None)
                    if item is None:
                        item = {"id": path[i + 1]}
                        items.append(item)
                    node, i = item, i + 2
                    if i == len(path):  # a numbered leaf ("Server 1"): not in this schema
                        break
                    continue
                if last:
                    node[name] = {"Value": str(value)}
                else:
                    node = node.setdefault(name, {})
                i += 1
        return tree

    def _error(self, name: str, refused: Refused) -> Reply:
        if self.mode == "json":
            body: dict[str, Any] = {"status": "Error", "Reason": {"Value": refused.reason}}
            if refused.xpath:
                body["XPath"] = {"Value": refused.xpath}
            return self._end(self._json({"CommandResponse": {name: body}}), ok=False)
        lines = [f"*r {name} (status=Error): ", f"*r {name} Reason: {_quote(refused.reason)}"]
        if refused.xpath:
            lines.append(f"*r {name} XPath: {_quote(refused.xpath)}")
        return self._end(lines, ok=False)

    # ------------------------------------------------------------ the loop

    def handle(self, line: str) -> Reply:
        line = line.strip()
        if not line:
            return Reply("")
        word, _, rest = line.partition(" ")
        command = _command_word(word)
        if command is None:
            return Reply("Command not recognized.\nERROR\n")
        return getattr(self, "_" + command)(rest.strip())

    def _bye(self, _rest: str) -> Reply:
        return Reply("Goodbye.\n", ended=True)

    def _help(self, _rest: str) -> Reply:
        return Reply("- User Commands -\n\nhelp  xcommand  xconfiguration  xpreferences  xstatus  bye  echo\n\nOK\n")

    def _echo(self, rest: str) -> Reply:
        if rest.lower() not in ("on", "off"):
            return Reply("echo usage:\n  echo <on/off>\nERROR\n")
        if self.tty is not None:
            attrs = termios.tcgetattr(self.tty)
            attrs[3] = attrs[3] | termios.ECHO if rest.lower() == "on" else attrs[3] & ~termios.ECHO
            termios.tcsetattr(self.tty, termios.TCSANOW, attrs)
        return Reply("\nOK\n")

    def _xpreferences(self, rest: str) -> Reply:
        words = rest.split()
        if len(words) == 2 and words[0].lower() == "outputmode" and words[1].lower() in ("json", "terminal"):
            self.mode = words[1].lower()
            return Reply("\nOK\n")
        if len(words) == 2 and words[0].lower() == "outputmode" and words[1].lower() == "xml":
            return Reply("XML output is not simulated; use JSON or Terminal.\nERROR\n")
        return Reply("xpreferences usage:\n  xpreferences outputmode <terminal/json>\nERROR\n")

    def _xstatus(self, rest: str) -> Reply:
        query = path_tokens(rest)
        state = self.store.read()
        entries = [(p, v, q) for p, v, q in status_entries(state) if matches(query, p)]
        # The calls and their media are nodes of their own even when there is none: asking is not an error.
        if not entries and not (query and query[0].lower() in ("call", "mediachannels")):
            return self._error("Status", Refused(NO_MATCH, xpath("Status", query)))
        if self.mode == "json":
            return self._end(self._json({"Status": self._tree((p, v) for p, v, _q in entries)}))
        return self._end([f"*s {key(p)}: {_quote(v) if q else v}" for p, v, q in entries])

    def _xconfiguration(self, rest: str) -> Reply:
        path_text, colon, raw_value = rest.partition(":")
        query = path_tokens(path_text)
        if not colon and query and query[-1] == "?":
            return self._value_spaces(query[:-1])
        found = [p for p in CONFIGURATION if matches(query, p)]
        if not colon:
            if not found:
                return self._error("Configuration", Refused(NO_MATCH, xpath("Configuration", query)))
            state = self.store.read()
            values = [(p, config_value(state, p)) for p in found]
            if self.mode == "json":
                return self._end(self._json({"Configuration": self._tree(values)}))
            return self._end([f"*c xConfiguration {key(p)}: {_quote(v) if CONFIGURATION[p][0].quoted else v}"
                              for p, v in values])
        leaf = [p for p in found if len(p) == len(query)]
        try:
            if len(leaf) != 1:
                raise Refused(NO_MATCH, xpath("Configuration", query))
            path = leaf[0]
            space = CONFIGURATION[path][0]
            try:
                value = space.parse(parse_value(raw_value))
            except Refused as exc:
                raise Refused(exc.reason, xpath("Configuration", path)) from None
        except Refused as exc:
            return self._error("Configuration", exc)
        with self.store.edit() as state:
            if value == CONFIGURATION[path][1]:
                state["config"].pop(key(path), None)
            else:
                state["config"][key(path)] = value
        return self._end([])

    def _value_spaces(self, query: list[str]) -> Reply:
        found = [p for p in CONFIGURATION if matches(query, p)]
        if not found:
            return self._error("Configuration", Refused(NO_MATCH, xpath("Configuration", query)))
        return self._end([f"*? xConfiguration {key(p)}: {CONFIGURATION[p][0].describe()}" for p in found])

    def _xcommand(self, rest: str) -> Reply:
        m = re.search(r"[A-Za-z][\w.]*:", rest)
        query = path_tokens(rest[:m.start()] if m else rest)
        command = next((c for c in self.commands if len(c.path) == len(query) and matches(query, c.path)), None)
        if command is None:
            return self._error("Result", Refused("Unknown command", xpath("Command", query)))
        try:
            args = self._arguments(command, parse_params(rest[m.start():] if m else ""))
            fields = command.run(self, args)
        except Refused as exc:
            return self._error(command.result, exc)
        if self.mode == "json":
            body = {"status": "OK", **{k: {"Value": str(v)} for k, v in fields.items()}}
            reply = self._end(self._json({"CommandResponse": {command.result: body}}))
        else:
            reply = self._end([f"*r {command.result} (status=OK): ",
                               *(f"*r {command.result} {k}: {v}" for k, v in fields.items())])
        if command.reboots:
            reply.ended = True
            if self.reboot is not None:
                self.reboot()
        return reply

    def _arguments(self, command: Command, given: list[tuple[str, str]]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for name, raw in given:
            canonical = next((p for p in command.params if p.lower() == name.lower()), None)
            if canonical is None:
                raise Refused(f"Unknown parameter: {name}")
            args[canonical] = command.params[canonical].space.parse(raw)
        for name, param in command.params.items():
            if name not in args:
                if param.required:
                    raise Refused(f"Missing parameter: {name}")
                args[name] = param.default
        return args

    # ------------------------------------------------------------ commands

    def _dial(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.store.edit() as state:
            if len(state["calls"]) >= MAX_CALLS:
                raise Refused("Maximum number of calls reached")
            call_id = state["next_call_id"]
            state["next_call_id"] += 1
            rate = args["CallRate"] or config_value(state, ("Conference", "DefaultCall", "Rate"))
            protocol = "Sip" if args["Protocol"] == "Auto" else args["Protocol"]
            # The call daemon (simulators/endpoint_calls.py) dials it and writes what follows.
            state["calls"].append({"id": call_id, "number": args["Number"], "protocol": protocol, "rate": rate,
                                   "direction": "Outgoing", "status": "Dialling", "started_at": time.time()})
        return {"CallId": call_id, "ConferenceId": call_id}

    def _disconnect(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.store.edit() as state:
            if not state["calls"]:
                raise Refused("No active call")
            if args["CallId"] is None:
                state["calls"] = []
            else:
                kept = [c for c in state["calls"] if c["id"] != args["CallId"]]
                if len(kept) == len(state["calls"]):
                    raise Refused(f"No active call with CallId {args['CallId']}")
                state["calls"] = kept
        return {}

    def _restart(self, state: dict[str, Any]) -> None:
        state["calls"] = []
        state["boots"] += 1
        state["booted_at"] = time.time() + self.boot_seconds

    def _boot(self, _args: dict[str, Any]) -> dict[str, Any]:
        with self.store.edit() as state:
            self._restart(state)
        return {}

    def _upgrade(self, args: dict[str, Any]) -> dict[str, Any]:
        url = args["URL"]
        if not re.match(r"(?i)^(https?|ftp)://[^/\s]+/\S+$", url):
            raise Refused(f"Invalid URL: {url!r}")
        checksum = args["Checksum"]
        if checksum:
            length = 64 if args["ChecksumType"] == "SHA256" else 128
            if not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", checksum):
                raise Refused(f"Invalid checksum: expected {length} hexadecimal digits ({args['ChecksumType']})")
        version = version_from_url(url)
        with self.store.edit() as state:
            state["software"] = {"version": version, "upgrade": {"status": "Succeeded", "url": url}}
            self._restart(state)
        return {}


_WORDS = ("bye", "echo", "help", "xcommand", "xconfiguration", "xpreferences", "xstatus")


def _command_word(word: str) -> str | None:
    """Like the device's shell: any unambiguous beginning of a command name (xstat, xconf, xcom) will do."""
    word = word.lower()
    if word == "?":
        return "help"
    found = [w for w in _WORDS if w.startswith(word)] if len(word) >= 2 else []
    return found[0] if len(found) == 1 else None


def _quote(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def serve(shell: XapiShell, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The session: the greeting, then a reply to every line until `bye`, a reboot or the end of input."""
    stdout.write(shell.welcome().encode())
    stdout.flush()
    for raw in stdin:
        reply = shell.handle(raw.decode("utf-8", errors="replace"))
        stdout.write(reply.text.encode())
        stdout.flush()
        if reply.ended:
            return


# ---------------------------------------------------------------- rebooting the host

def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def power_cycle(pidfile: Path, sshd_command: list[str], boot_seconds: float) -> None:
    """Reboot the simulated host from a detached process: after the reply has gone out, end sshd and every
    session it holds, keep the address silent for `boot_seconds`, then start sshd again."""
    try:
        listener: int | None = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        listener = None
    sessions = _descendants(listener) if listener else []
    if listener:
        # No new connection from now on; the sessions (this one too) end once the reply has gone out.
        with contextlib.suppress(ProcessLookupError):
            os.kill(listener, signal.SIGTERM)
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # the session's channel must not stay open through this process
    try:
        time.sleep(0.3)  # the device finishes its answer before it goes down
        for victim in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGTERM)
        time.sleep(boot_seconds)
        subprocess.run(sshd_command, check=False, timeout=30)  # noqa: S603 - the host's own sshd command line
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state", required=True, type=Path, help="the device's JSON state file")
    parser.add_argument("--sshd-pidfile", type=Path, help="sshd's pid file: a reboot ends that sshd")
    parser.add_argument("--sshd-command", default="", help="the command line that starts sshd again after a reboot")
    parser.add_argument("--boot-seconds", type=float, default=3.0, help="how long a reboot keeps sshd down")
    args = parser.parse_args(argv)
    reboot = None
    if args.sshd_pidfile and args.sshd_command:
        command = shlex.split(args.sshd_command)
        reboot = lambda: power_cycle(args.sshd_pidfile, command, args.boot_seconds)  # noqa: E731
    tty = sys.stdin.fileno() if sys.stdin.isatty() else None
    shell = XapiShell(StateStore(args.state), reboot=reboot, boot_seconds=args.boot_seconds, tty=tty)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(shell, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
