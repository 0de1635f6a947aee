"""Last month's report is produced on the first working day of each month, kept for download and mailed to the
configured recipients through a real SMTP server (aiosmtpd), retried like invitations; a long period's report is
built by the queue on demand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope, db
from app.reports import monthly
from app.reports.models import ReportKind, ReportStatus, StoredReport
from app.sites.demo import seed
from tests.calendar.conftest import Recorder, smtp, smtp_server  # noqa: F401  (fixtures: the SMTP server)
from tests.conftest import PASSWORD
from tests.reports.conftest import LOCAL, book, local, set_travel
from tests.support.outbox import drain_outbox

RECIPIENTS = ["lanhdao@tuyenquang.example.gov.vn", "vanphong@tuyenquang.example.gov.vn"]


@pytest.fixture
def province(fresh_app: Any, smtp_server: tuple[Recorder, int], smtp: Recorder) -> Any:  # noqa: F811
    _recorder, port = smtp_server
    app = fresh_app("sqlite", SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=False, SMTP_TIMEOUT=10,
                    REPORT_RECIPIENTS=", ".join(RECIPIENTS), DEFAULT_LANGUAGE="vi", REPORT_MONTHLY_HOUR=7,
                    BASE_URL="https://vcops.example.gov.vn")
    with app.app_context():
        with commit_scope() as session:
            seed(session)
            create_user(session, "viewer@example.com", Role.VIEWER, PASSWORD, name="viewer")
        db.session.remove()
        yield app
        db.session.remove()


def _first_working_day_next_month(config: Any) -> tuple[dt.date, dt.date]:
    """A month ahead (its meetings can be booked) and the first working day of the month after it."""
    today = dt.date.today()
    index = today.year * 12 + today.month  # the month after this one, counted from year 0 (months 0-11)
    month = dt.date(index // 12, index % 12 + 1, 1)
    after = dt.date((index + 1) // 12, (index + 1) % 12 + 1, 1)
    return month, monthly.first_working_day(after.year, after.month, config)


def _meeting_in(month: dt.date) -> None:
    with commit_scope() as session:
        set_travel(session, "TQ-LB", km=40)
        day = month + dt.timedelta(days=14)
        book(session, "Giao ban tháng", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "10:00"))
    db.session.remove()


def _due(at: dt.datetime) -> StoredReport | None:
    with commit_scope() as session:
        row = monthly.monthly_due(session, now=at)
        result = row.id if row is not None else None
    db.session.remove()
    return db.session.get(StoredReport, result) if result else None


def test_the_first_working_day_skips_weekends_and_the_configured_holidays() -> None:
    config = {"REPORT_HOLIDAYS": "01-01, 2027-05-03"}

    assert monthly.first_working_day(2027, 1, config) == dt.date(2027, 1, 4)  # Fri 1 Jan is a holiday, then a weekend
    assert monthly.first_working_day(2027, 5, config) == dt.date(2027, 5, 4)  # Sat, Sun, then Mon 3 May off
    assert monthly.first_working_day(2027, 3, config) == dt.date(2027, 3, 1)  # a Monday


def test_last_months_report_is_kept_and_mailed_with_its_attachments(province: Any, smtp: Recorder) -> None:  # noqa: F811
    with province.app_context():
        month, first_day = _first_working_day_next_month(province.config)
        _meeting_in(month)

        assert _due(local(first_day, "06:30")) is None  # before REPORT_MONTHLY_HOUR
        row = _due(local(first_day, "07:05"))
        assert row is not None and row.kind is ReportKind.MONTHLY and row.status is ReportStatus.READY
        assert _due(local(first_day, "09:00")) is None  # once: the month's report is there
        assert db.session.scalar(sa.select(sa.func.count(StoredReport.id))) == 1
        assert sorted(n.rsplit(".", 1)[1] for n in row.files) == ["csv", "pdf", "xlsx"]
        assert all(monthly.file_path(row, n).stat().st_size > 0 for n in row.files)
        assert row.title == f"Báo cáo hội nghị truyền hình, Tháng {month:%m/%Y}, Toàn tỉnh"
        db.session.remove()

        assert drain_outbox() == []

    for address in RECIPIENTS:
        [message] = smtp.to(address)
        assert str(message["Subject"]) == f"Báo cáo hội nghị truyền hình, Tháng {month:%m/%Y}, Toàn tỉnh"
        names = sorted(part.get_filename() for part in message.iter_attachments())
        assert names == [f"bao-cao-{month:%Y-%m}.{ext}" for ext in ("csv", "pdf", "xlsx")]
        pdf = next(p for p in message.iter_attachments() if p.get_filename().endswith(".pdf"))
        assert pdf.get_content_type() == "application/pdf" and pdf.get_payload(decode=True).startswith(b"%PDF-")
        assert "https://vcops.example.gov.vn/reports/" in message.get_body(("plain",)).get_content()
    with province.app_context():
        assert sorted(db.session.get(StoredReport, row.id).mailed_to) == sorted(RECIPIENTS)


def test_a_recipient_refused_for_now_is_tried_again_and_the_others_get_one_mail(province: Any,
                                                                                 smtp: Recorder) -> None:  # noqa: F811
    smtp.refuse[RECIPIENTS[0]] = "451 4.3.0 mailbox busy, try later"
    with province.app_context():
        month, first_day = _first_working_day_next_month(province.config)
        row = _due(local(first_day, "08:00"))

        errors = drain_outbox(keep_going=True)
        assert len(errors) == 1 and "not mailed" in str(errors[0])  # raised: the queue retries it
        assert smtp.to(RECIPIENTS[0]) == [] and len(smtp.to(RECIPIENTS[1])) == 1
        assert "451" in db.session.get(StoredReport, row.id).mail_reply
        db.session.remove()

        smtp.refuse.clear()
        assert drain_outbox() == []  # the retry (as the queue or the outbox sweep would run it)

    assert len(smtp.to(RECIPIENTS[0])) == 1 and len(smtp.to(RECIPIENTS[1])) == 1


def test_a_report_over_a_long_period_is_built_by_the_queue_and_kept_for_download(province: Any) -> None:
    client = province.test_client()
    client.post("/login", data={"email": "viewer@example.com", "password": PASSWORD})
    today = dt.datetime.now(LOCAL).date()
    first = dt.date(today.year - 1, 1, 1)
    last = dt.date(today.year - 1, 12, 31)

    page = client.get(f"/reports/?from={first}&to={last}")
    assert "Lập báo cáo này" in page.get_data(as_text=True)  # offered on the queue, not computed in the request
    asked = client.post("/reports/kept", data={"from": first.isoformat(), "to": last.isoformat()})
    assert asked.status_code == 302

    with province.app_context():
        [row] = db.session.scalars(sa.select(StoredReport))
        assert row.status is ReportStatus.QUEUED
        db.session.remove()
        assert drain_outbox() == []
        row = db.session.get(StoredReport, row.id)
        assert row.status is ReportStatus.READY and row.kind is ReportKind.ON_DEMAND
        pdf = next(n for n in row.files if n.endswith(".pdf"))
        row_id = row.id
        db.session.remove()

    download = client.get(f"/reports/kept/{row_id}/{pdf}")
    assert download.status_code == 200 and download.data.startswith(b"%PDF-")
    assert pdf in client.get("/reports/").get_data(as_text=True)
