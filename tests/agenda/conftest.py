"""Agenda test helpers: a booked meeting with the site staff's commune, and small real documents made in memory."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from app.agenda.models import DOCUMENTS_FOLDER, Document
from app.meetings.models import Classification
from app.meetings.service import BookingRequest, book_meeting
from app.sites.models import Site

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


def minimal_pdf(text: str = "Bao cao") -> bytes:
    """A one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
    ]
    stream = f"BT /F1 18 Tf 20 70 Td ({text}) Tj ET".encode()
    objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _zip(members: list[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(members):
            info = zipfile.ZipInfo(name, date_time=(2025, 7, 1, 8, 0, 0))  # the same bytes on every call
            info.compress_type = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def minimal_docx(text: str = "Kế hoạch") -> bytes:
    content_types = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        b'<Default Extension="xml" ContentType="application/xml"/>'
        b'<Override PartName="/word/document.xml" '
        b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        b"</Types>")
    rels = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'officeDocument" Target="word/document.xml"/></Relationships>')
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>").encode()
    return _zip([("[Content_Types].xml", content_types), ("_rels/.rels", rels), ("word/document.xml", document)])


def minimal_odt(text: str = "Giấy mời") -> bytes:
    manifest = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        b'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        b'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        b'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        b"</manifest:manifest>")
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:text><text:p>{text}</text:p></office:text></office:body>"
        "</office:document-content>").encode()
    return _zip([("mimetype", b"application/vnd.oasis.opendocument.text"), ("META-INF/manifest.xml", manifest),
                 ("content.xml", content)], stored_first=True)


def zip_bomb_like() -> bytes:
    """A DOCX whose central directory claims its document part unpacks to 4 GB."""
    data = bytearray(minimal_docx())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_length = int.from_bytes(data[start + 28:start + 30], "little")
        if data[start + 46:start + 46 + name_length] == b"word/document.xml":
            data[start + 24:start + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        start = data.find(b"PK\x01\x02", start + 4)
    return bytes(data)


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(120)
HTML = ("<!DOCTYPE html>\n<html><head><title>Báo cáo</title></head>"
        "<body><script>alert(1)</script></body></html>").encode()


@pytest.fixture
def day() -> dt.date:
    """A Monday at least a week ahead."""
    soon = dt.date.today() + dt.timedelta(days=7)
    return soon + dt.timedelta(days=(7 - soon.weekday()) % 7)


@pytest.fixture
def site(session):
    def find(code: str) -> Site:
        return session.scalar(sa.select(Site).where(Site.code == code))

    return find


@pytest.fixture
def book(session, site, day):
    """book(title, codes, restricted=False, start="08:00"): a scheduled meeting from the province hall."""

    def make(title: str, codes: list[str], restricted: bool = False, start: str = "08:00", draft: bool = False):
        h, m = map(int, start.split(":"))
        starts = dt.datetime.combine(day, dt.time(h, m), tzinfo=LOCAL)
        req = BookingRequest(title=title, host_site_id=site("TQ").id, site_ids=[site(c).id for c in codes],
                             starts_at=starts, ends_at=starts + dt.timedelta(hours=1), draft=draft,
                             classification=Classification.RESTRICTED if restricted else Classification.NORMAL)
        booked = book_meeting(session, req)
        session.commit()  # a refused request rolls back what is not committed, the meeting included
        return booked

    return make


@pytest.fixture
def meeting(book):
    """A normal meeting of the province hall with Phường Minh Xuân, where the site staff user belongs."""
    return book("Giao ban trực tuyến quý 3", ["TQ-TP", "TQ-TP-MX"])


@pytest.fixture
def folder(app) -> Path:
    return Path(app.config["INSTANCE_PATH"]) / DOCUMENTS_FOLDER


@pytest.fixture
def stored(folder, session):
    """What is on disk and in the table: (file names, number of rows), to show a refusal left nothing behind."""

    def snapshot() -> tuple[set[str], int]:
        names = {p.name for p in folder.iterdir()} if folder.exists() else set()
        return names, session.scalar(sa.select(sa.func.count()).select_from(Document))

    return snapshot


@pytest.fixture
def user(app):
    """user(role): a test client of its own, logged in as that role, reading the interface in English."""

    def make(role: str):
        client = app.test_client()
        response = client.post("/login", data={"email": f"{role}@example.com", "password": "correct horse battery"})
        assert response.status_code == 302, response.get_data(as_text=True)
        client.get("/language/en")
        return client

    return make


@pytest.fixture
def in_request(app):
    """A request context, in English, for calling services whose refusals are translated (the locale selector
    reads the request)."""
    with app.test_request_context(), force_locale("en"):
        yield
