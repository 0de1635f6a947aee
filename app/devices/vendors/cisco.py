"""Cisco room systems (TC, CE, RoomOS): the xAPI over SSH, spoken on the device's interactive shell.

After the greeting, the session turns the echo off and asks for JSON output (`xPreferences OutputMode JSON`);
then each request is one line (`xStatus ...`, `xConfiguration ...`, `xCommand ...`) and its answer is a JSON
document, `** end`, and a result line, OK or ERROR (with the device's Reason in the document). Everything sent
is checked first: a path or a value can never carry a second command (no line breaks, no control characters).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from flask_babel import gettext as _

from app.devices.profile import (
    Change,
    DeviceError,
    DeviceProfile,
    DeviceRefused,
    Health,
    HostKeyPolicy,
    Login,
    NotSupported,
    Target,
    Timing,
    register,
)
from app.devices.ssh import ShellConnection

# "SIP DisplayName", "Network 1 QoS Diffserv Video", "NetworkServices NTP Server 2 Address"
NATIVE_PATH = re.compile(r"[A-Za-z][A-Za-z0-9]*(?: (?:[A-Za-z][A-Za-z0-9]*|\d+))*")
PARAMETER = re.compile(r"[A-Za-z][A-Za-z0-9]*")
BARE_VALUE = re.compile(r"[\w.@:/+\-]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The common settings, as xConfiguration paths.
SIMPLE_SETTINGS = {
    "system_name": "SystemUnit Name",
    "display_name": "SIP DisplayName",
    "sip_uri": "SIP URI",
    "sip_proxy": "SIP Proxy 1 Address",
    "timezone": "Time Zone",
    "call_rate_kbps": "Conference DefaultCall Rate",
}
NTP_SERVERS = 3
# xStatus Call [n] Status values in which the room is in a call (media flows or is held).
IN_CALL = {"Connected", "OnHold", "EarlyMedia", "Preserved", "RemotePreserved"}


class Connection(Protocol):
    def open(self) -> None: ...
    def send(self, text: str) -> None: ...
    def read_line(self, deadline: float, waiting_for: str) -> str: ...
    def close(self) -> None: ...
    @property
    def is_open(self) -> bool: ...


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    raise NotSupported(_("A configuration value must be text or a number, not %(value)r.", value=value))


def native_settings(desired: dict[str, Any]) -> dict[str, str]:
    """Common settings (and native paths) -> {xConfiguration path: value}, in the order to set them."""
    native: dict[str, str] = {}
    for name, value in desired.items():
        if name == "ntp_servers":
            listed = value.split(",") if isinstance(value, str) else (value or [])  # "a, b" as Ansible may pass
            servers = [str(s).strip() for s in listed if str(s).strip()]
            if len(servers) > NTP_SERVERS:
                raise NotSupported(_("A Cisco endpoint takes at most %(n)s NTP servers.", n=NTP_SERVERS))
            native["NetworkServices NTP Mode"] = "Manual" if servers else "Auto"
            for i in range(1, NTP_SERVERS + 1):
                native[f"NetworkServices NTP Server {i} Address"] = servers[i - 1] if i <= len(servers) else ""
        elif name in ("video_dscp", "audio_dscp"):
            native["Network 1 QoS Mode"] = "Diffserv"
            native[f"Network 1 QoS Diffserv {'Video' if name == 'video_dscp' else 'Audio'}"] = _text(value)
        elif name in SIMPLE_SETTINGS:
            native[SIMPLE_SETTINGS[name]] = _text(value)
        elif " " in name and NATIVE_PATH.fullmatch(name):
            native[name] = _text(value)
        else:
            raise NotSupported(_("Unknown setting “%(name)s”: use a common setting or an xConfiguration path.",
                                 name=name))
    return native


def quote(value: str) -> str:
    if CONTROL.search(value):
        raise DeviceError(_("A value sent to a device must be a single line without control characters."))
    if BARE_VALUE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_path(path: str) -> str:
    path = " ".join(word for word in path.split(" ") if word)  # only spaces part words: a line break is refused
    if path and not NATIVE_PATH.fullmatch(path):
        raise DeviceError(_("“%(path)s” is not an xAPI path (words and numbers separated by spaces).", path=path))
    return path


def flatten(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, str]:
    """The device's JSON tree -> {"Network 1 QoS Diffserv Video": "34", ...}."""
    flat: dict[str, str] = {}
    for name, value in node.items():
        if name == "id":
            continue
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    flat.update(flatten(item, (*prefix, name, str(item.get("id", "")))))
        elif isinstance(value, dict):
            if "Value" in value:
                flat[" ".join((*prefix, name))] = str(value["Value"])
            else:
                flat.update(flatten(value, (*prefix, name)))
        elif name != "status":
            flat[" ".join((*prefix, name))] = str(value)
    return flat


