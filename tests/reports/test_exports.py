"""The downloads: a spreadsheet whose numbers are numbers and dates dates, a PDF whose Vietnamese keeps its
diacritics, a CSV that opens in a spreadsheet with Vietnamese intact (UTF-8 with a byte-order mark)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from flask_babel import force_locale

from app.reports import exports
from app.reports.periods import month_bounds
from app.reports.report import build_report
from tests.reports.conftest import book, local, set_travel

LATER = dt.timedelta(days=800)


@pytest.fixture
def report(session, quiet_month):
    set_travel(session, "TQ-LB", km=40)
    day = quiet_month + dt.timedelta(days=11)
    book(session, "Giao ban trực tuyến", ["TQ-LB", "TQ-NH"], local(day, "08:00"), local(day, "10:00"))
    start, end = month_bounds(quiet_month.year, quiet_month.month)
    return build_report(session, start, end, now=dt.datetime.now(dt.UTC) + LATER)


def test_the_spreadsheet_reads_back_its_numbers_and_dates_as_typed(app, report):
    from openpyxl import load_workbook

    with app.test_request_context(), force_locale("vi"):
        data = exports.to_xlsx(report)
        sheets = {t.key: t.title for t in exports.tables(report)}
    book = load_workbook(io.BytesIO(data))

    summary = book[sheets["summary"]]
    values = {row[0].value: row[1] for row in summary.iter_rows(min_row=4) if row[0].value}
    assert values["Số buổi họp đã diễn ra"].value == 1
    assert values["Số giờ họp"].value == 2.0 and values["Số giờ họp"].data_type == "n"
    assert isinstance(values["Chi phí tránh được (đồng)"].value, int | float)

    months = book[sheets["months"]]
    rows = list(months.iter_rows(min_row=4, values_only=False))
    assert len(rows) == 12
    last = rows[-1]
    assert last[0].is_date and last[0].value.date() == report.usage[-1].month
    assert last[2].value == 1 and last[2].data_type == "n"

    sites = book[sheets["sites"]]
    names = [row[1].value for row in sites.iter_rows(min_row=4)]
    assert "Huyện Lâm Bình" in names


def test_the_pdf_holds_the_vietnamese_headings_with_their_diacritics(app, report):
    from pypdf import PdfReader

    with app.test_request_context(), force_locale("vi"):
        data = exports.to_pdf(report)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)

    for heading in ("Báo cáo hội nghị truyền hình", "Tóm tắt", "Giả định tính tiết kiệm", "Số lần họp mỗi tháng",
                    "Điểm cầu tham dự", "Tiết kiệm theo cuộc họp", "Huyện Lâm Bình", "Giao ban trực tuyến"):
        assert heading in text, heading


def test_the_csv_opens_with_vietnamese_intact_and_plain_numbers(app, report):
    with app.test_request_context(), force_locale("vi"):
        data = exports.to_csv(report)

    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark: Excel reads the file as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0].startswith("Báo cáo hội nghị truyền hình")
    flat = {row[0]: row[1:] for row in rows if row}
    assert flat["Số giờ họp"] == ["2.0"]  # a dot for decimals, no thousands separator
    assert any(row[:2] == ["TQ-LB", "Huyện Lâm Bình"] for row in rows)
    month_rows = [row for row in rows if row and len(row[0]) == 7 and row[0][4] == "-"]
    assert month_rows[-1][0] == report.usage[-1].month.strftime("%Y-%m")


def test_the_downloads_are_offered_under_their_names_by_the_page_and_the_api(app, login, api, report):
    month = report.first_day.strftime("%Y-%m")
    client = login("viewer")
    for fmt, magic in (("csv", b"\xef\xbb\xbf"), ("xlsx", b"PK\x03\x04"), ("pdf", b"%PDF-")):
        page = client.get(f"/reports/download.{fmt}?month={month}")
        assert page.status_code == 200, page.get_data(as_text=True)
        assert page.data.startswith(magic)
        assert f"bao-cao-{month}.{fmt}" in page.headers["Content-Disposition"]
        through_api = api("operator").get(f"/api/v1/reports/download/{fmt}?month={month}")
        assert through_api.status_code == 200 and through_api.data.startswith(magic)


def test_a_long_period_is_not_downloaded_in_the_request(app, login):
    response = login("viewer").get("/reports/download.pdf?from=2026-01-01&to=2026-12-31")

    assert response.status_code == 409
