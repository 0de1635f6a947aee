"""The secretariat builds a meeting's agenda, publishes it, changes it, and the sites are told what changed."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
import sqlalchemy as sa

from app.agenda import service as agenda
from app.agenda.models import AgendaItem, AgendaVersion
from app.calendar import invitations
from app.errors import Conflict, Invalid

from .conftest import minimal_docx, minimal_odt, minimal_pdf


@pytest.fixture
def notes(monkeypatch):
    """The notes the agenda passes to the invitations (whatever the calendar package does with them)."""
    sent: list[dict] = []

    def queue(session, meeting, method, occurrence_ids=None, note=None):
        sent.append({"meeting_id": meeting.id, "method": method, "occurrence_ids": occurrence_ids, "note": note})

    monkeypatch.setattr(invitations, "queue", queue)
    return sent


def _upload(client, meeting, name, data, item_id=""):
    return client.post(f"/meetings/{meeting.id}/documents", data={"file": (io.BytesIO(data), name),
                                                                   "item_id": str(item_id)},
                       content_type="multipart/form-data")


def test_secretariat_builds_publishes_and_republishes_an_agenda(user, meeting, session, notes):
    client = user("secretariat")
    for title, presenter, minutes in (("Khai mạc", "Chủ tịch UBND tỉnh", 5),
                                      ("Báo cáo tình hình kinh tế - xã hội quý 3", "Sở Kế hoạch và Đầu tư", 30),
                                      ("Thảo luận", "", 40)):
        response = client.post(f"/meetings/{meeting.id}/agenda/items",
                               data={"title": title, "presenter": presenter, "minutes": minutes})
        assert response.status_code == 302, response.get_data(as_text=True)
    items = agenda.draft_items(session, meeting)
    assert [(i.position, i.title) for i in items] == [
        (1, "Khai mạc"), (2, "Báo cáo tình hình kinh tế - xã hội quý 3"), (3, "Thảo luận")]

    pdf, docx, odt = minimal_pdf(), minimal_docx(), minimal_odt()
    assert _upload(client, meeting, "Báo cáo quý 3.pdf", pdf, items[1].id).status_code == 302
    assert _upload(client, meeting, "Kế hoạch.docx", docx).status_code == 302
    assert _upload(client, meeting, "Giấy mời.odt", odt).status_code == 302
    docs = {d.filename: d for d in agenda.draft_documents(session, meeting)}
    assert {name: d.kind for name, d in docs.items()} == {"Báo cáo quý 3.pdf": "pdf", "Kế hoạch.docx": "docx",
                                                          "Giấy mời.odt": "odt"}
    assert docs["Báo cáo quý 3.pdf"].sha256 == hashlib.sha256(pdf).hexdigest()
    assert docs["Báo cáo quý 3.pdf"].item_id == items[1].id
    assert docs["Kế hoạch.docx"].read_bytes() == docx
    assert docs["Kế hoạch.docx"].content_type.endswith("wordprocessingml.document")
    assert all(d.storage_name != d.filename and d.path.is_file() for d in docs.values())

    page = client.get(f"/meetings/{meeting.id}/agenda").get_data(as_text=True)
    assert "Publishing makes version 1" in page and "Báo cáo quý 3.pdf" in page

    response = client.post(f"/meetings/{meeting.id}/agenda/publish")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/meetings/{meeting.id}/agenda/versions/1")
    first = agenda.latest_version(session, meeting)
    assert first.number == 1 and len(first.items) == 3 and len(first.documents) == 3
    assert [n["method"] for n in notes] == ["request"] and notes[0]["meeting_id"] == meeting.id

    # Change an item's time and publish again: version 2 tells the sites exactly that.
    response = client.post(f"/meetings/{meeting.id}/agenda/items/{items[1].id}/edit",
                           data={"title": items[1].title, "presenter": items[1].presenter, "minutes": 45})
    assert response.status_code == 302
    assert client.post(f"/meetings/{meeting.id}/agenda/publish").status_code == 302
    second = agenda.latest_version(session, meeting)
    assert second.number == 2
    assert [c["kind"] for c in second.changes] == ["item_retimed"]
    note = notes[-1]["note"]
    assert "Báo cáo tình hình kinh tế - xã hội quý 3" in note and "45" in note and "30" in note
    assert second.note == note
    # Version 1 is frozen as it was sent.
    assert [i.minutes for i in first.items] == [5, 30, 40] and [i.minutes for i in second.items] == [5, 45, 40]

    page = client.get(f"/meetings/{meeting.id}/agenda/versions/2").get_data(as_text=True)
    assert "Báo cáo tình hình kinh tế - xã hội quý 3" in page and "45" in page


def test_publishing_twice_without_a_change_is_refused_with_a_clear_message(user, meeting, session, notes,
                                                                         in_request):
    client = user("secretariat")
    agenda.add_item(session, meeting, {"title": "Khai mạc", "minutes": 5})
    agenda.publish(session, meeting)
    session.commit()
    response = client.post(f"/meetings/{meeting.id}/agenda/publish")
    assert response.status_code == 409
    assert "Nothing has changed since version 1" in response.get_data(as_text=True)
    with pytest.raises(Conflict) as err:
        agenda.publish(session, meeting)
    assert err.value.code == "unchanged"
    assert session.scalar(sa.select(sa.func.count()).select_from(AgendaVersion)
                          .where(AgendaVersion.meeting_id == meeting.id)) == 1
    assert len(notes) == 1


def test_an_empty_agenda_cannot_be_published(session, meeting, notes, in_request):
    with pytest.raises(Invalid) as err:
        agenda.publish(session, meeting)
    assert err.value.code == "empty" and "empty" in err.value.message
    assert notes == []


def test_moving_items_keeps_a_contiguous_order(user, meeting, session):
    client = user("secretariat")
    a, b, c, d = (agenda.add_item(session, meeting, {"title": t, "minutes": 10}) for t in "ABCD")
    client.post(f"/meetings/{meeting.id}/agenda/items/{c.id}/move", data={"direction": "up"})
    assert [i.title for i in agenda.draft_items(session, meeting)] == ["A", "C", "B", "D"]
    client.post(f"/meetings/{meeting.id}/agenda/items/{a.id}/move", data={"direction": "up"})  # already first
    client.post(f"/meetings/{meeting.id}/agenda/items/{d.id}/move", data={"direction": "down"})  # already last
    client.post(f"/meetings/{meeting.id}/agenda/items/{b.id}/remove")
    items = agenda.draft_items(session, meeting)
    assert [(i.position, i.title) for i in items] == [(1, "A"), (2, "C"), (3, "D")]
    agenda.move_item(session, items[2], 1)
    assert [(i.position, i.title) for i in agenda.draft_items(session, meeting)] == [(1, "D"), (2, "A"), (3, "C")]


def test_the_note_names_items_added_removed_moved_and_documents_replaced(session, meeting, notes, folder):
    opening = agenda.add_item(session, meeting, {"title": "Khai mạc", "minutes": 5})
    report = agenda.add_item(session, meeting, {"title": "Báo cáo", "presenter": "Sở Tài chính", "minutes": 20})
    agenda.add_item(session, meeting, {"title": "Thảo luận", "minutes": 30})
    closing = agenda.add_item(session, meeting, {"title": "Kết luận", "minutes": 10})
    doc = agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf("v1")), "Dự toán.pdf"), report)
    agenda.publish(session, meeting)
    first_file = doc.path

    agenda.remove_item(session, opening)
    agenda.add_item(session, meeting, {"title": "Phát biểu của đại biểu", "minutes": 15})
    agenda.update_item(session, report, {"presenter": "Sở Kế hoạch và Đầu tư"})
    agenda.replace_document(session, doc, agenda.Upload(io.BytesIO(minimal_pdf("v2")), "Dự toán.pdf"))
    agenda.move_item(session, closing, 1)
    version = agenda.publish(session, meeting)
    kinds = sorted(c["kind"] for c in version.changes)
    assert kinds == ["document_replaced", "item_added", "item_moved", "item_presenter", "item_removed"]
    note = notes[-1]["note"]
    assert [c["title"] for c in version.changes if c["kind"] == "item_moved"] == ["Kết luận"]
    for words in ("Khai mạc", "Phát biểu của đại biểu", "Sở Kế hoạch và Đầu tư", "Dự toán.pdf", "Kết luận"):
        assert words in note
    # Version 1 still reads its own file; the draft reads the new one.
    assert first_file.is_file() and doc.path != first_file
    first = agenda.get_version(session, meeting, 1)
    assert first.documents[0].read_bytes() == minimal_pdf("v1")


def test_publishing_a_draft_meeting_sends_nothing_yet(session, book, notes):
    draft = book("Họp dự kiến", ["TQ-LB"], draft=True)
    agenda.add_item(session, draft, {"title": "Khai mạc", "minutes": 5})
    assert agenda.publish(session, draft).number == 1
    assert notes == []


def test_the_mail_helper_gets_the_published_items_and_documents(session, meeting, book):
    item = agenda.add_item(session, meeting, {"title": "Báo cáo", "minutes": 20})
    agenda.add_document(session, meeting, agenda.Upload(io.BytesIO(minimal_pdf()), "a.pdf"), item)
    assert agenda.current_items(session, meeting) == [] and agenda.mail_documents(session, meeting) == []
    agenda.publish(session, meeting)
    agenda.add_item(session, meeting, {"title": "Chưa công bố", "minutes": 5})
    assert [i.title for i in agenda.current_items(session, meeting)] == ["Báo cáo"]
    [document] = agenda.mail_documents(session, meeting)
    assert document.version_id is not None and document.filename == "a.pdf"
    assert document.content_type == "application/pdf" and document.read_bytes() == minimal_pdf()
    url = agenda.signed_download_url(document)
    assert url.startswith("http://127.0.0.1:5000/meetings/documents/signed/")

    restricted = book("Họp mật", ["TQ-NH"], restricted=True, start="13:00")
    agenda.add_document(session, restricted, agenda.Upload(io.BytesIO(minimal_pdf()), "mật.pdf"))
    agenda.publish(session, restricted)
    assert agenda.mail_documents(session, restricted) == []
    assert len(agenda.current_items(session, restricted)) == 0


def test_viewers_read_the_agenda_but_cannot_change_it(user, meeting, session):
    agenda.add_item(session, meeting, {"title": "Khai mạc", "minutes": 5})
    agenda.publish(session, meeting)
    session.commit()
    client = user("viewer")
    page = client.get(f"/meetings/{meeting.id}/agenda")
    assert page.status_code == 200 and "Khai mạc" in page.get_data(as_text=True)
    assert client.post(f"/meetings/{meeting.id}/agenda/items", data={"title": "X", "minutes": 1}).status_code == 403
    assert client.post(f"/meetings/{meeting.id}/agenda/publish").status_code == 403
    assert session.scalar(sa.select(sa.func.count()).select_from(AgendaItem).where(
        AgendaItem.meeting_id == meeting.id, AgendaItem.version_id.is_(None))) == 1


def test_a_bad_item_is_refused_next_to_its_field(user, meeting, session):
    client = user("secretariat")
    response = client.post(f"/meetings/{meeting.id}/agenda/items", data={"title": "", "minutes": 900})
    assert response.status_code == 422
    assert agenda.draft_items(session, meeting) == []


def test_publishing_queues_the_invitation_with_the_note_after_the_commit(session, meeting):
    from app.queue.models import OutboxMessage

    agenda.add_item(session, meeting, {"title": "Khai mạc", "minutes": 5})
    sequence = meeting.sequence
    version = agenda.publish(session, meeting)
    message = session.scalars(sa.select(OutboxMessage).where(OutboxMessage.task == "calendar.send_invitations")
                              .order_by(OutboxMessage.id.desc())).first()
    assert message.payload["meeting_id"] == meeting.id and message.payload["method"] == "request"
    assert message.payload["note"] == version.note and "1" in version.note
    assert meeting.sequence > sequence  # calendars take the update


def test_the_upload_form_carries_its_csrf_token(user, meeting, session, monkeypatch, app):
    client = user("secretariat")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    page = client.get(f"/meetings/{meeting.id}/agenda").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = {"file": (io.BytesIO(minimal_pdf()), "a.pdf")}
    assert client.post(f"/meetings/{meeting.id}/documents", data=data,
                       content_type="multipart/form-data").status_code == 400
    data = {"file": (io.BytesIO(minimal_pdf()), "a.pdf"), "csrf_token": token}
    assert client.post(f"/meetings/{meeting.id}/documents", data=data,
                       content_type="multipart/form-data").status_code == 302
    assert [d.filename for d in agenda.draft_documents(session, meeting)] == ["a.pdf"]
