"""Reports room: reports kept for download — last month's, produced on the first working day of each month and
mailed to REPORT_RECIPIENTS, and those asked for on demand (built by the queue when the period is long).

The monthly report is due from REPORT_MONTHLY_HOUR (local) on the first working day of the month (Monday to
Friday, not a REPORT_HOLIDAYS day); the periodic task runs every few minutes and produces it once (its key,
"monthly-YYYY-MM", is unique, so two workers cannot both keep one), also later in the month should the workers
have been down that day. Its files (PDF, XLSX, CSV) are written under INSTANCE_PATH/reports/ with the row, and
removed if the transaction rolls back.

Mail goes through the calendar's mail path (app.calendar.mail.Mailer: SMTP, or .eml files in the embedded mode),
one message per recipient, by the outbox message "reports.mail" after the commit. As with invitations, a refusal
that may pass (a 4xx, a server that does not answer) raises after recording what was sent, so the queue and the
outbox sweep retry it, and a retry sends only to the recipients not yet served; a 5xx is final for its recipient;
after MAX_ATTEMPTS the rest is given up (its reply kept and shown on the reports page).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from app import storage
from app.calendar import mail
from app.db import commit_scope, utcnow
from app.queue import outbox
from app.reports import exports
from app.reports.models import REPORTS_FOLDER, ReportKind, ReportStatus, StoredReport
from app.reports.periods import month_bounds, report_zone
from app.reports.report import add_months, build_report, months_in

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
KEPT_FORMATS = ("pdf", "xlsx", "csv")


class ReportNotMailed(Exception):
    """Some recipients were not reached for a reason that may pass; raised so that the queue retries them."""


# ---------------------------------------------------------------- working days

def holidays(config: Mapping[str, Any]) -> tuple[set[dt.date], set[tuple[int, int]]]:
    """REPORT_HOLIDAYS as (dates, (month, day) of every year)."""
    dates: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    for item in str(config["REPORT_HOLIDAYS"]).replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        parts = [int(p) for p in item.split("-")]
        if len(parts) == 3:
            dates.add(dt.date(*parts))
        elif len(parts) == 2:
            yearly.add((parts[0], parts[1]))
        else:
            raise ValueError(f"REPORT_HOLIDAYS: {item!r} is neither YYYY-MM-DD nor MM-DD")
    return dates, yearly


def is_working_day(day: dt.date, config: Mapping[str, Any]) -> bool:
    dates, yearly = holidays(config)
    return day.weekday() < 5 and day not in dates and (day.month, day.day) not in yearly


def first_working_day(year: int, month: int, config: Mapping[str, Any]) -> dt.date:
    day = dt.date(year, month, 1)
    while not is_working_day(day, config):
        day += dt.timedelta(days=1)
    return day


def recipients(config: Mapping[str, Any]) -> list[str]:
    return [a.strip() for a in str(config["REPORT_RECIPIENTS"]).replace(";", ",").split(",") if a.strip()]


# ---------------------------------------------------------------- producing a report

def reports_folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / REPORTS_FOLDER


def file_path(report: StoredReport, name: str) -> Path:
    if name not in report.files:
        raise FileNotFoundError(name)
    return reports_folder() / report.folder / name


def _write_files(session: so.Session, row: StoredReport, now: dt.datetime | None) -> None:
    """Build the report of the row's period and write its files; they follow the transaction."""
    with force_locale(current_app.config["DEFAULT_LANGUAGE"]):
        report = build_report(session, row.period_start, row.period_end, row.site_id, now=now)
        row.title = exports.title(report)[:300]
        folder = reports_folder() / row.folder
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for fmt in KEPT_FORMATS:
            name = exports.filename(report, fmt)
            path = folder / name
            path.write_bytes(exports.render(report, fmt))
            storage.written(session, path)
            names.append(name)
    row.files = names
    row.status, row.finished_at, row.error = ReportStatus.READY, utcnow(), ""


def _new_row(kind: ReportKind, key: str, start: dt.datetime, end: dt.datetime, site_id: int | None,
             requested_by_id: int | None) -> StoredReport:
    return StoredReport(key=key, kind=kind, status=ReportStatus.QUEUED, period_start=start, period_end=end,
                        site_id=site_id, folder=uuid.uuid4().hex, files=[], mailed_to=[],
                        requested_by_id=requested_by_id)


def monthly_key(year: int, month: int) -> str:
    return f"monthly-{year:04d}-{month:02d}"


def produce_monthly(session: so.Session, year: int, month: int, now: dt.datetime | None = None) -> StoredReport:
    """Produce (once) and keep the province's report of a month, and ask for its mail."""
    key = monthly_key(year, month)
    existing = session.scalar(sa.select(StoredReport).where(StoredReport.key == key))
    if existing is not None:
        return existing
    start, end = month_bounds(year, month)
    row = _new_row(ReportKind.MONTHLY, key, start, end, None, None)
    try:
        with session.begin_nested():  # another worker's scheduler may be inserting the same month right now
            session.add(row)
    except sa.exc.IntegrityError:
        log.info("the monthly report %s was produced by another worker", key)
        return session.scalar(sa.select(StoredReport).where(StoredReport.key == key))  # type: ignore[return-value]
    _write_files(session, row, now)
    if recipients(current_app.config):
        outbox.enqueue(session, "reports.mail", report_id=row.id)
    session.flush()
    return row


