"""What invitations, invites and feeds say: times in words, the location, the description, the agenda.

Strings are English msgids translated in the caller's locale (mail goes out in the default language).
The agenda comes from app.agenda.service when that module exists (imported lazily: it is optional here).
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

import sqlalchemy.orm as so
from flask_babel import format_datetime
from flask_babel import gettext as _

from app.meetings.models import Classification, Meeting
from app.sites.models import Bridge

AGENDA_MODULE = "app.agenda.service"


@dataclass(frozen=True)
class AgendaLine:
    title: str
    presenter: str
    minutes: int | None


@dataclass(frozen=True)
class Document:
    filename: str
    content_type: str
    data: bytes
    url: str = ""  # a signed, expiring download link, when the agenda module gives one
    attached: bool = True  # False: too large for one mail (agenda MAIL_ATTACHMENTS_MAX_BYTES): sent as its link only


def _agenda_module() -> Any | None:
    # The agenda package may not be installed yet; a real error inside it must still surface.
    if importlib.util.find_spec(AGENDA_MODULE) is None:
        return None
    return importlib.import_module(AGENDA_MODULE)


def agenda_lines(session: so.Session, meeting: Meeting) -> list[AgendaLine]:
    module = _agenda_module()
    if module is None or not hasattr(module, "current_items"):
        return []
    return [AgendaLine(str(item.title), str(getattr(item, "presenter", "") or ""), getattr(item, "minutes", None))
            for item in module.current_items(session, meeting)]


def mail_documents(session: so.Session, meeting: Meeting) -> list[Document]:
    """The documents to attach; never any for a restricted meeting (its readers log in instead)."""
    if meeting.classification is Classification.RESTRICTED:
        return []
    module = _agenda_module()
    if module is None or not hasattr(module, "mail_documents"):
        return []
    link = getattr(module, "signed_download_url", None)
    attached = [Document(doc.filename, doc.content_type or "application/octet-stream", doc.read_bytes(),
                         link(doc) if link is not None else "")
                for doc in module.mail_documents(session, meeting)]
    # What does not fit in one mail goes as its signed link only (its bytes are never read); without links
    # (no agenda module giving them) there is nothing to send for it.
    linked_only = getattr(module, "linked_documents", None)
    if linked_only is None or link is None:
        return attached
    return attached + [Document(doc.filename, doc.content_type or "application/octet-stream", b"", link(doc),
                                attached=False) for doc in linked_only(session, meeting)]


def when(value: dt.datetime) -> str:
    """A start in local time, in words: "Monday 07/12/2026 08:00" (translated)."""
    return format_datetime(value, "EEEE dd/MM/yyyy HH:mm")


def clock(value: dt.datetime) -> str:
    return format_datetime(value, "HH:mm")


def sip_uri(address: str) -> str:
    address = address.strip()
    return address if not address or address.lower().startswith(("sip:", "sips:")) else f"sip:{address}"


def location(meeting: Meeting, bridge: Bridge | None) -> str:
    parts = [meeting.host_site.name]
    if bridge is not None and bridge.sip_address:
        parts.append(sip_uri(bridge.sip_address))
    return ", ".join(parts)


def setup_line(meeting: Meeting, start: dt.datetime) -> str:
    return _("Setup and test call from %(time)s (%(minutes)s minutes before the start).",
             time=clock(start - dt.timedelta(minutes=meeting.setup_minutes)), minutes=meeting.setup_minutes)


def agenda_text(lines: list[AgendaLine]) -> list[str]:
    out = []
    for number, line in enumerate(lines, 1):
        text = f"{number}. {line.title}"
        if line.presenter:
            text += f" ({line.presenter})"
        if line.minutes:
            text += " " + _("%(minutes)s min", minutes=line.minutes)
        out.append(text)
    return out


def dial_in(meeting: Meeting, bridge: Bridge | None, *, with_pin: bool = True) -> list[str]:
    lines = []
    if bridge is not None and bridge.sip_address:
        lines.append(_("SIP address: %(address)s", address=sip_uri(bridge.sip_address)))
    if meeting.conference_number:
        lines.append(_("Conference number: %(number)s", number=meeting.conference_number))
    if meeting.pin and with_pin:
        lines.append(_("PIN: %(pin)s", pin=meeting.pin))
    return lines


def description(meeting: Meeting, bridge: Bridge | None, start: dt.datetime, agenda: list[AgendaLine], url: str, *,
                technical: bool, feed: bool = False) -> str:
    """The DESCRIPTION of an event: chair, agenda, dial-in, the setup time for technicians, the link back."""
    restricted = meeting.classification is Classification.RESTRICTED
    blocks: list[list[str]] = []
    if meeting.chair:
        blocks.append([_("Chair: %(chair)s", chair=meeting.chair)])
    if restricted and feed:
        # A feed's secret URL may be passed around: a restricted meeting's agenda and PIN stay in VCOps.
        blocks.append([_("Restricted meeting: log in to VCOps for the agenda and the documents.")])
    elif agenda:
        blocks.append([_("Agenda:"), *agenda_text(agenda)])
    dial = dial_in(meeting, bridge, with_pin=not (restricted and feed))
    if dial:
        blocks.append([_("Dial-in:"), *dial])
    if technical:
        blocks.append([setup_line(meeting, start)])
    if meeting.notes and not (restricted and feed):
        blocks.append([meeting.notes.strip()])
    blocks.append([url])
    return "\n\n".join("\n".join(block) for block in blocks if block)
