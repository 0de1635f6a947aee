"""Reports room: a Report as tables (the page's and the downloads' one source), and as CSV, XLSX and PDF files.

- CSV: UTF-8 with a byte-order mark (so Excel opens Vietnamese intact), comma-separated, one table after another,
  each under its title and followed by a blank line; numbers with a dot for decimals and no thousands separator,
  dates as YYYY-MM-DD (what every spreadsheet reads as a date).
- XLSX (openpyxl): a sheet per table; numbers are numbers and dates are dates, with display formats.
- PDF (fpdf2): the DejaVu Sans font vendored under app/static/fonts (its licence beside it), so Vietnamese keeps its
  diacritics; the charts drawn as bars from app.reports.charts, then the tables.
Texts are in the language of the caller's locale (the monthly mail: DEFAULT_LANGUAGE).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask_babel import format_decimal
from flask_babel import gettext as _

from app.reports import charts
from app.reports.report import Report
from app.sites.models import LinkMedium

FONTS = Path(__file__).resolve().parent.parent / "static" / "fonts"
# fpdf2 subsets the font with fontTools, which logs every table it touches at INFO: a screenful per report.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)
WORST_LINKS = 10
AREA_TARGET = 99.0  # an area below this is drawn in the warning colour (links have their medium's own target)

# Column kinds: how a value is written and formatted.
TEXT, INT, NUMBER, MONEY, PERCENT, HOURS, MS, DATE, MONTH, DATETIME = (
    "text", "int", "number", "money", "percent", "hours", "ms", "date", "month", "datetime")
XLSX_FORMATS = {INT: "#,##0", NUMBER: "#,##0.0", MONEY: "#,##0", PERCENT: '0.00" %"', HOURS: "#,##0.0",
                MS: "#,##0.0", DATE: "dd/mm/yyyy", MONTH: "mm/yyyy", DATETIME: "dd/mm/yyyy hh:mm"}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "pdf": "application/pdf"}
FORMATS = tuple(CONTENT_TYPES)


@dataclass
class Column:
    label: str
    kind: str = TEXT


@dataclass
class Table:
    key: str  # stable name (sheet order, tests, the API)
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class Assumption:
    label: str
    value: Any
    kind: str
    setting: str  # the VCOPS_ variable that sets it


# ---------------------------------------------------------------- labels

def period_label(report: Report) -> str:
    if report.is_one_month:
        return _("Month %(month)s", month=report.first_day.strftime("%m/%Y"))
    return _("%(first)s to %(last)s", first=report.first_day.strftime("%d/%m/%Y"),
             last=report.last_day.strftime("%d/%m/%Y"))


def scope_label(report: Report) -> str:
    return report.site.name if report.site is not None else _("Whole province")


def title(report: Report) -> str:
    return _("Video-conference report, %(period)s, %(scope)s", period=period_label(report), scope=scope_label(report))


def filename(report: Report, fmt: str) -> str:
    start = report.first_day
    name = f"bao-cao-{start:%Y-%m}" if report.is_one_month else f"bao-cao-{start:%Y%m%d}-{report.last_day:%Y%m%d}"
    if report.site is not None:
        name += f"-{report.site.code}"
    return f"{name}.{fmt}"


def _level_kind(key: str) -> str:
    return {"normal": _("normal"), "restricted": _("restricted"), "single": _("single meeting"),
            "series": _("recurring series")}.get(key, key)


def _medium(medium: LinkMedium | None) -> str:
    labels = {LinkMedium.DEDICATED: _("dedicated data network"), LinkMedium.INTERNET: _("internet"),
              LinkMedium.MOBILE_BACKUP: _("mobile backup")}
    return labels.get(medium, "") if medium is not None else ""


def assumptions(report: Report) -> list[Assumption]:
    a = report.savings.assumptions
    return [
        Assumption(_("People per site (unless the meeting sets its own)"), a.people_per_site, INT,
                   "REPORT_PEOPLE_PER_SITE"),
        Assumption(_("Road distance over straight-line distance"), a.road_factor, NUMBER, "REPORT_ROAD_FACTOR"),
        Assumption(_("Average travel speed (km/h)"), a.speed_kmh, NUMBER, "REPORT_TRAVEL_SPEED_KMH"),
        Assumption(_("Cost per person and kilometre (đồng)"), a.cost_per_km, MONEY, "REPORT_COST_PER_KM"),
        Assumption(_("Cost per person and hour on the road (đồng)"), a.cost_per_hour, MONEY, "REPORT_COST_PER_HOUR"),
    ]


# ---------------------------------------------------------------- the tables

def tables(report: Report) -> list[Table]:
    m, s, n = report.meetings, report.savings, report.network
    out = [Table("summary", _("Summary"), [Column(_("Figure")), Column(_("Value"), NUMBER)], [
        [_("Occurrences scheduled"), m.scheduled],
        [_("Occurrences held"), m.held],
        [_("Occurrences cancelled"), m.cancelled],
        [_("Occurrences still to come"), m.upcoming],
        [_("Meetings held"), m.meetings_held],
        [_("Hours of meetings"), round(m.hours, 2)],
        [_("Sites taking part"), m.sites_taking_part],
        [_("Site connections"), m.site_connections],
        [_("Travel avoided (person-km)"), round(s.person_km, 1)],
        [_("Time on the road avoided (person-hours)"), round(s.person_hours, 1)],
        [_("Cost avoided (đồng)"), round(s.cost)],
        [_("Paper saved (pages)"), s.paper_pages],
        [_("Network availability (%)"), round(n.availability, 3) if n.availability is not None else None],
        [_("Incidents"), n.incidents.count],
    ], note=_("Held: occurrences neither cancelled nor drafts whose end has passed, read from the bookings "
              "(call records are not kept yet)."))]
    out.append(Table("assumptions", _("Assumptions of the savings"),
                     [Column(_("Assumption")), Column(_("Value"), NUMBER), Column(_("Setting"))],
                     [[a.label, a.value, f"VCOPS_{a.setting}"] for a in assumptions(report)],
                     note=_("Each site taking part, other than the host, would have sent its people on a round "
                            "trip to the host site: the road distance is the straight line between the sites' "
                            "coordinates times the road factor, or the distance and time the province set for "
                            "the site when the host is the province's seat. Paper: pages of the documents "
                            "published electronically times the people who would have had a printed copy.")))
    out.append(Table("months", _("Meetings per month"),
                     [Column(_("Month"), MONTH), Column(_("Meetings"), INT), Column(_("Occurrences"), INT),
                      Column(_("Hours"), HOURS), Column(_("Site connections"), INT)],
                     [[u.month, u.meetings, u.occurrences, round(u.hours, 2), u.site_connections]
                      for u in report.usage or m.months]))
    by = [[_("Host level"), level, count] for level, count in m.by_host_level.items()]
    by += [[_("Level of the sites taking part"), level, count] for level, count in m.by_site_level.items()]
    by += [[_("Classification"), _level_kind(k), count] for k, count in m.by_classification.items()]
    by += [[_("Kind"), _level_kind(k), count] for k, count in m.by_kind.items()]
    out.append(Table("breakdown", _("Occurrences held by level and kind"),
                     [Column(_("Grouped by")), Column(_("Group")), Column(_("Count"), INT)], by,
                     note=_("Levels of the sites count site connections; the others count occurrences.")))
    out.append(Table("sites", _("Attendance per site"),
                     [Column(_("Code")), Column(_("Site")), Column(_("Level")), Column(_("Invited"), INT),
                      Column(_("Confirmed"), INT), Column(_("Connected"), INT), Column(_("Declined"), INT),
                      Column(_("Hours"), HOURS)],
                     [[r.code, r.name, r.level, r.invited, r.confirmed, r.connected, r.declined, round(r.hours, 2)]
                      for r in m.sites],
                     note=_("Connected is read from the bookings until call records exist; the calendar records "
                            "no declines yet.")))
    out.append(Table("savings", _("Savings per meeting"),
                     [Column(_("Meeting")), Column(_("Occurrences"), INT), Column(_("Site trips"), INT),
                      Column(_("People per site"), INT), Column(_("Person-km"), NUMBER),
                      Column(_("Person-hours"), HOURS), Column(_("Cost (đồng)"), MONEY),
                      Column(_("Document pages"), INT), Column(_("Paper saved (pages)"), INT)],
                     [[r.title, r.occurrences, r.sites, r.people, round(r.person_km, 1), round(r.person_hours, 2),
                       round(r.cost), r.pages, r.paper_pages] for r in s.meetings],
                     note=_("%(sites)s site trips without coordinates or a set distance count nothing; "
                            "%(docs)s documents that are not PDF count no pages.",
                            sites=s.sites_without_distance, docs=s.documents_without_pages)))
    out.append(Table("savings_months", _("Savings per month"),
                     [Column(_("Month"), MONTH), Column(_("Person-km"), NUMBER), Column(_("Person-hours"), HOURS),
                      Column(_("Cost (đồng)"), MONEY), Column(_("Paper saved (pages)"), INT)],
                     [[r.month, round(r.person_km, 1), round(r.person_hours, 2), round(r.cost), r.paper_pages]
                      for r in s.months]))
    out.append(Table("areas", _("Availability per area"),
                     [Column(_("Code")), Column(_("Area")), Column(_("Links"), INT), Column(_("Endpoints"), INT),
                      Column(_("Minutes down"), NUMBER), Column(_("Availability (%)"), PERCENT)],
                     [[a.code, a.name, a.links, a.endpoints, round(a.minutes_down, 1), _round(a.availability, 3)]
                      for a in n.areas],
                     note=_("Availability: probe steps up over steps measured; every area covers its subtree.")))
    out.append(Table("links", _("Links, worst first"),
                     [Column(_("Link")), Column(_("Site")), Column(_("Medium")), Column(_("Availability (%)"), PERCENT),
                      Column(_("Target (%)"), PERCENT), Column(_("Minutes down"), NUMBER),
                      Column(_("Round trip (ms)"), MS), Column(_("Loss (%)"), PERCENT), Column(_("Jitter (ms)"), MS)],
                     [[f.code, f.site_name, _medium(f.medium), _round(f.availability, 3), f.target,
                       round(f.minutes_down, 1), _ms(f.rtt_mean), _round(f.loss, 3), _ms(f.jitter)]
                      for f in worst_links(report, limit=None)]))
    i = n.incidents
    out.append(Table("incidents", _("Incidents"), [Column(_("Figure")), Column(_("Value"), NUMBER)], [
        [_("Incidents started in the period"), i.count],
        [_("Acknowledged"), i.acknowledged.count],
        [_("Mean time to acknowledge (minutes)"), _minutes(i.acknowledged.mean)],
        [_("Resolved"), i.resolved.count],
        [_("Mean time to resolve (minutes)"), _minutes(i.resolved.mean)],
        [_("95th percentile time to resolve (minutes)"), _minutes(i.resolved.p95)],
    ]))
    return out


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 1) if seconds is not None else None


def worst_links(report: Report, limit: int | None = WORST_LINKS) -> list[Any]:
    measured = [f for f in report.network.links if f.availability is not None]
    ordered = sorted(measured, key=lambda f: (f.availability, -(f.loss or 0), f.code))
    return ordered if limit is None else ordered[:limit]


def areas_under(report: Report) -> list[Any]:
    """The areas directly under the chosen one: the districts of the province, the communes of a district."""
    # The root is the area whose parent is not listed: a district's report has a root with a parent.
    listed = {a.site_id for a in report.network.areas}
    root_id = report.site.id if report.site is not None else next(
        (a.site_id for a in report.network.areas if a.parent_id not in listed), None)
    return [a for a in report.network.areas if a.parent_id == root_id and root_id is not None]


# ---------------------------------------------------------------- charts

def percent_text(value: float | None) -> str:
    return "—" if value is None else f"{format_decimal(round(value, 2), format='#,##0.00')} %"


def usage_chart(report: Report, width: float = 720, height: float = 160) -> charts.BarChart:
    return charts.columns([(u.month.strftime("%m/%y"), u.occurrences, str(u.occurrences)) for u in report.usage],
                          width=width, height=height)


def areas_chart(report: Report, width: float = 720, **size: float) -> charts.BarChart:
    items = [(a.name, a.availability or 0.0, percent_text(a.availability), (a.availability or 0) < AREA_TARGET)
             for a in areas_under(report) if a.availability is not None]
    return charts.rows(items, width=width, top=100.0, **size)


def links_chart(report: Report, width: float = 720, **size: float) -> charts.BarChart:
    items = [(f"{f.code} · {f.site_name}", f.availability or 0.0, percent_text(f.availability), f.below_target)
             for f in worst_links(report)]
    return charts.rows(items, width=width, top=100.0, **size)


# ---------------------------------------------------------------- CSV

def _csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if kind == MONTH and isinstance(value, dt.date):
        return value.strftime("%Y-%m")
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def to_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title(report)])
    writer.writerow([_("Generated at"), report.generated_at.astimezone(report.tz).strftime("%Y-%m-%d %H:%M")])
    writer.writerow([])
    for table in tables(report):
        writer.writerow([table.title])
        writer.writerow([c.label for c in table.columns])
        for row in table.rows:
            writer.writerow([_csv_value(v, c.kind) for v, c in zip(row, table.columns, strict=True)])
        if table.note:
            writer.writerow([table.note])
        writer.writerow([])
    return out.getvalue().encode("utf-8-sig")


# ---------------------------------------------------------------- XLSX

def _sheet_name(text: str, used: set[str]) -> str:
    name = "".join("_" if ch in "[]:*?/\\" else ch for ch in text)[:31]
    base, n = name, 2
    while name in used:
        suffix = f" {n}"
        name, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(name)
    return name


def to_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    used: set[str] = set()
    bold = Font(bold=True)
    for table in tables(report):
        sheet = book.create_sheet(_sheet_name(table.title, used))
        sheet.append([title(report)])
        sheet["A1"].font = bold
        sheet.append([])
        sheet.append([c.label for c in table.columns])
        for cell in sheet[3]:
            cell.font = bold
        for row in table.rows:
            values = []
            for value in row:
                if isinstance(value, dt.datetime):  # Excel has no time zones: the local wall time
                    value = value.astimezone(report.tz).replace(tzinfo=None)
                values.append(value)
            sheet.append(values)
            for cell, column in zip(sheet[sheet.max_row], table.columns, strict=True):
                if column.kind in XLSX_FORMATS and cell.value is not None and not isinstance(cell.value, str):
                    cell.number_format = XLSX_FORMATS[column.kind]
        if table.note:
            sheet.append([])
            sheet.append([table.note])
        for index, column in enumerate(table.columns, start=1):
            widest = max([len(column.label)] + [len(str(r[index - 1] or "")) for r in table.rows])
            sheet.column_dimensions[get_column_letter(index)].width = min(max(widest + 2, 10), 60)
        sheet.freeze_panes = "A4"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- PDF

def _pdf_text(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == MONTH and isinstance(value, dt.date):
        return value.strftime("%m/%Y")
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str):
        return value
    if kind == PERCENT:
        return percent_text(value)
    if kind in (MONEY, INT) or isinstance(value, int):
        return format_decimal(value, format="#,##0")
    return format_decimal(value, format="#,##0.##")


def to_pdf(report: Report) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(orientation="landscape", unit="mm", format="A4")
    pdf.set_title(title(report))
    pdf.set_creator("VCOps")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def heading(text: str, size: float = 13) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(width, size * 0.55, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)

    def body(text: str, size: float = 8.5) -> None:
        pdf.set_font("DejaVu", "", size)
        pdf.multi_cell(width, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)

    heading(title(report), 15)
    body(_("Generated at %(when)s", when=report.generated_at.astimezone(report.tz).strftime("%d/%m/%Y %H:%M")))
    all_tables = {t.key: t for t in tables(report)}
    _pdf_table(pdf, all_tables["summary"], width)
    heading(all_tables["assumptions"].title)
    _pdf_table(pdf, all_tables["assumptions"], width, with_title=False)

    rows_mm = {"row_height": 6.0, "label_width": 90.0}
    for chart_title, chart in ((_("Occurrences held per month, last 12 months"), usage_chart(report, 270, 60)),
                               (_("Availability per area"), areas_chart(report, 270, **rows_mm)),
                               (_("The worst links"), links_chart(report, 270, **rows_mm))):
        heading(chart_title)
        if chart.empty:
            body(_("No figures for this period."))
            continue
        _pdf_chart(pdf, chart)

    for key in ("months", "breakdown", "sites", "savings", "savings_months", "areas", "links", "incidents"):
        _pdf_table(pdf, all_tables[key], width)
    return bytes(pdf.output())


def _pdf_chart(pdf: Any, chart: charts.BarChart) -> None:
    """The chart's coordinates are millimetres of the page, from the current line."""
    if pdf.get_y() + chart.height + 4 > pdf.h - pdf.b_margin:
        pdf.add_page()
    x0, y0 = pdf.l_margin, pdf.get_y()
    pdf.set_font("DejaVu", "", 7)
    for bar in chart.bars:
        pdf.set_fill_color(*((200, 60, 50) if bar.bad else (45, 110, 180)))
        bx, by = x0 + bar.x, y0 + bar.y
        if bar.width > 0 and bar.height > 0:
            pdf.rect(bx, by, bar.width, bar.height, style="F")
        if chart.horizontal:
            pdf.set_xy(x0, by)
            pdf.cell(chart.label_width - 2, bar.height, bar.label[:70], align="R")
            pdf.set_xy(bx + bar.width + 1, by)
            pdf.cell(30, bar.height, bar.shown)
        else:
            pdf.set_xy(bx - 2, by - 4)
            pdf.cell(bar.width + 4, 4, bar.shown, align="C")
            pdf.set_xy(bx - 2, y0 + chart.height - 14)
            pdf.cell(bar.width + 4, 4, bar.label, align="C")
    pdf.set_y(y0 + chart.height + 4)


