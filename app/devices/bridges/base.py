"""What VCOps asks of a bridge (MCU), whatever its vendor: the BridgeClient interface, its data and its errors.

The operations were shaped from three products so that none of them dictates the interface; each line names
the call that does it on Cisco Meeting Server (REST, XML), Pexip Infinity (configuration / status / command
APIs, JSON) and Janus (videoroom and audiobridge plugin requests):

- list_conferences   CMS GET /coSpaces (offset/limit, total) + GET /calls; Pexip GET configuration/v1/conference/
                     + status/v1/conference/; Janus videoroom and audiobridge "list".
- create_conference  CMS POST /coSpaces (name, uri, callId, passcode, defaultLayout) with a /callProfiles
                     participantLimit; Pexip POST configuration/v1/conference/ (name, aliases, pin,
                     participant_limit, host_view); Janus "create" (room, description, pin, publishers).
- update_conference  CMS PUT /coSpaces/<id> (+ PUT /callProfiles/<id>); Pexip PATCH configuration/v1/conference/
                     <id>/; Janus "edit" (new_description, new_pin, new_publishers).
- delete_conference  CMS DELETE /coSpaces/<id>; Pexip DELETE configuration/v1/conference/<id>/; Janus "destroy".
- dial_out           CMS POST /calls/<id>/callLegs (remoteParty); Pexip POST command/v1/participant/dial/
                     (conference_alias, destination, protocol); Janus: none in the plugins (a SIP gateway's call,
                     so a Janus client raises NotSupported).
- participants       CMS GET /calls/<id>/callLegs + GET /callLegs/<id> (status: rxAudio, txVideo ...); Pexip GET
                     status/v1/participant/?conference=<name> + status/v1/participant/<id>/media_stream/; Janus
                     "listparticipants" (+ the admin API's handle_info for statistics).
- set_muted          CMS PUT /callLegs/<id> rxAudioMute; Pexip POST command/v1/participant/mute/ | unmute/;
                     Janus audiobridge "mute" | "unmute", videoroom "moderate" (mute_audio).
- disconnect         CMS DELETE /callLegs/<id>; Pexip POST command/v1/participant/disconnect/; Janus "kick".
- make_important     CMS PUT /callLegs/<id> importance; Pexip POST command/v1/participant/spotlighton/; Janus:
                     the layout is the clients' (an SFU), NotSupported.
- set_locked         CMS PUT /calls/<id> locked; Pexip POST command/v1/conference/lock/ | unlock/; Janus
                     "allowed" (action enable / disable: only holders of a token may join).
- end_conference     CMS DELETE /calls/<id> (the coSpace stays); Pexip POST command/v1/conference/disconnect/;
                     Janus "kick" of every participant (the room stays).

What differs is absorbed by the client: ids are the bridge's own strings (CMS GUIDs, Pexip numbers, Janus room
numbers), a conference is the standing room (coSpace, Virtual Meeting Room, room) and its active call is found
or made by the client; statistics a bridge does not report are None. Like app.devices.profile, this module uses
no Flask request or database.
"""

from __future__ import annotations

import datetime as dt
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeVar

from flask_babel import gettext as _

from app.devices.profile import DeviceError, Login, seconds_text

# ---------------------------------------------------------------- errors, in the technician's words

class BridgeError(DeviceError):
    """Talking to a bridge failed; `message` says why in words a technician can act on."""


class BridgeUnreachable(BridgeError):
    """No connection: refused, no answer in time, no route."""


class BridgeTimeout(BridgeUnreachable):
    """Connected, but the bridge did not finish its answer in time."""


class BridgeRefused(BridgeError):
    """The bridge answered with an error: `reason` is its own reason, put in words; `request` what it refused."""

    def __init__(self, bridge: str, request: str, reason: str, code: str = "") -> None:
        super().__init__(_("The MCU %(bridge)s refused “%(request)s”: %(reason)s", bridge=bridge, request=request,
                           reason=reason))
        self.bridge = bridge
        self.request = request
        self.reason = reason
        self.code = code  # the bridge's own name of the failure, when it gives one


class ConferenceNotFound(BridgeError):
    """The conference (or the participant) is not on the bridge (any more)."""


class BridgeNotSupported(BridgeError):
    """A vendor without a client, or an operation the bridge cannot do."""


class BridgeCertificatePending(BridgeError):
    """First contact: the certificate is recorded and waits for a technician to accept it."""

    def __init__(self, bridge: str, fingerprint: str) -> None:
        super().__init__(_("First contact with the MCU %(bridge)s: its certificate (SHA-256 %(fingerprint)s) awaits "
                           "a technician's acceptance on the certificates page.", bridge=bridge,
                           fingerprint=fingerprint))
        self.bridge = bridge
        self.fingerprint = fingerprint


class BridgeCertificateChanged(BridgeError):
    """The bridge presents a certificate other than the pinned one: refused before any request, never replaced
    silently."""

    def __init__(self, bridge: str, pinned: str, presented: str) -> None:
        super().__init__(_("The certificate of the MCU %(bridge)s has changed: pinned %(pinned)s, presented "
                           "%(presented)s. Nothing was sent to it; if the bridge's certificate was renewed, a "
                           "technician must accept the new one.", bridge=bridge, pinned=pinned,
                           presented=presented))
        self.bridge = bridge
        self.pinned = pinned
        self.presented = presented


def unreachable_within(bridge: str, seconds: float) -> BridgeUnreachable:
    return BridgeUnreachable(_("Could not connect to the MCU %(bridge)s within %(seconds)s seconds.", bridge=bridge,
                               seconds=seconds_text(seconds)))


# ---------------------------------------------------------------- what a bridge holds

