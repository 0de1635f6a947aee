"""A Cisco Meeting Server's REST API and call bridge, as the server speaks them: a test and benchmark tool, not
part of the app.

Usage (the system's python3 runs it: only the standard library, and the `openssl` command for the certificate):

    python3 simulators/cisco_cms.py --listen ADDR:PORT --user U --password P --state-dir DIR
                                    [--sip-listen ADDR:5060] [--page-limit N] [--sip-timeout SECONDS]
                                    [--ring-timeout SECONDS] [--media-rate R]

or `python3 -m simulators.cisco_cms ...` with the checkout (or a copy of `simulators/`) on PYTHONPATH. At start it
makes a self-signed certificate for ADDR in DIR (cert.pem, key.pem: a client pins cert.pem), serves the API on
https://ADDR:PORT/api/v1/ and, with --sip-listen, takes SIP calls on that UDP address. It writes DIR/pid once it
answers, one line per request to DIR/requests.log (`METHOD PATH STATUS`, the path with its query, written before
the answer goes out), one line per ended call leg to DIR/calls.log (`CALLLEG-ID REMOTE-PARTY REASON`), and
DIR/state.json after every change and every second while calls run (the coSpaces, profiles and CDR receivers,
which it reads back at the next start; and what is live: calls, participants, call legs with their media figures,
and the legs that ended with their reasons). SIGTERM ends the calls (BYE) and it.

The API, as the Cisco Meeting Server API Reference describes it:
- HTTPS with HTTP Basic authentication: without it or with other credentials 401 (WWW-Authenticate: Basic).
- Request bodies are application/x-www-form-urlencoded (POST creates, PUT modifies: an omitted parameter stays,
  an empty one is unset; parameters it does not know are ignored); answers are text/xml. A POST answers 200
  with `Location: /api/v1/<objects>/<guid>` and no body; GET, PUT and DELETE answer 200.
- Collections answer `<coSpaces total="N"><coSpace id="...">...</coSpace>...</coSpaces>` with `offset`,
  `limit` and `filter` (a case-insensitive part of the name, uri or callId). `total` counts what matches the
  filter; a page holds at most the lower of `limit` and the server's own limit (--page-limit, 10 by default:
  the reference says the server has one and does not give it).
- Errors: 400 `<failureDetails><parameterError parameter="defaultLayout" error="invalidValue" /></failureDetails>`
  for a value outside its documented value space (and for a missing mandatory parameter: the reference names no
  other error value); 400 `<failureDetails><duplicateCoSpaceUri /></failureDetails>` (or duplicateCoSpaceId) for
  a uri/secondaryUri or callId another coSpace has; 400 `<failureDetails><callLegProfileDoesNotExist />
  </failureDetails>` (coSpaceDoesNotExist, tenantDoesNotExist...) for a parameter naming an object that does not
  exist; 404 with `<failureDetails><coSpaceDoesNotExist /></failureDetails>` (callDoesNotExist,
  callLegDoesNotExist, participantDoesNotExist, callLegProfileDoesNotExist, callProfileDoesNotExist,
  cdrReceiverDoesNotExist) for an id in the path that is not
  one ("a request supplying a <coSpace id> which does not correspond to a valid coSpace object yields 404");
  404 `<failureDetails><unrecognisedObject /></failureDetails>` for any other path; 405 with
  `<invalidOperation />` for a method the object does not take.

Resources (under /api/v1):
- /coSpaces[/<id>]: name, uri, secondaryUri, callId, cdrTag, passcode, defaultLayout, tenant, callLegProfile,
  callProfile, callBrandingProfile, secret, nonMemberAccess, ownerJid, streamUrl, ownerAdGuid, meetingScheduler,
  panePlacement*, requireCallId, regenerateSecret; GET lists take callLegProfileFilter too.
- /callLegProfiles[/<id>]: the documented fields (the mutes, defaultLayout, needsActivation, the *Allowed
  permissions...). /callProfiles[/<id>]: participantLimit, locked, messageBoardEnabled, recordingMode,
  streamingMode, passcodeMode...; a call of a coSpace with a callProfile starts locked as it says and refuses a
  participant beyond participantLimit with 400 <participantLimitReached /> (a SIP call coming in: 486).
- /calls[/<id>]: POST coSpace (its one call: a second POST gives the same Location) or name; locked, recording,
  streaming, allowAllMuteSelf, messageText...; GET name, callType, coSpace, callCorrelator, durationSeconds,
  numCallLegs, maxCallLegs, numParticipantsLocal, numParticipantsRemote, locked...; GET lists take
  coSpaceFilter; DELETE ends the call.
- /calls/<id>/participants (GET; POST remoteParty and the leg's settings: Location /api/v1/participants/<id>;
  PUT /calls/<id>/participants/* the same change for all, or for filterIds with mode=selected|exclude) and
  /calls/<id>/callLegs (GET; POST remoteParty: Location /api/v1/callLegs/<id>).
- /participants[/<id>[/callLegs]]: PUT importance, the mutes, nameLabelOverride...; DELETE hangs up.
- /callLegs[/<id>]: GET status (state initial|ringing|connected, durationSeconds, sipCallID, direction,
  rxAudio/txAudio/rxVideo/txVideo with codec, jitter, bitRate, packetLossPercentage and, on tx, roundTripTime);
  PUT rxAudioMute, txAudioMute, rxVideoMute, txVideoMute, chosenLayout, importance, callLegProfile... (not
  remoteParty, bandwidth or confirmation: parameterError); DELETE hangs up. GET lists take participantFilter.
- /system/status: softwareVersion, uptimeSeconds, activated, callLegsActive, callLegsMaxActive,
  callLegsCompleted. /system/cdrReceivers[/<id>]: uri, where the call detail records go (simulators/cms_cdr.py).

Calls really connect. A participant or call leg made by POST with remoteParty `sip:room@ADDR[:PORT]` (or
`room@ADDR`, or a bare address) starts in state "initial" and its SIP INVITE goes to that address over the
network (simulators/sip.py): 180 makes it "ringing", 200 "connected", with one audio (G.711, 50 packets/s) and
one video stream each way (simulators/media.py: RTP with RFC 3550 receiver statistics and RTCP reports; the
offer's b=AS is the POST's bandwidth, 1920 kbit/s when none is given; --media-rate scales the packet rates down
for benchmarks, the timestamps staying real-time). What
GET /callLegs/<id> reports under `status` is measured on those packets over the last 5-second interval: rx*
from what this bridge received (loss, RFC 3550 jitter in ms, bit rate), tx* from what it sent and what the
endpoint's RTCP reports say it received of that, roundTripTime from the reports' LSR/DLSR. Nothing there comes
from configuration.

A dial-out that does not connect disappears, leg and participant, as on the real server (GET then answers 404
callLegDoesNotExist / participantDoesNotExist). Why is the callLegEnd reason of the server's CDRs, which the
simulator posts to the CDR receivers and writes to calls.log and state.json ("endedCallLegs"):
remoteBusy (486/600), remoteRejected (603 and other final refusals), unknownDestination (404/480/484: not
registered there), timeout (no answer to the INVITE within SIP timer B, --sip-timeout, 32 s by default: an
unreachable site; or its media stopped arriving), ringingTimeout (it rang for --ring-timeout, 60 s by default),
dnsFailure (a host that is not an IP address: the simulator resolves no names), apiInitiatedTeardown (DELETE of
the leg, participant or call), remoteTeardown (the endpoint sent BYE), localTeardown (the simulator stopped).

Dial-in: an INVITE to --sip-listen whose request-URI user part is a coSpace's uri, secondaryUri or callId joins
that coSpace's call (made if it has none) as an incoming leg, with media as above (no IVR: a passcode is not
asked for); any other is refused (404).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

if not __package__:  # run as a script: the `simulators` package is the folder above this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators import cms_calls, cms_cdr

SOFTWARE_VERSION = "3.8.0"
DEFAULT_PAGE_LIMIT = 10
LAYOUTS = ("allEqual", "speakerOnly", "telepresence", "stacked", "allEqualQuarters", "allEqualNinths",
           "allEqualSixteenths", "allEqualTwentyFifths", "onePlusFive", "onePlusSeven", "onePlusNine", "automatic",
           "onePlusN")


class ApiError(Exception):
    """An answer other than 200: its status and the failureDetails inside."""

    def __init__(self, status: int, detail: str, parameter: str | None = None, error: str = "invalidValue") -> None:
        super().__init__(f"{status} {detail} {parameter or ''}")
        self.status = status
        self.detail = detail
        self.parameter = parameter
        self.error = error

    def body(self) -> bytes:
        root = ET.Element("failureDetails")
        child = ET.SubElement(root, self.detail)
        if self.parameter is not None:
            child.set("parameter", self.parameter)
            child.set("error", self.error)
        return _xml(root)


def bad_value(parameter: str) -> ApiError:
    return ApiError(400, "parameterError", parameter)


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>\n' + ET.tostring(root, encoding="utf-8")


# ---------------------------------------------------------------- value spaces of parameters

Parse = Callable[[str], Any]


def text(max_length: int | None = None) -> Parse:
    def parse(raw: str) -> str:
        if max_length is not None and len(raw) > max_length:
            raise ValueError(raw)
        return raw
    return parse


def boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError(raw)
    return raw == "true"


def number(low: int | None = None, high: int | None = None) -> Parse:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"-?\d+", raw):
            raise ValueError(raw)
        value = int(raw)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(raw)
        return value
    return parse


def choice(*values: str) -> Parse:
    def parse(raw: str) -> str:
        if raw not in values:
            raise ValueError(raw)
        return raw
    return parse


def uri_user_part(raw: str) -> str:
    """The URI 'user part': what comes before any '@' of a full URI, so an '@' (or a space) has no place in it."""
    if "@" in raw or any(c.isspace() for c in raw):
        raise ValueError(raw)
    return raw


def digits(raw: str) -> str:
    if not raw.isdigit():
        raise ValueError(raw)
    return raw


def guid(raw: str) -> str:
    try:
        uuid.UUID(raw)
    except ValueError:
        raise ValueError(raw) from None
    return raw.lower()


# callLegProfile fields (also accepted on call legs and participants, as overrides)
CALL_LEG_PROFILE_FIELDS: dict[str, Parse] = {
    "name": text(), "needsActivation": boolean, "defaultLayout": choice(*LAYOUTS), "changeLayoutAllowed": boolean,
    "participantLabels": boolean, "presentationDisplayMode": choice("dualStream", "singleStream"),
    "presentationContributionAllowed": boolean, "allowAllPresentationContributionAllowed": boolean,
    "presentationViewingAllowed": boolean, "endCallAllowed": boolean, "muteOthersAllowed": boolean,
    "changeJoinAudioMuteOverrideAllowed": boolean, "videoMuteOthersAllowed": boolean, "muteSelfAllowed": boolean,
    "allowAllMuteSelfAllowed": boolean, "videoMuteSelfAllowed": boolean,
    "joinToneParticipantThreshold": number(0, 100), "leaveToneParticipantThreshold": number(0, 100),
    "videoMode": choice("auto", "disabled"), "rxAudioMute": boolean, "txAudioMute": boolean,
    "rxVideoMute": boolean, "txVideoMute": boolean,
    "sipMediaEncryption": choice("optional", "required", "prohibited"), "audioPacketSizeMs": number(10, 120),
    "deactivationMode": choice("deactivate", "disconnect", "remainActivated"), "deactivationModeTime": number(0),
    "telepresenceCallsAllowed": boolean, "sipPresentationChannelEnabled": boolean,
    "bfcpMode": choice("serverOnly", "serverAndClient"), "callLockAllowed": boolean, "setImportanceAllowed": boolean,
    "recordingControlAllowed": boolean, "streamingControlAllowed": boolean, "maxCallDurationTime": number(0),
    "qualityMain": choice("unrestricted", "max1080p30", "max720p30", "max480p30"),
    "qualityPresentation": choice("unrestricted", "max1080p30", "max720p5"),
    "participantCounter": choice("never", "auto", "always"), "disconnectOthersAllowed": boolean,
    "addParticipantAllowed": boolean,
}
CALL_PROFILE_FIELDS: dict[str, Parse] = {
    "participantLimit": number(0), "messageBoardEnabled": boolean, "locked": boolean,
    "recordingMode": choice("disabled", "manual", "automatic"),
    "streamingMode": choice("disabled", "manual", "automatic"), "passcodeMode": choice("required", "timeout"),
    "passcodeTimeout": number(0), "gatewayAudioCallOptimization": boolean,
    "lyncConferenceMode": choice("dualHomeCluster", "dualHomeCallBridge", "gateway"),
}
# the profile collections: their element, their fields, the failure naming an unknown one
PROFILES: dict[str, tuple[str, dict[str, Parse], str]] = {
    "callLegProfiles": ("callLegProfile", CALL_LEG_PROFILE_FIELDS, "callLegProfileDoesNotExist"),
    "callProfiles": ("callProfile", CALL_PROFILE_FIELDS, "callProfileDoesNotExist"),
}
COSPACE_FIELDS: dict[str, Parse] = {
    "name": text(), "uri": uri_user_part, "secondaryUri": uri_user_part, "callId": digits, "cdrTag": text(100),
    "passcode": text(), "defaultLayout": choice(*LAYOUTS), "tenant": guid, "callLegProfile": guid,
    "callProfile": guid, "callBrandingProfile": guid, "secret": text(), "nonMemberAccess": boolean,
    "ownerJid": text(), "streamUrl": text(), "ownerAdGuid": text(), "meetingScheduler": text(),
    "panePlacementHighestImportance": number(1), "panePlacementSelfPaneMode": choice("skip", "self", "blank"),
}
CALL_FIELDS: dict[str, Parse] = {
    "name": text(), "locked": boolean, "recording": boolean, "streaming": boolean, "allowAllMuteSelf": boolean,
    "allowAllPresentationContribution": boolean, "joinAudioMuteOverride": boolean, "messageText": text(),
    "messagePosition": choice("top", "middle", "bottom"), "activeWhenEmpty": boolean,
    "panePlacementHighestImportance": number(1),
}
# what a call leg (or participant) takes beyond the callLegProfile fields
LEG_FIELDS: dict[str, Parse] = {
    "remoteParty": text(), "bandwidth": number(1), "confirmation": boolean, "ownerId": text(),
    "chosenLayout": choice(*LAYOUTS), "dtmfSequence": text(), "callLegProfile": guid, "layout": choice(*LAYOUTS),
    "importance": number(0), "nameLabelOverride": text(50),
}
POST_ONLY_LEG_FIELDS = ("remoteParty", "bandwidth", "confirmation")
# references to profiles this simulator has no collection of: any id given is unknown
UNSUPPORTED_REFERENCES = {"tenant": "tenantDoesNotExist", "callBrandingProfile": "callBrandingProfileDoesNotExist"}


def parse_fields(form: dict[str, str], fields: dict[str, Parse]) -> dict[str, Any]:
    """The known parameters of a form, parsed; an empty value means 'unset' (None). Unknown ones are ignored,
    as the server does with parameters of later versions."""
    out: dict[str, Any] = {}
    for name, raw in form.items():
        parse = fields.get(name)
        if parse is None:
            continue
        if raw == "":
            out[name] = None
            continue
        try:
            out[name] = parse(raw)
        except ValueError:
            raise bad_value(name) from None
    return out


def new_id() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- objects

@dataclass
class CallLeg:
    id: str
    call: str
    participant: str
    remote_party: str
    direction: str  # incoming | outgoing
    settings: dict[str, Any] = field(default_factory=dict)  # the overrides given by POST/PUT
    state: str = "initial"
    local_address: str = ""
    sip_call_id: str = ""
    bandwidth: int | None = None  # bits/s asked for by POST (the call's b=AS in the offer)
    connected_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)
    sessions: dict[str, Any] = field(default_factory=dict)  # "audio"/"video" -> media.MediaSession
    dialog: Any = None  # the SIP dialog (simulators.sip), to hang up


@dataclass
class Participant:
    id: str
    call: str
    name: str
    remote_party: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Call:
    id: str
    name: str
    co_space: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    correlator: str = field(default_factory=new_id)
    started_at: float = field(default_factory=time.monotonic)
    max_legs: int = 0
    legs_completed: int = 0


# ---------------------------------------------------------------- the bridge: objects, their rules, their state

class Bridge:
    """Everything the server holds, behind one lock; the HTTP handler and the SIP side call its methods."""

    def __init__(self, state_dir: Path, page_limit: int = DEFAULT_PAGE_LIMIT) -> None:
        self.state_dir = state_dir
        self.page_limit = page_limit
        self.lock = threading.RLock()
        self.started = time.monotonic()
        self.co_spaces: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in PROFILES}
        self.calls: dict[str, Call] = {}
        self.participants: dict[str, Participant] = {}
        self.legs: dict[str, CallLeg] = {}
        self.ended: list[dict[str, Any]] = []
        self.legs_completed = 0
        self.legs_max_active = 0
        self.telephony: Any = None  # set by serve(): dials out, hangs up (simulators/cms_calls.py)
        self.call_bridge = new_id()
        self.cdr_receivers: dict[str, str] = {}
        self._load()
        self.cdr = cms_cdr.CdrSender(self.call_bridge)
        self.cdr.receivers = self.cdr_receivers

    # ------------------------------------------------------------ persistence

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"

    def _load(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(self.state_path.read_text())
            self.co_spaces = dict(data.get("coSpaces", {}))
            for kind in PROFILES:
                self.profiles[kind] = dict(data.get(kind, {}))
            self.cdr_receivers = dict(data.get("cdrReceivers", {}))
            self.call_bridge = data.get("callBridge") or self.call_bridge

    def save(self) -> None:
        with self.lock:
            data = {
                "callBridge": self.call_bridge, "coSpaces": self.co_spaces,
                **self.profiles, "cdrReceivers": self.cdr_receivers,
                "calls": {c.id: {"name": c.name, "coSpace": c.co_space, **c.settings} for c in self.calls.values()},
                "participants": {p.id: {"call": p.call, "name": p.name, "remoteParty": p.remote_party,
                                        **p.settings} for p in self.participants.values()},
                "callLegs": {leg.id: {"call": leg.call, "participant": leg.participant,
                                      "remoteParty": leg.remote_party, "direction": leg.direction,
                                      "state": leg.state, "settings": leg.settings,
                                      "media": {kind: s.stats() for kind, s in leg.sessions.items()}}
                             for leg in self.legs.values()},
                "endedCallLegs": self.ended,
            }
            temporary = self.state_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1, default=str))
            os.replace(temporary, self.state_path)

    # ------------------------------------------------------------ collections

    def page(self, items: list[tuple[str, Any]], query: dict[str, str]) -> tuple[int, list[tuple[str, Any]]]:
        offset = _query_number(query, "offset")
        limit = _query_number(query, "limit")
        own = self.page_limit if limit is None else min(limit, self.page_limit)
        start = offset or 0
        return len(items), items[start:start + own]

    # ------------------------------------------------------------ coSpaces

    def co_space(self, co_space_id: str, status: int = 404) -> dict[str, Any]:
        found = self.co_spaces.get(co_space_id.lower())
        if found is None:
            raise ApiError(status, "coSpaceDoesNotExist")
        return found

    def _check_references(self, values: dict[str, Any]) -> None:
        for kind, (tag, _fields, failure) in PROFILES.items():
            if values.get(tag) and values[tag] not in self.profiles[kind]:
                raise ApiError(400, failure)
        for name, failure in UNSUPPORTED_REFERENCES.items():
            if values.get(name):
                raise ApiError(400, failure)

    def save_co_space(self, form: dict[str, str], co_space_id: str | None = None) -> str:
        with self.lock:
            current = dict(self.co_space(co_space_id)) if co_space_id else {}
            values = parse_fields(form, COSPACE_FIELDS)
            require_call_id = _form_flag(form, "requireCallId")
            regenerate = _form_flag(form, "regenerateSecret") if co_space_id else False
            self._check_references(values)
            merged = {**current, **values}
            merged = {k: v for k, v in merged.items() if v is not None}
            if require_call_id and not merged.get("callId"):
                merged["callId"] = self._free_call_id()
            for name in ("uri", "secondaryUri"):
                if values.get(name) and self._uri_taken(values[name], co_space_id):
                    raise ApiError(400, "duplicateCoSpaceUri")
            if values.get("callId") and self._call_id_taken(values["callId"], co_space_id):
                raise ApiError(400, "duplicateCoSpaceId")
            if regenerate or (merged.get("callId") and not merged.get("secret")):
                merged["secret"] = secrets.token_urlsafe(16)[:22]
            co_space_id = co_space_id.lower() if co_space_id else new_id()
            self.co_spaces[co_space_id] = merged
            for call in self.calls.values():  # a live call shows its coSpace's new name
                if call.co_space == co_space_id and "name" in values:
                    call.name = merged.get("name", "")
            self.save()
            return co_space_id

    def _uri_taken(self, uri: str, own: str | None) -> bool:
        return any(uri.lower() in (str(c.get("uri", "")).lower(), str(c.get("secondaryUri", "")).lower())
                   for cid, c in self.co_spaces.items() if cid != (own or "").lower())

    def _call_id_taken(self, call_id: str, own: str | None) -> bool:
        return any(c.get("callId") == call_id for cid, c in self.co_spaces.items() if cid != (own or "").lower())

    def _free_call_id(self) -> str:
        while True:
            candidate = str(secrets.randbelow(900_000_000) + 100_000_000)
            if not self._call_id_taken(candidate, None):
                return candidate

    def delete_co_space(self, co_space_id: str) -> None:
        with self.lock:
            self.co_space(co_space_id)
            for call in [c for c in self.calls.values() if c.co_space == co_space_id.lower()]:
                self.end_call(call.id, "callEnded")
            del self.co_spaces[co_space_id.lower()]
            self.save()

    def co_space_for_dialled(self, user: str) -> str | None:
        user = user.lower()
        for cid, c in self.co_spaces.items():
            if user and user in (str(c.get("uri", "")).lower(), str(c.get("secondaryUri", "")).lower(),
                                 str(c.get("callId", "")).lower()):
                return cid
        return None

    # ------------------------------------------------------------ callLegProfiles, callProfiles

    def profile(self, kind: str, profile_id: str, status: int = 404) -> dict[str, Any]:
        found = self.profiles[kind].get(profile_id.lower())
        if found is None:
            raise ApiError(status, PROFILES[kind][2])
        return found

    def save_profile(self, kind: str, form: dict[str, str], profile_id: str | None = None) -> str:
        with self.lock:
            values = parse_fields(form, PROFILES[kind][1])
            current = dict(self.profile(kind, profile_id)) if profile_id else {}
            merged = {k: v for k, v in {**current, **values}.items() if v is not None}
            profile_id = profile_id.lower() if profile_id else new_id()
            self.profiles[kind][profile_id] = merged
            self.save()
            return profile_id

    def delete_profile(self, kind: str, profile_id: str) -> None:
        with self.lock:
            self.profile(kind, profile_id)
            del self.profiles[kind][profile_id.lower()]
            tag = PROFILES[kind][0]
            for c in self.co_spaces.values():
                if c.get(tag) == profile_id.lower():
                    del c[tag]
            self.save()

    def participant_limit(self, call: Call) -> int | None:
        """The participantLimit of the call's coSpace's callProfile, if it has one."""
        co_space = self.co_spaces.get(call.co_space or "")
        profile = self.profiles["callProfiles"].get((co_space or {}).get("callProfile", ""))
        return (profile or {}).get("participantLimit")

    # ------------------------------------------------------------ calls

    def call(self, call_id: str, status: int = 404) -> Call:
        found = self.calls.get(call_id.lower())
        if found is None:
            raise ApiError(status, "callDoesNotExist")
        return found

    def create_call(self, form: dict[str, str]) -> str:
        with self.lock:
            values = parse_fields(form, CALL_FIELDS)
            co_space_raw = form.get("coSpace", "")
            if co_space_raw:
                try:
                    co_space_id = guid(co_space_raw)
                except ValueError:
                    raise bad_value("coSpace") from None
                co_space = self.co_space(co_space_id, status=400)
                for call in self.calls.values():  # one call per coSpace: its instantiation is that call
                    if call.co_space == co_space_id:
                        return call.id
                name = values.pop("name", None) or co_space.get("name", "")
                call = Call(new_id(), name, co_space_id)
            elif values.get("name"):
                call = Call(new_id(), values.pop("name"), None)
            else:
                raise bad_value("coSpace")
            call.settings = {k: v for k, v in values.items() if v is not None}
            profile = self.profiles["callProfiles"].get(self.co_spaces.get(call.co_space or "", {}).get(
                "callProfile", ""))
            if profile and "locked" in profile:  # the call starts as its profile says
                call.settings.setdefault("locked", profile["locked"])
            self.calls[call.id] = call
            self.cdr.record("callStart", "call", call.id, [
                ("name", call.name), ("callType", "coSpace" if call.co_space else "adHoc"),
                ("coSpace", call.co_space), ("callCorrelator", call.correlator)])
            self.save()
            return call.id

    def call_for_co_space(self, co_space_id: str) -> Call:
        with self.lock:
            return self.call(self.create_call({"coSpace": co_space_id}))

    def modify_call(self, call_id: str, form: dict[str, str]) -> None:
        with self.lock:
            call = self.call(call_id)
            values = parse_fields(form, CALL_FIELDS)
            values.pop("name", None)  # for POST only
            for name, value in values.items():
                if value is None:
                    call.settings.pop(name, None)
                else:
                    call.settings[name] = value
            self.save()

    def end_call(self, call_id: str, reason: str = "apiInitiatedTeardown") -> None:
        with self.lock:
            call = self.call(call_id)
            for leg in [leg for leg in self.legs.values() if leg.call == call.id]:
                self.end_leg(leg.id, reason, hang_up=True)
            self.calls.pop(call.id, None)
            self.cdr.record("callEnd", "call", call.id, [
                ("callLegsCompleted", call.legs_completed), ("callLegsMaxActive", call.max_legs),
                ("durationSeconds", int(time.monotonic() - call.started_at))])
            self.save()

    # ------------------------------------------------------------ participants and call legs

    def participant(self, participant_id: str, status: int = 404) -> Participant:
        found = self.participants.get(participant_id.lower())
        if found is None:
            raise ApiError(status, "participantDoesNotExist")
        return found

    def leg(self, leg_id: str, status: int = 404) -> CallLeg:
        found = self.legs.get(leg_id.lower())
        if found is None:
            raise ApiError(status, "callLegDoesNotExist")
        return found

    def _leg_settings(self, form: dict[str, str], creating: bool) -> dict[str, Any]:
        if not creating:
            for name in POST_ONLY_LEG_FIELDS:  # "You cannot modify the remoteParty, bandwidth or confirmation."
                if name in form:
                    raise bad_value(name)
        values = parse_fields(form, {**CALL_LEG_PROFILE_FIELDS, **LEG_FIELDS})
        self._check_references(values)
        return values

    def dial_out(self, call_id: str, form: dict[str, str]) -> tuple[str, str]:
        """A new participant with one outgoing leg to remoteParty: (participant id, leg id). The INVITE goes out
        after the answer: the leg is 'initial' until the endpoint rings."""
        with self.lock:
            call = self.call(call_id)
            values = self._leg_settings(form, creating=True)
            remote_party = values.pop("remoteParty", None)
            if not remote_party:
                raise bad_value("remoteParty")
            bandwidth = values.pop("bandwidth", None)
            for name in POST_ONLY_LEG_FIELDS:
                values.pop(name, None)
            participant, leg = self._add_leg(call, remote_party, "outgoing", values)
            leg.bandwidth = bandwidth
            self.save()
        if self.telephony is not None:
            self.telephony.dial(leg)
        else:  # no SIP side: the dial-out cannot happen
            self.end_leg(leg.id, "unknownDestination")
        return participant.id, leg.id

    def _add_leg(self, call: Call, remote_party: str, direction: str,
                 settings: dict[str, Any]) -> tuple[Participant, CallLeg]:
        limit = self.participant_limit(call)
        if limit is not None and sum(1 for p in self.participants.values() if p.call == call.id) >= limit:
            raise ApiError(400, "participantLimitReached")
        name = settings.get("nameLabelOverride") or remote_party
        participant = Participant(new_id(), call.id, name, remote_party,
                                  {k: settings[k] for k in ("importance",) if settings.get(k) is not None})
        leg_settings = {k: v for k, v in settings.items() if v is not None and k != "importance"}
        leg = CallLeg(new_id(), call.id, participant.id, remote_party, direction, leg_settings)
        self.participants[participant.id] = participant
        self.legs[leg.id] = leg
        call.max_legs = max(call.max_legs, sum(1 for x in self.legs.values() if x.call == call.id))
        self.legs_max_active = max(self.legs_max_active, len(self.legs))
        self.cdr.record("callLegStart", "callLeg", leg.id, [
            ("displayName", name), ("remoteParty", remote_party), ("remoteAddress", remote_party),
            ("type", "sip"), ("direction", direction), ("call", call.id), ("groupId", leg.id)])
        return participant, leg

    def incoming_leg(self, co_space_id: str, remote_party: str) -> CallLeg | None:
        """The leg of a call that came in to a coSpace; None when its call is full (participantLimit)."""
        with self.lock:
            call = self.call_for_co_space(co_space_id)
            try:
                _participant, leg = self._add_leg(call, remote_party, "incoming", {})
            except ApiError:
                return None
            self.save()
            return leg

    def modify_leg(self, leg_id: str, form: dict[str, str]) -> None:
        with self.lock:
            leg = self.leg(leg_id)
            values = self._leg_settings(form, creating=False)
            importance = values.pop("importance", "absent")
            if importance != "absent":
                self._set(self.participant(leg.participant).settings, "importance", importance)
            for name, value in values.items():
                self._set(leg.settings, name, value)
            self.save()

    def modify_participant(self, participant_id: str, form: dict[str, str]) -> None:
        with self.lock:
            participant = self.participant(participant_id)
            values = self._leg_settings(form, creating=False)
            for name, value in values.items():
                if name == "importance":
                    self._set(participant.settings, name, value)
                    continue
                if name == "nameLabelOverride":
                    participant.name = value or participant.remote_party
                for leg in self.legs.values():
                    if leg.participant == participant.id:
                        self._set(leg.settings, name, value)
            self.save()

    @staticmethod
    def _set(settings: dict[str, Any], name: str, value: Any) -> None:
        if value is None:
            settings.pop(name, None)
        else:
            settings[name] = value

    def modify_all_participants(self, call_id: str, form: dict[str, str]) -> None:
        """PUT /calls/<id>/participants/*: the same change for every participant of the call, or (filterIds,
        mode) for those listed (mode=selected) or all but those (mode=exclude, the default)."""
        with self.lock:
            call = self.call(call_id)
            mode = form.get("mode") or "exclude"
            if mode not in ("exclude", "selected"):
                raise bad_value("mode")
            listed = {x.strip().lower() for x in form.get("filterIds", "").split(",") if x.strip()}
            if len(listed) > 20:
                raise bad_value("filterIds")
            change = {k: v for k, v in form.items() if k not in ("filterIds", "mode")}
            self._leg_settings(change, creating=False)  # refused as a whole before anything changes
            for participant in [p for p in self.participants.values() if p.call == call.id]:
                if (participant.id in listed) == (mode == "selected"):
                    self.modify_participant(participant.id, change)

    def hang_up_participant(self, participant_id: str) -> None:
        with self.lock:
            participant = self.participant(participant_id)
            for leg in [leg for leg in self.legs.values() if leg.participant == participant.id]:
                self.end_leg(leg.id, "apiInitiatedTeardown", hang_up=True)
            self.participants.pop(participant.id, None)
            self.save()

    def leg_progress(self, leg_id: str, state: str | None, **facts: Any) -> bool:
        """The SIP side says a leg rang or connected (or, with state None, only facts about it); False when the
        leg is gone (hung up meanwhile)."""
        with self.lock:
            leg = self.legs.get(leg_id)
            if leg is None:
                return False
            order = ("initial", "ringing", "connected")
            if state is None or order.index(state) < order.index(leg.state):
                state = leg.state  # two threads telling of one call: never back to an earlier state
            changed = leg.state != state
            leg.state = state
            for name, value in facts.items():
                setattr(leg, name, value)
            if state == "connected" and leg.connected_at is None:
                leg.connected_at = time.monotonic()
            if changed:
                self.cdr.record("callLegUpdate", "callLeg", leg.id, [
                    ("state", state), ("call", leg.call), ("deactivated", False), ("groupId", leg.id),
                    ("sipCallId", leg.sip_call_id or None), ("remoteAddress", leg.remote_party), ("canMove", False)])
            self.save()
            return True

    def end_leg(self, leg_id: str, reason: str, hang_up: bool = False) -> None:
        """The leg is gone (and its participant with it, when it was that participant's last): it disappears
        from the API; its reason goes to calls.log and state.json, as the callLegEnd CDR would carry it."""
        with self.lock:
            leg = self.legs.pop(leg_id, None)
            if leg is None:
                return
            if not any(x.participant == leg.participant for x in self.legs.values()):
                self.participants.pop(leg.participant, None)
            duration = int(time.monotonic() - leg.connected_at) if leg.connected_at else 0
            record = {"id": leg.id, "call": leg.call, "remoteParty": leg.remote_party, "direction": leg.direction,
                      "reason": reason, "durationSeconds": duration, "stateAtEnd": leg.state,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self.ended.append(record)
            self.legs_completed += 1
            call = self.calls.get(leg.call)
            if call is not None:
                call.legs_completed += 1
            self.cdr.record("callLegEnd", "callLeg", leg.id, [
                ("reason", reason), ("remoteTeardown", reason == "remoteTeardown"), ("durationSeconds", duration)])
            with (self.state_dir / "calls.log").open("a") as log:
                log.write(f"{leg.id} {leg.remote_party} {reason}\n")
            self.save()
        if self.telephony is not None:
            self.telephony.release(leg, hang_up=hang_up)

    # ------------------------------------------------------------ figures of a leg

    def leg_status(self, leg: CallLeg) -> dict[str, Any]:
        """rxAudio/txAudio/rxVideo/txVideo from the media sessions' measurements (simulators/media.py), over the
        last 5-second interval as the server's figures are: rx from what arrived here, tx from what was sent and
        what the endpoint's RTCP reports say it received of it; jitter and the round trip in ms."""
        out: dict[str, Any] = {}
        for kind, session in leg.sessions.items():
            stats = session.stats()
            interval = stats["interval"]
            codec = "g711u" if kind == "audio" else "h264"
            rx: dict[str, Any] = {"codec": codec}
            loss = interval["loss_ratio"] if interval["loss_ratio"] is not None else stats["loss_ratio"]
            if loss is not None:
                rx["packetLossPercentage"] = _percent(loss)
            if stats["jitter_ms"] is not None:
                rx["jitter"] = round(stats["jitter_ms"])
            rx["bitRate"] = int(stats["rate_bps"])
            tx: dict[str, Any] = {"codec": codec}
            reported = interval.get("remote")
            if reported and reported.get("expected"):
                tx["packetLossPercentage"] = _percent(max(0, reported["lost"]) / reported["expected"])
            elif stats["remote"] is not None:
                tx["packetLossPercentage"] = _percent(stats["remote"]["fraction_lost"])
            if stats["remote"] is not None:
                tx["jitter"] = round(stats["remote"]["jitter_ms"])
            if interval.get("seconds"):
                tx["bitRate"] = int(interval["sent_bytes"] * 8 / interval["seconds"])
            if stats["rtt_ms"] is not None:
                tx["roundTripTime"] = round(stats["rtt_ms"])
            out["rxAudio" if kind == "audio" else "rxVideo"] = rx
            out["txAudio" if kind == "audio" else "txVideo"] = tx
        return out


def _percent(ratio: float | None) -> str:
    return f"{(ratio or 0.0) * 100:.1f}"


def _query_number(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise bad_value(name)
    return int(raw)


def _form_flag(form: dict[str, str], name: str) -> bool:
    raw = form.get(name)
    if raw is None or raw == "":
        return False
    try:
        return boolean(raw)
    except ValueError:
        raise bad_value(name) from None


# ---------------------------------------------------------------- rendering

def _element(parent: ET.Element, tag: str, value: Any) -> None:
    if value is None:
        return
    child = ET.SubElement(parent, tag)
    child.text = ("true" if value else "false") if isinstance(value, bool) else str(value)


def _object(tag: str, object_id: str, values: Iterable[tuple[str, Any]]) -> ET.Element:
    root = ET.Element(tag, id=object_id)
    for name, value in values:
        _element(root, name, value)
    return root


def _collection(tag: str, total: int, children: list[ET.Element]) -> bytes:
    root = ET.Element(tag, total=str(total))
    root.extend(children)
    return _xml(root)


def _matches(needle: str | None, *haystack: Any) -> bool:
    if not needle:
        return True
    return any(needle.lower() in str(value).lower() for value in haystack if value)


class Api:
    """The routes: (method, path) -> (status, headers, body)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def handle(self, method: str, path: str, query: dict[str, str],
               form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "v1"] or len(parts) < 3:
            raise ApiError(404, "unrecognisedObject")
        parts = parts[2:]
        route = {
            "coSpaces": self._co_spaces, "callLegProfiles": self._profiles, "callProfiles": self._profiles,
            "calls": self._calls,
            "participants": self._participants, "callLegs": self._call_legs, "system": self._system,
        }.get(parts[0])
        if route is None:
            raise ApiError(404, "unrecognisedObject")
        with self.bridge.lock:
            if route == self._profiles:
                return self._profiles(parts[0], method, parts[1:], query, form)
            return route(method, parts[1:], query, form)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _created(kind: str, object_id: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Location": f"/api/v1/{kind}/{object_id}"}, b""

    @staticmethod
    def _ok(body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        return 200, {}, body

    @staticmethod
    def _refuse() -> ApiError:
        return ApiError(405, "invalidOperation")

    # ------------------------------------------------------------ coSpaces

    def _co_spaces(self, method: str, rest: list[str], query: dict[str, str],
                   form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if not rest:
            if method == "GET":
                profile = query.get("callLegProfileFilter")
                items = [(cid, c) for cid, c in b.co_spaces.items()
                         if _matches(query.get("filter"), c.get("name"), c.get("uri"), c.get("secondaryUri"),
                                     c.get("callId"))
                         and (not profile or c.get("callLegProfile") == profile.lower())]
                total, page = b.page(items, query)
                return self._ok(_collection("coSpaces", total, [
                    _object("coSpace", cid, [("name", c.get("name")), ("autoGenerated", False),
                                             ("uri", c.get("uri")), ("secondaryUri", c.get("secondaryUri")),
                                             ("callId", c.get("callId")), ("tenant", c.get("tenant"))])
                    for cid, c in page]))
            if method == "POST":
                return self._created("coSpaces", b.save_co_space(form))
            raise self._refuse()
        if len(rest) > 1:
            b.co_space(rest[0])
            raise ApiError(404, "unrecognisedObject")
        co_space_id = rest[0]
        if method == "GET":
            c = b.co_space(co_space_id)
            order = ["name", "autoGenerated", "uri", "secondaryUri", "callId", "cdrTag", "passcode",
                     "defaultLayout", "tenant", "callLegProfile", "callProfile", "callBrandingProfile",
                     "nonMemberAccess", "ownerJid", "streamUrl", "ownerAdGuid", "meetingScheduler",
                     "panePlacementHighestImportance", "panePlacementSelfPaneMode", "secret"]
            values = {**c, "autoGenerated": False}
            return self._ok(_xml(_object("coSpace", co_space_id.lower(), [(k, values.get(k)) for k in order])))
        if method == "PUT":
            b.save_co_space(form, co_space_id)
            return self._ok()
        if method == "DELETE":
            b.delete_co_space(co_space_id)
            return self._ok()
        raise self._refuse()

    # ------------------------------------------------------------ callLegProfiles, callProfiles

    def _profiles(self, kind: str, method: str, rest: list[str], query: dict[str, str],
                  form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        tag, fields, _failure = PROFILES[kind]
        if not rest:
            if method == "GET":
                items = [(pid, p) for pid, p in b.profiles[kind].items()
                         if _matches(query.get("filter"), p.get("name"))]
                total, page = b.page(items, query)
                return self._ok(_collection(kind, total, [
                    _object(tag, pid, [("name", p.get("name"))]) for pid, p in page]))
            if method == "POST":
                return self._created(kind, b.save_profile(kind, form))
            raise self._refuse()
        if len(rest) > 1:
            b.profile(kind, rest[0])
            raise ApiError(404, "unrecognisedObject")
        profile_id = rest[0]
        if method == "GET":
            p = b.profile(kind, profile_id)
            return self._ok(_xml(_object(tag, profile_id.lower(), [(k, p[k]) for k in fields if k in p])))
        if method == "PUT":
            b.save_profile(kind, form, profile_id)
            return self._ok()
        if method == "DELETE":
            b.delete_profile(kind, profile_id)
            return self._ok()
        raise self._refuse()

    # ------------------------------------------------------------ calls

    def _calls(self, method: str, rest: list[str], query: dict[str, str],
               form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if not rest:
            if method == "GET":
                co_space = query.get("coSpaceFilter")
                items = [(c.id, c) for c in b.calls.values()
                         if _matches(query.get("filter"), c.name)
                         and (not co_space or c.co_space == co_space.lower())]
                total, page = b.page(items, query)
                return self._ok(_collection("calls", total, [
                    _object("call", cid, [("name", c.name), ("coSpace", c.co_space),
                                          ("callCorrelator", c.correlator)]) for cid, c in page]))
            if method == "POST":
                return self._created("calls", b.create_call(form))
            raise self._refuse()
        call = b.call(rest[0])
        if len(rest) == 2 and rest[1] in ("participants", "callLegs"):
            return self._call_children(method, call, rest[1], query, form)
        if rest[1:] == ["participants", "*"] and method == "PUT":
            b.modify_all_participants(call.id, form)
            return self._ok()
        if len(rest) > 1:
            raise ApiError(404, "unrecognisedObject")
        if method == "GET":
            legs = [leg for leg in b.legs.values() if leg.call == call.id]
            participants = [p for p in b.participants.values() if p.call == call.id]
            s = call.settings
            values = [
                ("name", call.name), ("callType", "coSpace" if call.co_space else "adHoc"),
                ("coSpace", call.co_space), ("callCorrelator", call.correlator),
                ("durationSeconds", int(time.monotonic() - call.started_at)), ("numCallLegs", len(legs)),
                ("maxCallLegs", call.max_legs), ("numParticipantsLocal", len(participants)),
                ("numParticipantsRemote", 0), ("numDistributedInstances", 0),
                ("locked", s.get("locked", False)), ("recording", s.get("recording", False)),
                ("streaming", s.get("streaming", False)), ("allowAllMuteSelf", s.get("allowAllMuteSelf", False)),
                ("allowAllPresentationContribution", s.get("allowAllPresentationContribution", False)),
                ("joinAudioMuteOverride", s.get("joinAudioMuteOverride")), ("messageText", s.get("messageText")),
                ("messagePosition", s.get("messagePosition", "middle")), ("messageDuration", 0),
                ("activeWhenEmpty", s.get("activeWhenEmpty", True)),
            ]
            return self._ok(_xml(_object("call", call.id, values)))
        if method == "PUT":
            b.modify_call(call.id, form)
            return self._ok()
        if method == "DELETE":
            b.end_call(call.id)
            return self._ok()
        raise self._refuse()

    def _call_children(self, method: str, call: Call, kind: str, query: dict[str, str],
                       form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if method == "POST":
            participant_id, leg_id = b.dial_out(call.id, form)
            return self._created("participants", participant_id) if kind == "participants" else \
                self._created("callLegs", leg_id)
        if method != "GET":
            raise self._refuse()
        if kind == "participants":
            return self._participant_list([p for p in b.participants.values() if p.call == call.id], query)
        return self._leg_list([leg for leg in b.legs.values() if leg.call == call.id], query)

    # ------------------------------------------------------------ participants

    def _participant_list(self, participants: list[Participant], query: dict[str, str]) -> \
            tuple[int, dict[str, str], bytes]:
        items = [(p.id, p) for p in participants if _matches(query.get("filter"), p.name, p.remote_party)]
        total, page = self.bridge.page(items, query)
        return self._ok(_collection("participants", total, [
            _object("participant", pid, [("name", p.name), ("call", p.call)]) for pid, p in page]))

    def _participants(self, method: str, rest: list[str], query: dict[str, str],
                      form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if not rest:
            if method == "GET":
                return self._participant_list(list(b.participants.values()), query)
            raise self._refuse()
        participant = b.participant(rest[0])
        if rest[1:] == ["callLegs"] and method == "GET":
            return self._leg_list([leg for leg in b.legs.values() if leg.participant == participant.id], query)
        if len(rest) > 1:
            raise ApiError(404, "unrecognisedObject")
        if method == "GET":
            legs = [leg for leg in b.legs.values() if leg.participant == participant.id]
            root = _object("participant", participant.id, [("name", participant.name), ("call", participant.call)])
            status = ET.SubElement(root, "status")
            _element(status, "state", legs[0].state if legs else "initial")
            _element(status, "callLegs", len(legs))
            configuration = ET.SubElement(root, "configuration")
            _element(configuration, "importance", participant.settings.get("importance"))
            return self._ok(_xml(root))
        if method == "PUT":
            b.modify_participant(participant.id, form)
            return self._ok()
        if method == "DELETE":
            b.hang_up_participant(participant.id)
            return self._ok()
        raise self._refuse()

    # ------------------------------------------------------------ call legs

    def _leg_list(self, legs: list[CallLeg], query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        participant = query.get("participantFilter")
        items = [(leg.id, leg) for leg in legs if _matches(query.get("filter"), leg.remote_party)
                 and (not participant or leg.participant == participant.lower())]
        total, page = self.bridge.page(items, query)
        return self._ok(_collection("callLegs", total, [
            _object("callLeg", lid, [("name", self.bridge.participants[leg.participant].name
                                      if leg.participant in self.bridge.participants else leg.remote_party),
                                     ("remoteParty", leg.remote_party), ("originalRemoteParty", leg.remote_party),
                                     ("call", leg.call)]) for lid, leg in page]))

    def _call_legs(self, method: str, rest: list[str], query: dict[str, str],
                   form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if not rest:
            if method == "GET":
                return self._leg_list(list(b.legs.values()), query)
            raise self._refuse()
        leg = b.leg(rest[0])
        if len(rest) > 1:
            raise ApiError(404, "unrecognisedObject")
        if method == "GET":
            return self._ok(_xml(self._leg_element(leg)))
        if method == "PUT":
            b.modify_leg(leg.id, form)
            return self._ok()
        if method == "DELETE":
            b.end_leg(leg.id, "apiInitiatedTeardown", hang_up=True)
            return self._ok()
        raise self._refuse()

    def _leg_element(self, leg: CallLeg) -> ET.Element:
        b = self.bridge
        participant = b.participants.get(leg.participant)
        root = _object("callLeg", leg.id, [
            ("name", participant.name if participant else leg.remote_party), ("remoteParty", leg.remote_party),
            ("originalRemoteParty", leg.remote_party), ("localAddress", leg.local_address or None),
            ("call", leg.call), ("type", "sip"), ("direction", leg.direction), ("canMove", False)])
        configuration = ET.SubElement(root, "configuration")
        settings = dict(leg.settings)
        profile_id = settings.get("callLegProfile")
        call = b.calls.get(leg.call)
        co_space = b.co_spaces.get(call.co_space) if call and call.co_space else None
        if co_space and not profile_id:
            profile_id = co_space.get("callLegProfile")
        inherited = b.profiles["callLegProfiles"].get(profile_id, {}) if profile_id else {}
        for name in ("ownerId", "chosenLayout", "callLegProfile"):
            _element(configuration, name, settings.get(name))
        for name in CALL_LEG_PROFILE_FIELDS:
            if name != "name" and name in settings:
                _element(configuration, name, settings[name])
        if participant and participant.settings.get("importance") is not None:
            _element(configuration, "importance", participant.settings["importance"])
        status = ET.SubElement(root, "status")
        _element(status, "state", leg.state)
        _element(status, "durationSeconds", int(time.monotonic() - leg.connected_at) if leg.connected_at else 0)
        _element(status, "sipCallID", leg.sip_call_id or None)
        _element(status, "direction", leg.direction)
        _element(status, "groupId", leg.id)
        _element(status, "encryptedMedia", False)
        _element(status, "unencryptedMedia", leg.state == "connected")
        layout = (settings.get("chosenLayout") or settings.get("defaultLayout") or inherited.get("defaultLayout")
                  or (co_space or {}).get("defaultLayout") or "automatic")
        _element(status, "layout", layout)
        _element(status, "activeLayout", layout)
        if leg.state == "connected":
            figures = b.leg_status(leg)
            for tag in ("rxAudio", "txAudio", "rxVideo", "txVideo"):
                if tag not in figures:
                    continue
                stream = ET.SubElement(status, tag)
                if tag.endswith("Video"):
                    stream.set("role", "main")
                for name, value in figures[tag].items():
                    _element(stream, name, value)
        return root

    # ------------------------------------------------------------ system

    def _system(self, method: str, rest: list[str], query: dict[str, str],
                form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if rest[:1] == ["cdrReceivers"]:
            return self._cdr_receivers(method, rest[1:], query, form)
        if rest != ["status"]:
            raise ApiError(404, "unrecognisedObject")
        if method != "GET":
            raise self._refuse()
        b = self.bridge
        root = ET.Element("status")
        for name, value in [("softwareVersion", SOFTWARE_VERSION),
                            ("uptimeSeconds", int(time.monotonic() - b.started)), ("activated", True),
                            ("clusterEnabled", False), ("callLegsActive", len(b.legs)),
                            ("callLegsMaxActive", b.legs_max_active), ("callLegsCompleted", b.legs_completed)]:
            _element(root, name, value)
        return self._ok(_xml(root))


    def _cdr_receivers(self, method: str, rest: list[str], query: dict[str, str],
                       form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        b = self.bridge
        if not rest:
            if method == "GET":
                total, page = b.page(list(b.cdr_receivers.items()), query)
                return self._ok(_collection("cdrReceivers", total, [
                    _object("cdrReceiver", rid, [("uri", uri)]) for rid, uri in page]))
            if method == "POST":
                receiver_id = new_id()
                b.cdr_receivers[receiver_id] = _receiver_uri(form)
                b.save()
                return self._created("system/cdrReceivers", receiver_id)
            raise self._refuse()
        receiver_id = rest[0].lower()
        if receiver_id not in b.cdr_receivers or len(rest) > 1:
            raise ApiError(404, "cdrReceiverDoesNotExist")
        if method == "GET":
            return self._ok(_xml(_object("cdrReceiver", receiver_id, [("uri", b.cdr_receivers[receiver_id])])))
        if method == "PUT":
            if "uri" in form:
                b.cdr_receivers[receiver_id] = _receiver_uri(form)
                b.save()
            return self._ok()
        if method == "DELETE":
            del b.cdr_receivers[receiver_id]
            b.save()
            return self._ok()
        raise self._refuse()


def _receiver_uri(form: dict[str, str]) -> str:
    uri = form.get("uri", "")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_value("uri")
    return uri


# ---------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    server_version = "Cisco Meeting Server"
    protocol_version = "HTTP/1.1"
    api: Api
    credentials: tuple[str, str]
    log_path: Path

    def version_string(self) -> str:
        return self.server_version

    def _serve(self) -> None:
        status, headers, body = 500, {}, b""
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            if not self._authorised():
                status, headers = 401, {"WWW-Authenticate": 'Basic realm="Cisco Meeting Server API"'}
                return
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            form = {k: v[-1] for k, v in parse_qs(raw_body.decode("utf-8", "replace"),
                                                  keep_blank_values=True).items()}
            try:
                status, headers, body = self.api.handle(self.command, url.path, query, form)
            except ApiError as error:
                status, headers, body = error.status, {}, error.body()
        finally:
            self._answer(status, headers, body)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except ValueError:
            return False
        expected_user, expected_password = (value.encode() for value in self.credentials)
        # bytes: compare_digest takes no non-ASCII str, and a password may be Vietnamese
        return hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, expected_password)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        with self.log_path.open("a") as log:  # before the answer: a client that has it finds the line
            log.write(f"{self.command} {self.path} {status}\n")
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "text/xml")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests.log holds what tests need


def make_certificate(state_dir: Path, address: str) -> tuple[Path, Path]:
    """A self-signed certificate for the API's address (as a CMS has out of the box), made once per state folder."""
    cert, key = state_dir / "cert.pem", state_dir / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    san = f"IP:{address}" if _is_ip(address) else f"DNS:{address}"
    subprocess.run(  # noqa: S603 - fixed arguments
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",  # noqa: S607
         "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=cms-simulator",
         "-addext", f"subjectAltName={san}"], check=True, capture_output=True, timeout=30)
    return cert, key


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _address(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    return host, int(port)


def serve(listen: tuple[str, int], user: str, password: str, state_dir: Path,
          sip_listen: tuple[str, int] | None = None, page_limit: int = DEFAULT_PAGE_LIMIT,
          sip_timeout: float | None = None, ring_timeout: float = 60.0, media_rate: float = 1.0) -> None:
    import ssl

    state_dir.mkdir(parents=True, exist_ok=True)
    bridge = Bridge(state_dir, page_limit)
    telephony = cms_calls.Telephony(bridge, listen[0], sip_listen, timer_b=sip_timeout, ring_timeout=ring_timeout,
                                    media_rate=media_rate)
    bridge.telephony = telephony
    cert, key = make_certificate(state_dir, listen[0])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = type("BoundHandler", (Handler,), {"api": Api(bridge), "credentials": (user, password),
                                                "log_path": state_dir / "requests.log"})
    server = ThreadingHTTPServer(listen, handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    telephony.start()
    bridge.save()
    stopping = threading.Event()

    def keep_figures_fresh() -> None:  # state.json's media figures of live legs, once a second
        while not stopping.wait(1.0):
            if bridge.legs:
                bridge.save()

    threading.Thread(target=keep_figures_fresh, name="state", daemon=True).start()

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    (state_dir / "pid").write_text(f"{os.getpid()}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        with bridge.lock:
            for leg_id in list(bridge.legs):
                bridge.end_leg(leg_id, "localTeardown", hang_up=True)
        telephony.stop()
        bridge.cdr.stop()
        server.server_close()
        (state_dir / "pid").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--listen", required=True, help="ADDR:PORT of the HTTPS API")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--sip-listen", help="ADDR[:PORT] where SIP calls come in (UDP; port 5060 by default)")
    parser.add_argument("--page-limit", type=int, default=DEFAULT_PAGE_LIMIT,
                        help="the most objects a collection's page holds")
    parser.add_argument("--sip-timeout", type=float, default=None,
                        help="seconds an unanswered INVITE is sent again before the leg fails (SIP timer B, 32)")
    parser.add_argument("--ring-timeout", type=float, default=60.0,
                        help="seconds a dialled endpoint may ring before the leg is given up")
    parser.add_argument("--media-rate", type=float, default=1.0,
                        help="share of the real RTP packet rates sent (benchmarks of many sites lower it)")
    args = parser.parse_args(argv)
    serve(_address(args.listen, 443), args.user, args.password, args.state_dir,
          _address(args.sip_listen, 5060) if args.sip_listen else None, args.page_limit, args.sip_timeout,
          args.ring_timeout, args.media_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
