"""The Cisco Meeting Server client: its REST API (/api/v1, form-encoded bodies, XML answers) behind BridgeClient.

A conference is a coSpace; its participant limit is a callProfile of its own (participantLimit) and its live
part is the coSpace's active call (GET /calls?coSpaceFilter=), made by POST /calls when a participant is dialled
and none runs. Participants are the call's callLegs; their statistics come from GET /callLegs/<id> status.
Created objects are named by the `Location` header, lists come in pages (offset/limit, a `total` attribute),
and an error body `<failureDetails>` is turned into the bridge's reason in words. XML from a device is
untrusted: it is parsed with defusedxml.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from xml.etree.ElementTree import Element

import requests
from defusedxml import ElementTree
from flask_babel import gettext as _

from app.devices.bridges.base import (
    BridgeClient,
    BridgeError,
    BridgeNotSupported,
    BridgeRefused,
    BridgeTimeout,
    BridgeUnreachable,
    Conference,
    ConferenceNotFound,
    ConferenceSpec,
    Direction,
    Layout,
    MediaStats,
    Participant,
    ParticipantState,
    unreachable_within,
)
from app.devices.bridges.registry import register
from app.devices.bridges.tls import pinned_session, presented_certificate
from app.devices.profile import seconds_text

API = "/api/v1"
PAGE = 20  # the largest page CMS serves
LAYOUTS: dict[Layout, str] = {Layout.EQUAL: "allEqual", Layout.SPEAKER: "speakerOnly",
                              Layout.PRESENCE: "telepresence", Layout.STACKED: "stacked"}
STATES = {"connected": ParticipantState.CONNECTED, "initial": ParticipantState.DIALLING,
          "ringing": ParticipantState.DIALLING, "connecting": ParticipantState.DIALLING}
MEDIA = (("rxAudio", Direction.IN, "audio"), ("txAudio", Direction.OUT, "audio"),
         ("rxVideo", Direction.IN, "video"), ("txVideo", Direction.OUT, "video"))


def _reasons() -> dict[str, str]:
    # Built per call: gettext needs the request's (or the worker's) language.
    return {
        "coSpaceDoesNotExist": _("the conference does not exist"),
        "callDoesNotExist": _("no call is running in the conference"),
        "callLegDoesNotExist": _("the participant is no longer in the call"),
        "callProfileDoesNotExist": _("the conference's participant limit does not exist"),
        "duplicateCoSpaceUri": _("another conference already uses this number"),
        "duplicateCoSpaceId": _("another conference already uses this number"),
        "tooManyCoSpaces": _("the bridge holds as many conferences as it can"),
        "tooManyCallLegs": _("the call holds as many participants as it may"),
        "tooManyCalls": _("the bridge runs as many calls as it can"),
        "callLegLimitExceeded": _("the call holds as many participants as it may"),
        "participantLimitReached": _("the call holds as many participants as it may"),
    }


def _parameters() -> dict[str, str]:
    # The bridge's parameter names in the technician's terms.
    return {
        "name": _("the conference name"), "uri": _("the conference number"), "callId": _("the conference number"),
        "passcode": _("the PIN"), "defaultLayout": _("the layout"), "remoteParty": _("the participant's address"),
        "participantLimit": _("the participant limit"), "locked": _("the lock"),
        "rxAudioMute": _("the mute"), "importance": _("the importance"),
    }


def _words(code: str) -> str:
    """An unknown failure's name in words: "remotePartyInvalid" -> "remote party invalid"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", code).lower()


def failure_reason(body: str) -> tuple[str, str]:
    """(code, reason in words) of a <failureDetails> body; ("", "") when the body is not one."""
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # not XML (a proxy's page, an empty body): the status code speaks instead
        return "", ""
    if root.tag != "failureDetails" or len(root) == 0:
        return "", ""
    failure = root[0]
    code = failure.tag
    if code == "parameterError":
        parameter, error = failure.get("parameter", "?"), failure.get("error", "")
        what = _parameters().get(parameter, f"“{parameter}”")
        if error == "missing":
            return code, _("%(what)s is missing (%(parameter)s)", what=what, parameter=parameter)
        if error == "valueTooLong":
            return code, _("%(what)s is too long (%(parameter)s)", what=what, parameter=parameter)
        return code, _("%(what)s is not accepted (%(parameter)s: %(error)s)", what=what, parameter=parameter,
                       error=_words(error) or "?")
    return code, _reasons().get(code, _words(code))


def _text(element: Element | None, tag: str) -> str:
    if element is None:
        return ""
    found = element.find(tag)
    return (found.text or "").strip() if found is not None else ""