class Layout(enum.StrEnum):
    """How the bridge composes the picture everybody sees (vendor-neutral; each client maps it)."""

    EQUAL = "equal"  # everybody the same size (CMS allEqual, Pexip 2x2 / 3x3)
    SPEAKER = "speaker"  # only the one speaking, full screen (CMS speakerOnly, Pexip 1:0)
    PRESENCE = "presence"  # the speaker large, the others small below (CMS telepresence, Pexip 1:7)
    STACKED = "stacked"  # the speaker large, the others in a row beneath (CMS stacked, Pexip 1:21)


class ParticipantState(enum.StrEnum):
    DIALLING = "dialling"
    CONNECTED = "connected"
    FAILED = "failed"
    LEFT = "left"


class Direction(enum.StrEnum):
    IN = "in"  # media the bridge receives from the participant
    OUT = "out"  # media the bridge sends to the participant


@dataclass(frozen=True)
class ConferenceSpec:
    """What a technician (or a booking) asks for; None leaves the bridge's default."""

    name: str
    number: str  # what a room dials (the bridge's numeric id / alias / room number)
    pin: str = field(default="", repr=False)
    max_participants: int | None = None
    layout: Layout | None = None


@dataclass(frozen=True)
class Conference:
    id: str  # the bridge's own id
    name: str
    number: str
    pin: str = field(default="", repr=False)
    max_participants: int | None = None
    layout: Layout | None = None
    active: bool = False  # a call is running in it now
    locked: bool | None = None  # None: no active call to lock (or not read: list_conferences)
    participant_count: int | None = None  # in the active call; None where not read


@dataclass(frozen=True)
class MediaStats:
    """One media stream of a participant, as the bridge measures it; None where the bridge does not tell."""

    direction: Direction
    kind: str  # "audio" or "video"
    packets: int | None = None
    loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    bitrate_kbps: float | None = None


@dataclass(frozen=True)
class Participant:
    id: str
    address: str  # the remote party: a SIP URI or a site's address
    state: ParticipantState
    name: str = ""
    reason: str = ""  # why it failed or left, in the bridge's words
    joined_at: dt.datetime | None = None  # UTC
    muted: bool = False  # the others do not hear it
    important: bool = False  # the one everybody sees
    media: tuple[MediaStats, ...] = ()


@dataclass(frozen=True)
class BridgeTarget:
    address: str
    port: int = 443
    label: str = ""  # how messages name it (the bridge's name), the address when empty

    @property
    def where(self) -> str:
        return self.address if self.port == 443 else f"{self.address}:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.label} ({self.where})" if self.label else self.where


@dataclass(frozen=True)
class BridgeTiming:
    connect_timeout: float = 10.0  # TCP connect and TLS handshake
    read_timeout: float = 30.0  # the bridge's answer to one request


@dataclass(frozen=True)
class PresentedCertificate:
    """The certificate a bridge presented in its TLS handshake."""

    fingerprint: str  # SHA-256 of the DER, upper-case hex pairs joined by ":" (as openssl x509 -fingerprint)
    subject: str = ""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None


class CertificatePolicy(Protocol):
    """Decides whether a bridge's certificate may be trusted (app.devices.certificates keeps the pins)."""

    def check(self, target: BridgeTarget, presented: PresentedCertificate) -> str:
        """Return the pinned fingerprint when `presented` is it; raise BridgeCertificatePending or
        BridgeCertificateChanged otherwise."""


# ---------------------------------------------------------------- the interface

class BridgeClient(ABC):
    """One use of one bridge: the first request pins its certificate and opens the connection, close() ends it."""

    vendor: ClassVar[str]

    def __init__(self, target: BridgeTarget, login: Login, certificates: CertificatePolicy,
                 timing: BridgeTiming | None = None) -> None:
        self.target = target
        self.login = login
        self.certificates = certificates
        self.timing = timing or BridgeTiming()

    @abstractmethod
    def list_conferences(self) -> list[Conference]:
        """Every conference on the bridge (for reconciliation): ids, names, numbers, whether a call is active."""

    @abstractmethod
    def get_conference(self, conference_id: str) -> Conference: ...

    @abstractmethod
    def create_conference(self, spec: ConferenceSpec) -> Conference: ...

    @abstractmethod
    def update_conference(self, conference_id: str, spec: ConferenceSpec) -> Conference: ...

    @abstractmethod
    def delete_conference(self, conference_id: str) -> None:
        """Remove the conference; a call running in it ends."""

    @abstractmethod
    def dial_out(self, conference_id: str, address: str, name: str = "") -> Participant:
        """Have the bridge call `address` (a SIP URI) into the conference; the call starts when none runs."""

    @abstractmethod
    def participants(self, conference_id: str, with_media: bool = True) -> list[Participant]:
        """Who is in the conference's active call now, with their live media statistics; none when idle."""

    @abstractmethod
    def set_muted(self, conference_id: str, participant_id: str, muted: bool) -> None:
        """Mute (or unmute) the participant's audio for everybody else."""

    @abstractmethod
    def disconnect(self, conference_id: str, participant_id: str) -> None: ...

    @abstractmethod
    def make_important(self, conference_id: str, participant_id: str | None) -> None:
        """Make the participant the one everybody sees (None: nobody in particular, the speaker again)."""

    @abstractmethod
    def set_locked(self, conference_id: str, locked: bool) -> None:
        """Lock the active call (nobody else may join) or unlock it."""

    @abstractmethod
    def end_conference(self, conference_id: str) -> None:
        """End the active call: everybody is disconnected, the conference stays for the next time."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: B) -> B:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


B = TypeVar("B", bound=BridgeClient)