def monthly_due(session: so.Session, now: dt.datetime | None = None) -> StoredReport | None:
    """The periodic work: last month's report, from its hour on the first working day of this month."""
    config = current_app.config
    now = now or utcnow()
    local = now.astimezone(report_zone())
    today = local.date()
    if today < first_working_day(today.year, today.month, config) or (
            today == first_working_day(today.year, today.month, config)
            and local.hour < int(config["REPORT_MONTHLY_HOUR"])):
        return None
    last = add_months(today.replace(day=1), -1)
    if session.scalar(sa.select(StoredReport.id).where(StoredReport.key == monthly_key(last.year, last.month))):
        return None
    log.info("producing the monthly report of %02d/%04d", last.month, last.year)
    return produce_monthly(session, last.year, last.month, now=now)


def needs_queue(start: dt.datetime, end: dt.datetime) -> bool:
    return months_in(start, end) > int(current_app.config["REPORT_QUEUE_MONTHS"]) + 0.2


def request_report(session: so.Session, start: dt.datetime, end: dt.datetime, site_id: int | None,
                   requested_by_id: int | None) -> StoredReport:
    """A report kept for download for any period: built by the queue (outbox "reports.build") after the commit."""
    row = _new_row(ReportKind.ON_DEMAND, f"on-demand-{uuid.uuid4().hex}", start, end, site_id, requested_by_id)
    session.add(row)
    session.flush()
    outbox.enqueue(session, "reports.build", report_id=row.id)
    return row


def build_stored(report_id: int) -> None:
    """Outbox handler: build a queued report. A failure is recorded on the row (shown on the page) and not
    retried: the same data would fail the same way."""
    try:
        with commit_scope() as session:
            row = session.get(StoredReport, report_id)
            if row is None or row.status is not ReportStatus.QUEUED:
                return
            _write_files(session, row, None)
    except Exception as exc:
        log.exception("report %s could not be built", report_id)
        with commit_scope() as session:
            row = session.get(StoredReport, report_id)
            if row is not None and row.status is ReportStatus.QUEUED:
                row.status, row.error, row.finished_at = ReportStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000], \
                    utcnow()


def stored_reports(session: so.Session, limit: int = 24, site_ids: Any = None) -> list[StoredReport]:
    """The newest kept reports; `site_ids` (a scope's) keeps those of a subtree inside it."""
    query = sa.select(StoredReport).order_by(StoredReport.created_at.desc(), StoredReport.id.desc()).limit(limit)
    if site_ids is not None:
        query = query.where(StoredReport.site_id.in_(site_ids))
    return list(session.scalars(query))


# ---------------------------------------------------------------- mailing it

def compose(config: Mapping[str, Any], to: str, subject: str, text: str,
            attachments: list[tuple[str, str, bytes]]) -> EmailMessage:
    """A plain mail with attachments (name, content type, data), headers as the invitations write them."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = formataddr((config["MAIL_FROM_NAME"], config["MAIL_FROM"]))
    message["To"] = to
    if subject.isascii():
        message["Subject"] = subject
    else:
        message.set_raw("Subject", mail.encoded_words(subject))
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=str(config["MAIL_FROM"]).rpartition("@")[2] or None)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    for name, content_type, data in attachments:
        maintype, _sep, subtype = content_type.split(";")[0].partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def _message_parts(row: StoredReport) -> tuple[str, str, list[tuple[str, str, bytes]]]:
    config = current_app.config
    with force_locale(config["DEFAULT_LANGUAGE"]):
        subject = row.title or _("Video-conference report")
        text = _("Dear colleagues,\n\nAttached is the %(title)s, as PDF, as a spreadsheet (XLSX) and as CSV.\n"
                 "It is also kept in VCOps for download: %(url)s\n\n%(sender)s\n",
                 title=row.title, url=config["BASE_URL"].rstrip("/") + "/reports/", sender=config["MAIL_FROM_NAME"])
    attachments = [(name, exports.CONTENT_TYPES[name.rsplit(".", 1)[1]], file_path(row, name).read_bytes())
                   for name in row.files]
    return subject, text, attachments


def mail_report(report_id: int) -> None:
    """Outbox handler: mail a kept report to each of REPORT_RECIPIENTS not yet served."""
    config = current_app.config
    with commit_scope() as session:
        row = session.get(StoredReport, report_id)
        if row is None or row.status is not ReportStatus.READY:
            return
        todo = [a for a in recipients(config) if a.lower() not in {d.lower() for d in row.mailed_to}]
        if not todo or row.mail_attempts >= MAX_ATTEMPTS:
            return
        row.mail_attempts += 1
        attempt = row.mail_attempts
        subject, text, attachments = _message_parts(row)
    retry: list[str] = []
    with mail.Mailer(config) as mailer:
        for address in todo:
            try:
                mailer.send(compose(config, address, subject, text, attachments))
                _record(report_id, address, None)
            except mail.SendFailed as exc:
                final = exc.permanent or exc.maybe_delivered or attempt >= MAX_ATTEMPTS
                _record(report_id, address, f"{address}: {exc.reply}", final=final)
                if not final:
                    retry.append(address)
    if retry:
        raise ReportNotMailed(f"report {report_id} not mailed to {', '.join(retry)}; it will be tried again")


def _record(report_id: int, address: str, failure: str | None, final: bool = True) -> None:
    with commit_scope() as session:
        row = session.get(StoredReport, report_id)
        if row is None:
            return
        if failure is None or final:
            row.mailed_to = [*row.mailed_to, address]
        if failure is not None:
            row.mail_reply = (row.mail_reply + "\n" + failure).strip()[-2000:]
            log.warning("monthly report %s: %s", report_id, failure)
