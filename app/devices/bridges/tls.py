"""HTTPS to a bridge whose certificate is pinned: read the certificate it presents, and a requests session that
sends nothing unless the connection's certificate is the pinned one.

Bridges carry self-signed certificates (or ones from a CA the province does not run), so trust is the pin a
technician accepted, as for SSH host keys, not a CA chain. The pin is checked twice: once on a handshake of its
own (to record what was presented, for the technician's page) and on every pooled connection by urllib3's
`assert_fingerprint`, which compares the peer certificate right after the handshake, before the request is
written; so a bridge swapped between the two checks is still refused before it hears anything.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from typing import Any

import requests
from cryptography import x509
from flask_babel import gettext as _
from requests.adapters import HTTPAdapter

from app.devices.bridges.base import BridgeTarget, BridgeUnreachable, PresentedCertificate, unreachable_within


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a DER certificate as openssl prints it: AB:CD:..."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def describe(der: bytes) -> PresentedCertificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:  # not parseable: the fingerprint alone still identifies it
        return PresentedCertificate(fingerprint_of(der))
    return PresentedCertificate(fingerprint_of(der), certificate.subject.rfc4514_string(),
                                certificate.not_valid_before_utc, certificate.not_valid_after_utc)


def _unverified_context() -> ssl.SSLContext:
    # No CA verification on purpose: the fingerprint decides (see the module's docstring).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def presented_certificate(target: BridgeTarget, timeout: float) -> PresentedCertificate:
    """Connect, complete the TLS handshake, and return the certificate the bridge presented; nothing is sent
    beyond the handshake."""
    try:
        with socket.create_connection((target.address, target.port), timeout=timeout) as raw:
            with _unverified_context().wrap_socket(raw, server_hostname=target.address) as tls:
                der = tls.getpeercert(binary_form=True)
    except TimeoutError as exc:
        raise unreachable_within(target.name, timeout) from exc
    except ConnectionRefusedError as exc:
        raise BridgeUnreachable(_("The MCU %(bridge)s refused the connection (its web service is not running "
                                  "there, or the port is wrong).", bridge=target.name)) from exc
    except ssl.SSLError as exc:
        raise BridgeUnreachable(_("No TLS session with the MCU %(bridge)s: %(error)s", bridge=target.name,
                                  error=exc.reason or exc)) from exc
    except OSError as exc:
        raise BridgeUnreachable(_("The MCU %(bridge)s cannot be reached: %(error)s", bridge=target.name,
                                  error=exc.strerror or exc)) from exc
    if not der:
        raise BridgeUnreachable(_("The MCU %(bridge)s presented no certificate.", bridge=target.name))
    return describe(der)


class PinnedAdapter(HTTPAdapter):
    """Connections whose peer certificate must have the pinned SHA-256 fingerprint (checked by urllib3 before
    the request is written), without CA or host-name checks."""

    def __init__(self, fingerprint: str, **kwargs: Any) -> None:
        self.fingerprint = fingerprint.replace(":", "").lower()
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.update(assert_fingerprint=self.fingerprint, assert_hostname=False,
                           ssl_context=_unverified_context())
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def pinned_session(target: BridgeTarget, fingerprint: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the bridge is reached directly
    session.verify = False  # no CA chain: PinnedAdapter's fingerprint is the check
    # As bytes in UTF-8: requests would encode text as Latin-1, which a Vietnamese password does not fit.
    session.auth = (username.encode(), password.encode())
    session.mount("https://", PinnedAdapter(fingerprint))
    del session.adapters["http://"]  # never in clear text: a URL without TLS finds no adapter and is refused
    return session
