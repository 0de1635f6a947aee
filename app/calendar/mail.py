"""Invitation mails: composing them (text, HTML and the calendar invite) and sending them.

The message is shaped as Outlook, Thunderbird and Google Calendar expect an iTIP invitation: a
multipart/alternative of text/plain, text/html and `text/calendar; method=...; charset=UTF-8`, wrapped
in multipart/mixed when documents are attached. The invite is base64-encoded so that its CRLF line
endings and folded lines reach the client byte for byte.

Sending: SMTP with the SMTP_* settings, or, with SMTP_HOST empty (the embedded mode), each message
written as an .eml file under INSTANCE_PATH/outbox/. The SMTP password is never logged.

`send(message, handing=...)` calls `handing()` at the one instant after which the message may have been
delivered: after the server took MAIL, RCPT and the whole data, just before the final "." that ends it. A server
never delivers a message whose end of data it did not get, so a caller that records that instant knows for
sure, after a crash, which mails were certainly not sent. When `handing()` raises, the final "." is never sent
and the connection is dropped (the server discards the message).
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from types import TracebackType
from typing import Any

from app.calendar.ics import Party
from app.calendar.wording import Document
from app.db import utcnow

log = logging.getLogger(__name__)


class SendFailed(Exception):
    """The server (or the network) refused one message; `reply` is what it said."""

    def __init__(self, reply: str, permanent: bool = False, maybe_delivered: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent
        # The connection failed after the end of the data, before the server's reply: it may have taken it.
        self.maybe_delivered = maybe_delivered


def encoded_words(text: str, octets: int = 42) -> str:
    """`text` as RFC 2047 encoded words (UTF-8, base64), one per line, each holding its own spaces.

    Python 3.11's header folder drops the space where it folds between two encoded words, so a long Vietnamese
    subject arrived as "phòngchống". Each word here carries at most `octets` bytes: 68 characters once encoded,
    so that "Subject: " and the first word stay within 78.
    """
    words: list[str] = []
    chunk = ""
    for char in text:
        if chunk and len((chunk + char).encode()) > octets:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words)


def compose(*, sender: Party, to: Party, subject: str, text: str, html: str, invite: bytes, method: str,
            documents: Sequence[Document] = ()) -> EmailMessage:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = formataddr((sender.name, sender.email))
    message["To"] = formataddr((to.name, to.email))
    if subject.isascii():
        message["Subject"] = subject
    else:
        message.set_raw("Subject", encoded_words(subject))
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.email.rpartition("@")[2] or None)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.add_alternative(invite, maintype="text", subtype="calendar", cte="base64",
                            params={"method": method.upper(), "charset": "UTF-8"})
    for document in documents:
        if not document.attached:
            continue  # listed with its link in the text, too large to attach
        maintype, _, subtype = document.content_type.partition("/")
        message.add_attachment(document.data, maintype=maintype or "application",
                               subtype=subtype or "octet-stream", filename=document.filename)
    return message


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {said}".strip()


class _HandingOver:
    """smtplib's DATA, with the caller's `handing` called between the data and the final ".": the only change to
    smtplib.SMTP.data (same quoting of leading dots, same line endings)."""

    handing: Callable[[], None] | None = None
    handed = False  # the final "." went out: from here on only the server's reply tells what happened

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        smtp: Any = self
        smtp.putcmd("data")
        code, repl = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, repl)
        if isinstance(msg, str):
            msg = re.sub(r"(?:\r\n|\n|\r(?!\n))", "\r\n", msg).encode("ascii")
        quoted = re.sub(rb"(?m)^\.", b"..", msg)
        if quoted[-2:] != b"\r\n":
            quoted += b"\r\n"
        smtp.send(quoted)
        if self.handing is not None:
            self.handing()
        self.handed = True
        smtp.send(b".\r\n")
        return smtp.getreply()


class _SMTP(_HandingOver, smtplib.SMTP):
    pass


class _SMTP_SSL(_HandingOver, smtplib.SMTP_SSL):
    pass


class Mailer:
    """One connection for a batch of messages; each message succeeds or fails on its own."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.smtp: _SMTP | _SMTP_SSL | None = None
        self.unreachable: str = ""  # set when connecting failed: the rest of the batch waits for the retry

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @property
    def embedded(self) -> bool:
        return not self.config["SMTP_HOST"]

    def send(self, message: EmailMessage, handing: Callable[[], None] | None = None) -> None:
        """Send one message; SendFailed with the server's reply when it was refused. `handing` (see the module's
        docstring) is called just before the message can be delivered; what it raises stops the send."""
        if self.embedded:
            if handing is not None:
                handing()
            try:
                self._write(message)
            except OSError as exc:  # a full or read-only disk: kept for the retry like a busy server
                raise SendFailed(f"{type(exc).__name__}: {exc}") from None
            return
        if self.unreachable:
            raise SendFailed(self.unreachable)
        smtp = self._connection()
        smtp.handing, smtp.handed = handing, False
        try:
            refused = smtp.send_message(message, from_addr=self.config["MAIL_FROM"])
        except smtplib.SMTPRecipientsRefused as exc:
            code, said = next(iter(exc.recipients.values()))
            raise SendFailed(_reply(code, said), permanent=code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            # The sender refused or the data refused: a 5xx about this message is final, other replies may pass.
            self._drop()
            permanent = exc.smtp_code >= 500 and isinstance(exc, smtplib.SMTPDataError)
            raise SendFailed(_reply(exc.smtp_code, exc.smtp_error), permanent=permanent) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise SendFailed(f"{type(exc).__name__}: {exc}", maybe_delivered=smtp.handed) from None
        except BaseException:
            # `handing` refused (or the worker is stopping) before the final ".": the server must not keep half
            # a transaction on this connection, and drops the message with it.
            self._drop()
            raise
        finally:
            smtp.handing = None
        if refused:
            code, said = next(iter(refused.values()))
            raise SendFailed(_reply(code, said), permanent=code >= 500)

    def _connection(self) -> _SMTP | _SMTP_SSL:
        if self.smtp is not None:
            return self.smtp
        c = self.config
        try:
            if c["SMTP_SSL"]:
                smtp: _SMTP | _SMTP_SSL = _SMTP_SSL(c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"],
                                                      context=ssl.create_default_context())
            else:
                smtp = _SMTP(c["SMTP_HOST"], c["SMTP_PORT"], timeout=c["SMTP_TIMEOUT"])
                if c["SMTP_STARTTLS"]:
                    smtp.starttls(context=ssl.create_default_context())
            if c["SMTP_USERNAME"]:
                smtp.login(c["SMTP_USERNAME"], c["SMTP_PASSWORD"])
        except smtplib.SMTPResponseException as exc:
            self.unreachable = _reply(exc.smtp_code, exc.smtp_error)
            raise SendFailed(self.unreachable) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Neither the password nor the whole configuration goes into the message or the log.
            self.unreachable = f"{type(exc).__name__}: {exc}"
            log.warning("SMTP server %s:%s unreachable: %s", c["SMTP_HOST"], c["SMTP_PORT"], self.unreachable)
            raise SendFailed(self.unreachable) from None
        self.smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                self.smtp = None

    def _write(self, message: EmailMessage) -> Path:
        folder = Path(self.config["INSTANCE_PATH"]) / "outbox"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
        path.write_bytes(message.as_bytes(policy=policy.SMTP))
        return path
