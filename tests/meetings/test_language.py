"""Vietnamese first: in a province whose default language is Vietnamese, the secretariat reads why a booking is
refused in Vietnamese, and the sites receive their invitations in Vietnamese.

The expected sentences are read from the compiled catalogue (app/translations) the way the app reads them, so
these tests check that the messages are translated and used, not the wording of one translation.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext

from app.auth.models import Role
from app.auth.service import create_user
from app.calendar import mail as mails
from app.calendar import wording
from app.calendar.ics import Party
from app.db import commit_scope, db
from app.meetings import service
from app.meetings.service import BookingRequest
from app.queue.tasks import configure_queue
from app.sites.demo import seed
from app.sites.models import Endpoint, Site
from tests.conftest import PASSWORD
from tests.support.outbox import drain_outbox

from .conftest import local

FLOOD = "Họp trực tuyến về công tác phòng, chống thiên tai và tìm kiếm cứu nạn năm 2026"  # a long subject, folded


def vietnamese(app: Any, msgid: str, **values: Any) -> str:
    """What the app says for `msgid` in Vietnamese, from its compiled catalogue."""
    with app.test_request_context(), force_locale("vi"):
        text = gettext(msgid, **values)
    assert text != msgid % values, f"{msgid!r} has no Vietnamese translation in the compiled catalogue"
    return text


@dataclass
class Province:
    app: Any
    ids: dict[str, int]  # site ids by code


@pytest.fixture
def province(fresh_app: Any, day: dt.date) -> Province:
    """A Vietnamese-default app with the demo province, a secretary, and the flood meeting booked in Na Hang's
    room on `day`, 08:00–10:00 (its invitations are written as .eml files: no SMTP server is set)."""
    app = fresh_app("sqlite", DEFAULT_LANGUAGE="vi", BASE_URL="https://vcops.example.gov.vn")
    configure_queue(app)
    with app.app_context():
        with commit_scope() as session:
            seed(session)
            create_user(session, "secretariat@example.com", Role.SECRETARIAT, PASSWORD)
        db.session.remove()
        ids = dict(db.session.execute(sa.select(Site.code, Site.id)).all())
        with commit_scope() as session:
            service.book_meeting(session, BookingRequest(
                title=FLOOD, host_site_id=ids["TQ"], site_ids=[ids["TQ-NH"]], starts_at=local(day, "08:00"),
                ends_at=local(day, "10:00")))
        db.session.remove()
    return Province(app, ids)


def test_a_refused_booking_names_the_clash_in_vietnamese_on_the_form(province, day):
    vi_app, ids = province.app, province.ids
    client = vi_app.test_client()
    assert client.post("/login", data={"email": "secretariat@example.com", "password": PASSWORD}).status_code == 302
    response = client.post("/meetings/new", data={
        "title": "Họp chuyển đổi số", "host_site_id": str(ids["TQ"]), "site_ids": [str(ids["TQ-NH"])],
        "date": day.isoformat(), "start_time": "09:30", "end_time": "11:00", "bridge_id": "", "setup_minutes": "60",
        "bitrate_kbps": "2000", "classification": "normal", "frequency": "", "interval": "1"})
    assert response.status_code == 409
    page = html.unescape(response.get_data(as_text=True))

    with vi_app.app_context():
        room = db.session.scalar(sa.select(Endpoint.room_name).where(Endpoint.site_id == ids["TQ-NH"]))
        db.session.remove()
    clash = vietnamese(vi_app, "The room %(room)s is already taken by the meeting “%(title)s” at that time.",
                       room=f"{room} (Huyện Na Hang)", title=FLOOD)
    assert 'lang="vi"' in page and vietnamese(vi_app, "Book a meeting") in page
    assert vietnamese(vi_app, "Cannot book (%(when)s): %(clash)s", when=f"{day:%d/%m/%Y} 09:30", clash=clash) in page
    assert clash in page.split('class="clashes"', 1)[1]  # and in the table of clashes


def test_a_long_vietnamese_subject_reaches_the_sites_with_its_spaces():
    # Python 3.11's header folder lost the space where it folded between two encoded words ("phòngchống"):
    # subjects of every length are checked, so that the fold falls on a space at least once.
    subjects = [f"{'Ư' * n}Thông báo thay đổi: Họp về phòng chống lũ và tìm kiếm cứu nạn, Thứ Hai 07/12/2026 08:00"
                for n in range(40)]
    for subject in subjects:
        message = mails.compose(sender=Party("Văn phòng UBND tỉnh", "vp@example.com"),
                                to=Party("Văn phòng Huyện Na Hang", "vp.nh@example.com"), subject=subject, text="…",
                                html="<p>…</p>", invite=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", method="request")
        raw = message.as_bytes()
        assert email.message_from_bytes(raw, policy=email.policy.default)["Subject"] == subject
        assert max(len(line) for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 78


def _mails(app: Any) -> list[EmailMessage]:
    """Deliver what the outbox holds, as the worker would, and read the mails it wrote."""
    drain_outbox(app)
    folder = Path(app.config["INSTANCE_PATH"]) / "outbox"
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.glob("*.eml"))]


def test_the_sites_receive_their_invitation_in_vietnamese(province, day):
    vi_app = province.app
    [mail] = [m for m in _mails(vi_app) if m["To"].addresses[0].addr_spec == "vanphong.tqnh@example.com"]
    text = mail.get_body(("plain",)).get_content()
    with vi_app.test_request_context(), force_locale("vi"):
        when = wording.when(local(day, "08:00"))
    assert mail["Subject"] == vietnamese(vi_app, "Invitation: %(title)s, %(when)s", title=FLOOD, when=when)
    assert text.startswith(vietnamese(vi_app, "Dear %(name)s,", name="Văn phòng Huyện Na Hang"))
    assert vietnamese(vi_app, "%(host)s invites %(site)s to the video conference below.",
                      host="UBND tỉnh Tuyên Quang", site="Huyện Na Hang") in text
    assert vietnamese(vi_app, "Dial-in:") in text and vietnamese(vi_app, "Please confirm that your site will attend:") \
        in text
    assert "Dear" not in text and "video conference" not in text  # nothing left in English