def media_quality(flat: dict[str, str]) -> tuple[float | None, float | None]:
    """From `xStatus MediaChannels Call` (flattened): the loss ratio over the incoming channels and the worst
    incoming jitter in seconds. The device counts each channel's packets received and lost over its last
    interval (about 5 s) and since the call began; the last interval tells how the call is now, so it is
    preferred, the totals serve when a channel has not finished an interval yet."""
    channels: dict[tuple[str, str], dict[str, str]] = {}
    for path, value in flat.items():
        words = path.split(" ")
        if len(words) >= 6 and words[:2] == ["MediaChannels", "Call"] and words[3] == "Channel":
            channels.setdefault((words[2], words[4]), {})[" ".join(words[5:])] = value
    lost = received = 0
    jitters: list[float] = []
    for fields in channels.values():
        if fields.get("Direction") != "Incoming":
            continue
        interval = _number(fields.get("Netstat LastIntervalLost")), _number(fields.get("Netstat LastIntervalReceived"))
        totals = _number(fields.get("Netstat Loss")), _number(fields.get("Netstat Packets"))
        for channel_lost, channel_received in (interval, totals):
            if channel_lost is not None and channel_received is not None and channel_lost + channel_received > 0:
                lost += int(channel_lost)
                received += int(channel_received)
                break
        jitter = _number(fields.get("Netstat Jitter"))
        if jitter is not None:
            jitters.append(jitter / 1000)  # the device reports milliseconds (RFC 3550 interarrival jitter)
    ratio = lost / (lost + received) if lost + received else None
    return ratio, (max(jitters) if jitters else None)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


class XapiSession:
    """Requests and answers on an open shell connection."""

    def __init__(self, connection: Connection, target: Target, timing: Timing) -> None:
        self.connection = connection
        self.target = target
        self.timing = timing

    def start(self) -> None:
        deadline = time.monotonic() + self.timing.connect_timeout
        while self.connection.read_line(deadline, "login").strip() != "OK":
            pass  # the greeting ends with OK
        self._shell("echo off")
        self._shell("xPreferences OutputMode JSON")

    def _shell(self, line: str) -> None:
        self.connection.send(line + "\n")
        lines, result = self._reply(line)
        if result != "OK":
            raise DeviceRefused(line, " ".join(t.strip() for t in lines if t.strip() and t.strip() != line) or "ERROR")

    def _reply(self, request: str) -> tuple[list[str], str]:
        deadline = time.monotonic() + self.timing.command_timeout
        lines: list[str] = []
        ended = False
        while True:
            line = self.connection.read_line(deadline, request)
            word = line.strip()
            if word in ("OK", "ERROR"):
                return lines, word
            if word == "** end":
                ended = True
            elif not ended:
                lines.append(line)

    def request(self, line: str) -> dict[str, Any]:
        self.connection.send(line + "\n")
        lines, result = self._reply(line)
        start = next((i for i, text in enumerate(lines) if text.lstrip().startswith("{")), None)
        document: dict[str, Any] = {}
        if start is not None:
            try:
                document = json.loads("\n".join(lines[start:]))
            except json.JSONDecodeError as exc:
                raise DeviceError(_("%(host)s answered “%(request)s” with something that is not JSON: %(error)s",
                                    host=self.target.name, request=line, error=exc)) from exc
        if result == "ERROR":
            raise DeviceRefused(line, _reason(document, lines, line))
        return document


def _reason(document: dict[str, Any], lines: list[str], request: str) -> str:
    for body in (document.get("CommandResponse") or {}).values():
        if isinstance(body, dict) and "Reason" in body:
            reason = flatten({"Reason": body["Reason"]}).get("Reason", "")
            where = flatten({"XPath": body["XPath"]}).get("XPath", "") if "XPath" in body else ""
            return f"{reason} ({where})" if where else reason
    text = " ".join(t.strip() for t in lines if t.strip() and t.strip() != request)
    return text or "ERROR"