def _number(element: Element, tag: str) -> float | None:
    value = _text(element, tag)
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _true(value: str) -> bool:
    return value.strip().lower() == "true"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _layout(value: str) -> Layout | None:
    return next((layout for layout, word in LAYOUTS.items() if word == value), None)


@register
class CiscoMeetingServer(BridgeClient):
    vendor = "Cisco"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http: requests.Session | None = None

    # ---------------------------------------------------------------- HTTP

    def _open(self) -> requests.Session:
        """The session, after the presented certificate was found to be the pinned one."""
        if self._http is None:
            presented = presented_certificate(self.target, self.timing.connect_timeout)
            pinned = self.certificates.check(self.target, presented)
            self._http = pinned_session(self.target, pinned, self.login.username, self.login.password or "")
        return self._http

    def _url(self, path: str) -> str:
        host = f"[{self.target.address}]" if ":" in self.target.address else self.target.address
        return f"https://{host}:{self.target.port}{API}/{path.lstrip('/')}"

    def _request(self, method: str, path: str, data: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, missing: str = "") -> requests.Response:
        """One request; `missing` is the message of ConferenceNotFound when the bridge says the object is gone."""
        http = self._open()
        what = f"{method} /{path.split('?')[0]}"
        bridge, timing = self.target.name, self.timing
        try:
            response = http.request(method, self._url(path), data=data, params=params, allow_redirects=False,
                                    timeout=(timing.connect_timeout, timing.read_timeout))
        except requests.exceptions.ConnectTimeout as exc:
            raise unreachable_within(bridge, timing.connect_timeout) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise BridgeTimeout(_("The MCU %(bridge)s did not answer “%(request)s” within %(seconds)s seconds.",
                                  bridge=bridge, request=what, seconds=seconds_text(timing.read_timeout))) from exc
        except requests.exceptions.SSLError as exc:
            if "fingerprint" in str(exc).lower():
                # Another certificate than at the start of this session: check it again, so that it is
                # recorded and the refusal names both fingerprints.
                self.close()
                self.certificates.check(self.target, presented_certificate(self.target, timing.connect_timeout))
            raise BridgeUnreachable(_("No TLS session with the MCU %(bridge)s: %(error)s", bridge=bridge,
                                      error=exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise BridgeUnreachable(_("The connection to the MCU %(bridge)s failed: %(error)s", bridge=bridge,
                                      error=exc)) from exc
        if response.status_code < 400:
            return response
        if response.status_code == 401:
            raise BridgeRefused(bridge, what, _("the bridge refused the login of %(user)s",
                                                user=self.login.username))
        code, reason = failure_reason(response.text)
        if code.endswith("DoesNotExist") or (response.status_code == 404 and not code):
            raise ConferenceNotFound(missing or _("The MCU %(bridge)s has no such object (“%(request)s”).",
                                                  bridge=bridge, request=what))
        raise BridgeRefused(bridge, what, reason or _("HTTP status %(status)s", status=response.status_code), code)

    def _xml(self, path: str, params: dict[str, Any] | None = None, missing: str = "") -> Element:
        response = self._request("GET", path, params=params, missing=missing)
        try:
            return ElementTree.fromstring(response.content)
        except Exception as exc:  # a bridge's unreadable answer is its fault, told as such
            raise BridgeError(_("The MCU %(bridge)s answered “GET /%(request)s” with something that is not XML.",
                                bridge=self.target.name, request=path.split("?")[0])) from exc

    def _create(self, path: str, data: dict[str, Any], missing: str = "") -> str:
        """POST, and the new object's id from the Location header."""
        response = self._request("POST", path, data=data, missing=missing)
        location = response.headers.get("Location", "").rstrip("/")
        if not location:
            raise BridgeError(_("The MCU %(bridge)s accepted “POST /%(request)s” but did not say what it made.",
                                bridge=self.target.name, request=path))
        return location.rsplit("/", 1)[-1]

    def _pages(self, path: str, tag: str, params: dict[str, Any] | None = None) -> list[Element]:
        """Every element of a list, page after page (offset/limit; the list's `total` says when to stop)."""
        found: list[Element] = []
        while True:
            page = self._xml(path, params={**(params or {}), "offset": len(found), "limit": PAGE})
            items = page.findall(tag)
            found.extend(items)
            try:
                total = int(page.get("total", "0"))
            except ValueError:
                total = 0
            if not items or len(found) >= total:
                return found

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---------------------------------------------------------------- conferences

    def _missing_conference(self, conference_id: str) -> str:
        return _("The conference %(id)s is not on the MCU %(bridge)s.", id=conference_id, bridge=self.target.name)

    def _active_call(self, conference_id: str) -> str | None:
        calls = self._pages("calls", "call", {"coSpaceFilter": conference_id})
        for call in calls:
            # The filter is the bridge's; the check is ours (an older bridge may ignore an unknown filter).
            if _text(call, "coSpace") in ("", conference_id):
                return call.get("id")
        return None

    def _call_of(self, conference_id: str, create: bool = False) -> str:
        call = self._active_call(conference_id)
        if call is not None:
            return call
        if not create:
            raise ConferenceNotFound(_("No call is running in the conference %(id)s.", id=conference_id))
        self._xml(f"coSpaces/{conference_id}", missing=self._missing_conference(conference_id))
        return self._create("calls", {"coSpace": conference_id}, missing=self._missing_conference(conference_id))

    def _new_limit(self, limit: int) -> str:
        """A callProfile holding the participant limit (CMS keeps the limit there, not on the coSpace)."""
        try:
            return self._create("callProfiles", {"participantLimit": limit})
        except BridgeRefused as exc:
            if exc.code != "unrecognisedObject":
                raise
            raise BridgeNotSupported(_("The MCU %(bridge)s has no call profiles: VCOps cannot set its participant "
                                       "limit.", bridge=self.target.name)) from exc

    def _space_fields(self, spec: ConferenceSpec) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": spec.name, "uri": spec.number, "callId": spec.number,
                                  "passcode": spec.pin}
        if spec.layout is not None:
            fields["defaultLayout"] = LAYOUTS[Layout(spec.layout)]
        return fields

    def list_conferences(self) -> list[Conference]:
        active = {_text(call, "coSpace") for call in self._pages("calls", "call")}
        return [Conference(id=space.get("id", ""), name=_text(space, "name"),
                           number=_text(space, "callId") or _text(space, "uri"), active=space.get("id") in active)
                for space in self._pages("coSpaces", "coSpace")]

    def get_conference(self, conference_id: str) -> Conference:
        space = self._xml(f"coSpaces/{conference_id}", missing=self._missing_conference(conference_id))
        limit = None
        profile = _text(space, "callProfile")
        if profile:
            try:
                value = _number(self._xml(f"callProfiles/{profile}"), "participantLimit")
                limit = int(value) if value is not None else None
            except ConferenceNotFound:
                limit = None
        call_id = self._active_call(conference_id)
        locked, count = None, None
        if call_id is not None:
            call = self._xml(f"calls/{call_id}")
            locked = _true(_text(call, "locked"))
            legs = _number(call, "numCallLegs")
            count = int(legs) if legs is not None else None
        return Conference(id=conference_id, name=_text(space, "name"),
                          number=_text(space, "callId") or _text(space, "uri"), pin=_text(space, "passcode"),
                          max_participants=limit, layout=_layout(_text(space, "defaultLayout")),
                          active=call_id is not None, locked=locked, participant_count=count)

    def create_conference(self, spec: ConferenceSpec) -> Conference:
        fields = self._space_fields(spec)
        profile = None
        if spec.max_participants is not None:
            profile = self._new_limit(spec.max_participants)
            fields["callProfile"] = profile
        try:
            conference_id = self._create("coSpaces", fields)
        except BridgeError:
            if profile is not None:  # leave nothing behind that no conference uses
                self._request("DELETE", f"callProfiles/{profile}")
            raise
        return self.get_conference(conference_id)

    def update_conference(self, conference_id: str, spec: ConferenceSpec) -> Conference:
        missing = self._missing_conference(conference_id)
        space = self._xml(f"coSpaces/{conference_id}", missing=missing)
        fields = self._space_fields(spec)
        profile = _text(space, "callProfile")
        if profile:
            limit = "" if spec.max_participants is None else spec.max_participants
            self._request("PUT", f"callProfiles/{profile}", data={"participantLimit": limit})
        elif spec.max_participants is not None:
            fields["callProfile"] = self._new_limit(spec.max_participants)
        self._request("PUT", f"coSpaces/{conference_id}", data=fields, missing=missing)
        return self.get_conference(conference_id)

    def delete_conference(self, conference_id: str) -> None:
        missing = self._missing_conference(conference_id)
        space = self._xml(f"coSpaces/{conference_id}", missing=missing)
        call = self._active_call(conference_id)
        if call is not None:
            self._request("DELETE", f"calls/{call}", missing=missing)
        self._request("DELETE", f"coSpaces/{conference_id}", missing=missing)
        profile = _text(space, "callProfile")
        if profile:
            try:
                self._request("DELETE", f"callProfiles/{profile}")
            except ConferenceNotFound:
                pass  # gone already: what was wanted

    def set_locked(self, conference_id: str, locked: bool) -> None:
        call = self._call_of(conference_id)
        self._request("PUT", f"calls/{call}", data={"locked": _flag(locked)},
                      missing=self._missing_conference(conference_id))

    def end_conference(self, conference_id: str) -> None:
        call = self._active_call(conference_id)
        if call is not None:  # no call: it has ended already
            self._request("DELETE", f"calls/{call}")

    # ---------------------------------------------------------------- participants

    def _missing_participant(self, participant_id: str) -> str:
        return _("The participant %(id)s is no longer in the call on the MCU %(bridge)s.", id=participant_id,
                 bridge=self.target.name)

    def _participant(self, leg: Element, with_media: bool = True) -> Participant:
        status = leg.find("status")
        configuration = leg.find("configuration")
        word = _text(status, "state")
        state = STATES.get(word, ParticipantState.FAILED if word else ParticipantState.DIALLING)
        joined_at = None
        duration = _number(status, "durationSeconds") if status is not None else None
        if state is ParticipantState.CONNECTED and duration is not None:
            joined_at = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=int(duration))
        importance = _text(configuration, "importance")
        media: list[MediaStats] = []
        if with_media and status is not None:
            for tag, direction, kind in MEDIA:
                for stream in status.findall(tag):
                    if stream.get("role", "main") != "main":
                        continue  # the presentation channel: not what the others hear and see of the room
                    bitrate = _number(stream, "bitRate")
                    media.append(MediaStats(direction=direction, kind=kind,
                                            loss_percent=_number(stream, "packetLossPercentage"),
                                            jitter_ms=_number(stream, "jitter"),
                                            rtt_ms=_number(stream, "roundTripTime"),
                                            bitrate_kbps=bitrate / 1000 if bitrate is not None else None))
        return Participant(id=leg.get("id", ""), address=_text(leg, "remoteParty"), name=_text(leg, "name"),
                           state=state, reason=word if state is ParticipantState.FAILED else "",
                           joined_at=joined_at, muted=_true(_text(configuration, "rxAudioMute")),
                           important=importance not in ("", "0"), media=tuple(media))

    def _leg(self, participant_id: str) -> Element:
        return self._xml(f"callLegs/{participant_id}", missing=self._missing_participant(participant_id))

    def dial_out(self, conference_id: str, address: str, name: str = "") -> Participant:
        call = self._call_of(conference_id, create=True)
        data: dict[str, Any] = {"remoteParty": address}
        if name:
            data["nameLabelOverride"] = name[:50]  # the label the others see (CMS keeps 50 characters)
        leg_id = self._create(f"calls/{call}/callLegs", data, missing=self._missing_conference(conference_id))
        try:
            return self._participant(self._leg(leg_id), with_media=False)
        except ConferenceNotFound:  # the call failed at once and the bridge dropped the leg
            return Participant(id=leg_id, address=address, name=name, state=ParticipantState.FAILED,
                               reason=_("the call ended at once"))

    def participants(self, conference_id: str, with_media: bool = True) -> list[Participant]:
        call = self._active_call(conference_id)
        if call is None:
            return []
        found = []
        for leg in self._pages(f"calls/{call}/callLegs", "callLeg"):
            try:
                found.append(self._participant(self._leg(leg.get("id", "")), with_media))
            except ConferenceNotFound:  # left between the list and the look-up
                found.append(Participant(id=leg.get("id", ""), address=_text(leg, "remoteParty"),
                                         name=_text(leg, "name"), state=ParticipantState.LEFT))
        return found

    def set_muted(self, conference_id: str, participant_id: str, muted: bool) -> None:
        self._request("PUT", f"callLegs/{participant_id}", data={"rxAudioMute": _flag(muted)},
                      missing=self._missing_participant(participant_id))

    def disconnect(self, conference_id: str, participant_id: str) -> None:
        self._request("DELETE", f"callLegs/{participant_id}", missing=self._missing_participant(participant_id))

    def make_important(self, conference_id: str, participant_id: str | None) -> None:
        if participant_id is not None:
            self._leg(participant_id)  # refused before anything changes when the participant is gone
        for other in self.participants(conference_id, with_media=False):
            if other.important and other.id != participant_id:
                self._request("PUT", f"callLegs/{other.id}", data={"importance": ""},
                              missing=self._missing_participant(other.id))
        if participant_id is not None:
            self._request("PUT", f"callLegs/{participant_id}", data={"importance": 1},
                          missing=self._missing_participant(participant_id))
