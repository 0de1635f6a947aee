"""Office documents that unpack to far more than they weigh are refused at upload, and one invitation never carries
more than MAIL_ATTACHMENTS_MAX_BYTES of attachments: the rest of a large agenda goes as signed links.

The bombs are real: deflated zeros written in a temporary folder, a megabyte on disk at most."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from app import storage
from app.agenda import service as agenda
from app.errors import Invalid

from .conftest import minimal_docx, minimal_pdf

CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
MB = 1024 * 1024


def _bomb(path: Path, parts: dict[str, int]) -> Path:
    """A DOCX whose parts are `parts[name]` MB of zeros each, deflated as hard as deflate goes (about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        for name, megabytes in parts.items():
            with archive.open(name, "w", force_zip64=megabytes > 2000) as fh:
                zeros = bytes(MB)
                for _chunk in range(megabytes):
                    fh.write(zeros)
    return path


def _refused(path: Path, name: str = "Kế hoạch.docx") -> Invalid:
    with pytest.raises(Invalid) as refused:
        storage.identify(path, name)
    return refused.value


def _upload(client, meeting, name: str, data: bytes):
    return client.post(f"/meetings/{meeting.id}/documents", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_a_docx_of_a_megabyte_that_unpacks_to_900_mb_is_refused_at_upload_and_nothing_is_stored(
        tmp_path, user, meeting, stored):
    bomb = _bomb(tmp_path / "bomb.docx", {"word/document.xml": 900})
    assert bomb.stat().st_size < 1.5 * MB  # small on disk, as the one that was mailed to every site
    before = stored()

    response = _upload(user("secretariat"), meeting, "Kế hoạch.docx", bomb.read_bytes())

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Kế hoạch.docx" in page and "ZIP bomb" in page and "at most 100 MB" in page
    assert stored() == before


def test_the_parts_sizes_are_summed_so_a_bomb_split_in_many_parts_is_refused_too(tmp_path):
    # Each part alone (30 MB) is well under the limit; together they unpack to 150 MB.
    bomb = _bomb(tmp_path / "many.docx", {"word/document.xml": 30, **{f"word/media/p{i}.bin": 30 for i in range(4)}})
    refused = _refused(bomb)
    assert "150 MB" in refused.message and refused.fields == {"file": ["unpacks to more than 100 MB"]}


def test_a_document_compressed_far_beyond_any_real_one_is_refused_even_under_the_size_limit(tmp_path):
    bomb = _bomb(tmp_path / "dense.docx", {"word/document.xml": 40})  # 40 MB from about 40 KB
    refused = _refused(bomb)
    assert "more than 100 times its size" in refused.message
    assert refused.fields == {"file": ["compressed more than 100 to 1"]}


def test_a_docx_whose_headers_hide_how_much_it_unpacks_to_is_refused_as_damaged(tmp_path):
    # Both the local header and the central directory say the part unpacks to 1 KB; it really holds 20 MB.
    data = bytearray(_bomb(tmp_path / "forged.docx", {"word/document.xml": 20}).read_bytes())
    real = (20 * MB).to_bytes(4, "little")
    forged = (1024).to_bytes(4, "little")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature)
        while start != -1:
            if data[start + offset:start + offset + 4] == real:
                data[start + offset:start + offset + 4] = forged
            start = data.find(signature, start + 4)
    path = tmp_path / "forged-headers.docx"
    path.write_bytes(bytes(data))
    refused = _refused(path)
    assert "damaged" in refused.message


def test_an_ordinary_docx_and_a_real_sized_report_are_still_accepted(tmp_path):
    plain = tmp_path / "plain.docx"
    plain.write_bytes(minimal_docx())
    assert storage.identify(plain, "Báo cáo.docx") == "docx"
    # A 15 MB report of varied text compresses a few times over, as real ones do.
    report = tmp_path / "report.docx"
    line = "".join(f"<w:p><w:r><w:t>Mục {i}: số liệu {i * 7919 % 100003} xã, phường</w:t></w:r></w:p>"
                   for i in range(200_000)).encode()
    with zipfile.ZipFile(report, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", line)
    assert storage.identify(report, "Báo cáo năm.docx") == "docx"


def test_an_agenda_larger_than_one_mail_attaches_what_fits_and_links_the_rest(session, meeting, monkeypatch):
    monkeypatch.setattr(agenda, "MAIL_ATTACHMENTS_MAX_BYTES", 3000)
    first = minimal_pdf("a" * 1500)  # about 2 KB each: two of them do not fit together
    names = ["Giấy mời.pdf", "Báo cáo.pdf", "Phụ lục.pdf"]
    documents = [agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(data), name))
                 for name, data in zip(names, [first, minimal_pdf("b" * 1500), minimal_pdf("c")], strict=True)]
    agenda.publish(session, meeting)
    session.commit()
    sizes = [d.size for d in documents]
    assert sizes[0] + sizes[1] > 3000 >= sizes[0] + sizes[2]

    attached = [d.filename for d in agenda.mail_documents(session, meeting)]
    linked = [d.filename for d in agenda.linked_documents(session, meeting)]

    assert attached == ["Giấy mời.pdf", "Phụ lục.pdf"]  # the small one further down still goes along
    assert linked == ["Báo cáo.pdf"]
    assert all(agenda.signed_download_url(d).startswith("http") for d in agenda.linked_documents(session, meeting))


def test_the_attachments_of_one_invitation_stay_within_ten_megabytes_by_default(session, meeting):
    assert agenda.MAIL_ATTACHMENTS_MAX_BYTES == 10 * MB
    document = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf()), "Giấy mời.pdf"))
    agenda.publish(session, meeting)
    session.commit()
    assert [d.sha256 for d in agenda.mail_documents(session, meeting)] == [document.sha256]
    assert agenda.linked_documents(session, meeting) == []
