"""Only real PDF, DOCX, XLSX, PPTX and ODT documents are stored, checked from their content; nothing half-written
stays on disk, and no file outlives its last row."""

from __future__ import annotations

import io
import zipfile

import pytest
from flask_babel import force_locale

from app import storage
from app.agenda import service as agenda
from app.errors import Invalid

from .conftest import ELF, HTML, minimal_docx, minimal_odt, minimal_pdf, zip_bomb_like


def _upload(client, meeting, name, data):
    return client.post(f"/meetings/{meeting.id}/documents", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize(("name", "data", "problem"), [
    ("Báo cáo.pdf", HTML, "web page (HTML)"),
    ("Báo cáo.pdf", ELF, "is a program"),
    ("setup.pdf", b"MZ\x90\x00" + bytes(200), "is a program"),
    ("Kế hoạch.docx", zip_bomb_like(), "ZIP bomb"),
    ("rỗng.pdf", b"", "is empty"),
])
def test_a_file_that_is_not_what_its_name_says_is_refused_and_nothing_is_stored(
        user, meeting, stored, name, data, problem):
    client = user("secretariat")
    before = stored()
    response = _upload(client, meeting, name, data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert problem in page and name.replace("&", "&amp;") in page
    assert stored() == before


def test_a_26_mb_file_is_refused_and_nothing_is_stored(user, meeting, stored):
    client = user("secretariat")
    before = stored()
    big = b"%PDF-1.4\n" + bytes(26 * 1024 * 1024)
    response = _upload(client, meeting, "Bản đồ.pdf", big)
    assert response.status_code == 422
    assert "larger than 25 MB" in response.get_data(as_text=True)
    assert stored() == before


def test_a_document_row_that_fails_to_commit_leaves_no_file(session, meeting, folder):
    document = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf()), "a.pdf"))
    path = document.path
    assert path.is_file()
    session.rollback()
    assert not path.exists()


def test_removing_a_draft_document_removes_its_file_after_the_commit_but_not_a_published_one(
        user, meeting, session):
    client = user("secretariat")
    keep = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf("kept")), "giữ.pdf"))
    agenda.publish(session, meeting)
    drop = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_docx()), "bỏ.docx"))
    session.commit()
    keep_path, drop_path = keep.path, drop.path

    assert client.post(f"/meetings/{meeting.id}/documents/{drop.id}/remove").status_code == 302
    assert not drop_path.exists()
    assert client.post(f"/meetings/{meeting.id}/documents/{keep.id}/remove").status_code == 302
    assert keep_path.is_file()  # version 1 still holds it
    assert agenda.mail_documents(session, meeting)[0].read_bytes() == minimal_pdf("kept")


def test_replacing_an_unpublished_document_removes_the_old_file(user, meeting, session):
    client = user("secretariat")
    doc = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf("v1")), "Tờ trình.pdf"))
    session.commit()
    old = doc.path
    response = client.post(f"/meetings/{meeting.id}/documents/{doc.id}/replace",
                           data={"file": (io.BytesIO(minimal_odt()), "Tờ trình.odt")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    session.refresh(doc)
    assert not old.exists() and doc.kind == "odt" and doc.filename == "Tờ trình.odt"
    assert doc.read_bytes() == minimal_odt()


def _office(names: list[str], content_type: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b'<Types><Override PartName="/x" ContentType="' + content_type
                         + b'"/></Types>')
        for name in names:
            archive.writestr(name, b"<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "kind"), [
    (minimal_pdf(), "pdf"),
    (minimal_docx(), "docx"),
    (minimal_odt(), "odt"),
    (_office(["xl/workbook.xml"], b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"),
     "xlsx"),
    (_office(["ppt/presentation.xml"],
             b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"), "pptx"),
])
def test_each_accepted_type_is_recognised_from_its_content_whatever_its_name(tmp_path, app, data, kind):
    with app.test_request_context():
        stored = storage.store(io.BytesIO(data), "tài liệu.bin", tmp_path, 1024 * 1024)
    assert stored.kind == kind and stored.filename == f"tài liệu.bin.{kind}"
    assert (tmp_path / stored.storage_name).read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [stored.storage_name]


@pytest.mark.parametrize(("data", "problem"), [
    (_office(["word/document.xml", "word/vbaProject.bin"],
             b"application/vnd.ms-word.document.macroEnabled.main+xml"), "contains macros"),
    (_office(["xl/workbook.xml"], b"application/xml"), "not a DOCX"),
    (b"PK\x03\x04" + bytes(100), "damaged"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old-format Office file"),
])
def test_macros_archives_and_old_office_files_are_refused(tmp_path, app, data, problem):
    with app.test_request_context(), force_locale("en"), pytest.raises(Invalid) as err:
        storage.store(io.BytesIO(data), "x.docx", tmp_path, 1024 * 1024)
    assert problem in err.value.message and err.value.status == 422
    assert list(tmp_path.iterdir()) == []


def test_a_name_loses_its_folders_and_control_characters_but_keeps_its_vietnamese():
    assert storage.clean_filename("C:\\Users\\vp\\Báo cáo\x07 quý 3.pdf", "pdf") == "Báo cáo_ quý 3.pdf"
    assert storage.clean_filename("../../etc/passwd", "pdf") == "passwd.pdf"
    assert storage.clean_filename('a"b.docx', "pdf") == "a_b.pdf"
    assert storage.clean_filename("", "odt") == "document.odt"


def test_orphan_files_left_by_a_crash_are_swept(tmp_path):
    import datetime as dt

    (tmp_path / "kept.pdf").write_bytes(b"x")
    (tmp_path / "orphan.pdf").write_bytes(b"x")
    (tmp_path / ".upload-1.part").write_bytes(b"x")
    removed = storage.remove_orphan_files(tmp_path, ["kept.pdf"], older_than=dt.timedelta(seconds=-5))
    assert sorted(removed) == [".upload-1.part", "orphan.pdf"]
    assert [p.name for p in tmp_path.iterdir()] == ["kept.pdf"]


def test_the_sweep_keeps_every_file_a_row_names(session, meeting, folder):
    import datetime as dt

    document = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf()), "a.pdf"))
    stray = folder / "0123456789abcdef0123456789abcdef.pdf"
    stray.write_bytes(minimal_pdf())
    removed = agenda.sweep_orphan_files(session, older_than=dt.timedelta(seconds=-5))
    assert stray.name in removed and not stray.exists()
    assert document.path.is_file()