def _pdf_table(pdf: Any, table: Table, width: float, *, with_title: bool = True) -> None:
    from fpdf.fonts import FontFace

    if with_title:
        if pdf.get_y() > pdf.h - 40:
            pdf.add_page()
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(width, 7, table.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 7.5)
    if not table.rows:
        pdf.cell(width, 5, _("No figures for this period."), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        return
    aligns = tuple("LEFT" if c.kind == TEXT else "RIGHT" for c in table.columns)
    with pdf.table(width=width, text_align=aligns, line_height=4.2, padding=0.8,
                   headings_style=FontFace(emphasis="BOLD", fill_color=(230, 236, 244))) as grid:
        header = grid.row()
        for column in table.columns:
            header.cell(column.label)
        for row in table.rows:
            line = grid.row()
            for value, column in zip(row, table.columns, strict=True):
                line.cell(_pdf_text(value, column.kind))
    if table.note:
        pdf.set_font("DejaVu", "", 7)
        pdf.multi_cell(width, 3.5, table.note, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def render(report: Report, fmt: str) -> bytes:
    if fmt == "csv":
        return to_csv(report)
    if fmt == "xlsx":
        return to_xlsx(report)
    if fmt == "pdf":
        return to_pdf(report)
    raise ValueError(f"unknown report format {fmt!r}")