@register
class CiscoXapi(DeviceProfile):
    vendor = "Cisco"

    def __init__(self, target: Target, login: Login, host_keys: HostKeyPolicy, timing: Timing | None = None,
                 connect: Callable[[], Connection] | None = None) -> None:
        super().__init__(target, login, host_keys, timing)
        # The tests drive the simulator through a pipe with their own connection; devices use SSH.
        self._connect = connect or (lambda: ShellConnection(self.target, self.login, self.host_keys, self.timing))
        self._session: XapiSession | None = None

    def _xapi(self) -> XapiSession:
        if self._session is None or not self._session.connection.is_open:
            self.close()
            connection = self._connect()
            connection.open()
            session = XapiSession(connection, self.target, self.timing)
            try:
                session.start()
            except BaseException:
                connection.close()
                raise
            self._session = session
        return self._session

    def request(self, line: str) -> dict[str, Any]:
        return self._xapi().request(line)

    # ---------------------------------------------------------------- reading

    def status_values(self, path: str = "") -> dict[str, str]:
        path = _check_path(path)
        return flatten(self.request(f"xStatus {path}".strip()).get("Status") or {})

    def get_config(self, path: str = "") -> dict[str, str]:
        path = _check_path(path)
        return flatten(self.request(f"xConfiguration {path}".strip()).get("Configuration") or {})

    def status(self) -> dict[str, Any]:
        unit = self.status_values("SystemUnit")
        sip = self.status_values("SIP Registration")
        ntp = self.status_values("NetworkServices NTP")
        calls = self._calls()
        return {
            "vendor": self.vendor,
            "product": unit.get("SystemUnit ProductId", ""),
            "serial": unit.get("SystemUnit Hardware Module SerialNumber", ""),
            "software_version": unit.get("SystemUnit Software Version", ""),
            "uptime_seconds": int(unit.get("SystemUnit Uptime", "0") or 0),
            "sip_registration": sip.get("SIP Registration 1 Status", "Unknown"),
            "sip_uri": sip.get("SIP Registration 1 URI", ""),
            "sip_reason": sip.get("SIP Registration 1 Reason", ""),
            "ntp_status": ntp.get("NetworkServices NTP Status", ""),
            "active_calls": len(calls),
            "calls": [{"id": int(call_id), "remote": c.get("RemoteNumber", ""), "status": c.get("Status", ""),
                       "rate_kbps": int(c.get("TransmitCallRate", "0") or 0)} for call_id, c in calls.items()],
        }

    def _calls(self) -> dict[str, dict[str, str]]:
        """xStatus Call as {call id: {"Status": ..., "RemoteNumber": ...}}."""
        calls: dict[str, dict[str, str]] = {}
        for path, value in self.status_values("Call").items():
            _call, call_id, name = path.split(" ", 2)
            calls.setdefault(call_id, {})[name] = value
        return calls

    def health(self) -> Health:
        """Two requests when idle (registration, calls), three in a call (its media channels' Netstat)."""
        registrations = {path: value for path, value in self.status_values("SIP Registration").items()
                         if path.endswith(" Status")}
        words = [registrations[path] for path in sorted(registrations)]
        in_call = any(call.get("Status") in IN_CALL for call in self._calls().values())
        loss = jitter = None
        if in_call:
            try:
                loss, jitter = media_quality(self.status_values("MediaChannels Call"))
            except DeviceRefused:  # software without these statistics: registration and call still count
                loss = jitter = None
        return Health(registered=("Registered" in words) if words else None, in_call=in_call,
                      call_loss_ratio=loss, call_jitter=jitter, registration=words[0] if words else "")

    # ---------------------------------------------------------------- changing

    def set_config(self, path: str, value: Any) -> None:
        path = _check_path(path)
        if not path:
            raise DeviceError(_("Which configuration? The path is empty."))
        self.request(f"xConfiguration {path}: {quote(_text(value))}")

    def apply_config(self, desired: dict[str, Any], check: bool = False) -> Change:
        wanted = native_settings(desired)
        current = self.get_config()
        canonical = {path.lower(): path for path in current}
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for path, value in wanted.items():
            path = canonical.get(path.lower(), path)
            if path not in current and check:
                raise NotSupported(_("%(host)s has no configuration “%(path)s”.", host=self.target.name, path=path))
            if current.get(path) != value:
                before[path] = current.get(path)
                after[path] = value
        if not check:
            applied: list[str] = []
            for path, value in after.items():
                try:
                    self.set_config(path, value)
                except DeviceRefused as exc:
                    if applied:  # say what the device already took: the rest was not sent
                        raise DeviceRefused(exc.request, _("%(reason)s (already applied: %(applied)s)",
                                                           reason=exc.reason, applied=", ".join(applied))) from exc
                    raise
                applied.append(path)
        return Change(diff={"before": before, "after": after}, changed=bool(after))

    def command(self, name: str, **params: Any) -> dict[str, Any]:
        name = _check_path(name)
        parts = [f"xCommand {name}"]
        for param, value in params.items():
            if not PARAMETER.fullmatch(param):
                raise DeviceError(_("“%(param)s” is not a command parameter name.", param=param))
            if value is not None:
                parts.append(f"{param}: {quote(_text(value))}")
        response = self.request(" ".join(parts)).get("CommandResponse") or {}
        result = next(iter(response.values()), {})
        return flatten(result) if isinstance(result, dict) else {}

    def reboot(self) -> None:
        self.command("SystemUnit Boot", Action="Restart")
        self.close()  # the device drops the session as it restarts

    def upgrade_software(self, url: str, checksum: str = "") -> None:
        params: dict[str, Any] = {"URL": url}
        if checksum:
            params.update(Checksum=checksum, ChecksumType="SHA512" if len(checksum) == 128 else "SHA256")
        self.command("SystemUnit SoftwareUpgrade", **params)
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.connection.close()
            self._session = None
