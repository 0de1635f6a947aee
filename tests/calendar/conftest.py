"""A real SMTP server (aiosmtpd) and an app that commits for real, holding the demo province.

The app is made once per module and backend (seeding the province is the slow part); each test books on
weeks of its own, so the tests never clash with each other's meetings.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app import create_app
from app.db import commit_scope, db, utcnow
from app.meetings import service
from app.meetings.models import Meeting
from app.meetings.service import BookingRequest
from app.migrate import upgrade
from app.queue.models import OutboxMessage
from app.queue.tasks import configure_queue
from app.sites.demo import seed
from app.sites.models import Site
from tests.conftest import app_config
from tests.support.outbox import drain_outbox
from tests.support.served import free_port

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
# Per module and backend (the modules' real-commit apps are their own; the shared app rolls back), so that the
# weeks stay within how far ahead a meeting may be booked whichever files a pytest-xdist worker runs.
_weeks: dict[tuple[str, str], itertools.count[int]] = {}


def local(day: dt.date, hhmm: str) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=LOCAL)


# ---------------------------------------------------------------- the SMTP server

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message, or refuses recipients as told."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply, e.g. "550 5.1.1 no such user"
    # Addresses whose mail is kept, then the connection closed before the reply: the client cannot know.
    keep_and_hang_up: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        if self.keep_and_hang_up & {a.lower() for a in envelope.rcpt_tos}:
            server.transport.close()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server: tuple[Recorder, int]) -> Recorder:
    recorder, _port = smtp_server
    recorder.received.clear()
    recorder.refuse.clear()
    recorder.keep_and_hang_up.clear()
    return recorder


# ---------------------------------------------------------------- the app

@pytest.fixture(scope="module")
def province_app(backend: str, databases: Any, tmp_path_factory: pytest.TempPathFactory,
                 smtp_server: tuple[Recorder, int]) -> Any:
    url = databases.new(backend)
    upgrade(url)
    _recorder, port = smtp_server
    app = create_app(app_config(tmp_path_factory.mktemp(f"calendar-{backend}"), url, SMTP_HOST="127.0.0.1",
                                SMTP_PORT=port, SMTP_STARTTLS=False, SMTP_TIMEOUT=10,
                                BASE_URL="https://vcops.example.gov.vn",
                                # every test has weeks of its own, six apart: the module's reach ten years ahead
                                MAX_BOOKING_DAYS_AHEAD=3650))
    with app.app_context(), commit_scope() as session:
        seed(session)
    yield app
    db.session.remove()
    app.extensions["vcops_engine"].dispose()


@pytest.fixture
def mail_app(province_app: Any, smtp: Recorder) -> Iterator[Any]:
    """The module's app, bound for this test (other fixtures rebind the shared session), SMTP settings reset."""
    db.session.remove()
    db.bind_to(province_app.extensions["vcops_engine"])
    configure_queue(province_app)
    saved = dict(province_app.config)
    with province_app.app_context():
        # What an earlier test left undone (a retry it did not run) is not this test's mail.
        with commit_scope() as session:
            session.execute(sa.update(OutboxMessage).where(OutboxMessage.done_at.is_(None))
                            .values(done_at=utcnow()))
        db.session.remove()
        yield province_app
        db.session.remove()
    province_app.config.update(saved)


@pytest.fixture
def week(request: pytest.FixtureRequest) -> dt.date:
    """A Monday of a week that no other test of the module books."""
    callspec = getattr(request.node, "callspec", None)
    key = (request.module.__name__, str(callspec.params.get("backend", "")) if callspec else "")
    start = dt.date.today() + dt.timedelta(weeks=next(_weeks.setdefault(key, itertools.count(2))) * 6)
    return start + dt.timedelta(days=(7 - start.weekday()) % 7)


def site_ids(codes: list[str]) -> list[int]:
    return [db.session.scalar(sa.select(Site.id).where(Site.code == c)) for c in codes]


def book(request: BookingRequest) -> int:
    """Book and commit, as a request would; returns the meeting's id."""
    with commit_scope() as session:
        meeting = service.book_meeting(session, request)
        meeting_id = meeting.id
    db.session.remove()
    return meeting_id


def booking(title: str, codes: list[str], day: dt.date, start: str = "08:00", end: str = "09:00",
            **kw: Any) -> BookingRequest:
    [host] = site_ids(["TQ"])
    return BookingRequest(title=title, host_site_id=host, site_ids=site_ids(codes), starts_at=local(day, start),
                          ends_at=local(day, end), **kw)


def change(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a meetings service change and commit it."""
    with commit_scope() as session:
        result = fn(session, *args, **kwargs)
        result_id = getattr(result, "id", None)
    db.session.remove()
    return result_id


def run_outbox() -> list[Exception]:
    """Deliver every outbox message not done yet, as the worker would; returns the handlers' errors."""
    return drain_outbox(keep_going=True)


def meeting(meeting_id: int) -> Meeting:
    return db.session.get(Meeting, meeting_id)


def invite_of(message: EmailMessage) -> tuple[EmailMessage, bytes]:
    """The text/calendar part of a mail and its exact bytes."""
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    return parts[0], parts[0].get_payload(decode=True)


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(invite_of(message)[1])


def events(cal: icalendar.Calendar) -> list[icalendar.Event]:
    return list(cal.walk("VEVENT"))


# ---------------------------------------------------------------- the shared, rolled-back app

def setup(app: Any, fn: Any) -> Any:
    """Run fn(session) in an app context of its own and commit it (into the test's outer transaction)."""
    with app.app_context():
        with commit_scope() as session:
            result = fn(session)
        db.session.remove()
        return result


def booked(session: Any, title: str, codes: list[str], day: dt.date, start: str = "08:00", end: str = "09:00",
           **kw: Any) -> Meeting:
    host = session.scalar(sa.select(Site.id).where(Site.code == "TQ"))
    ids = [session.scalar(sa.select(Site.id).where(Site.code == c)) for c in codes]
    return service.book_meeting(session, BookingRequest(title=title, host_site_id=host, site_ids=ids,
                                                        starts_at=local(day, start), ends_at=local(day, end), **kw))


def participation_of(meeting: Meeting, code: str) -> Any:
    return next(p for p in meeting.occurrences[0].participations if p.site.code == code)
