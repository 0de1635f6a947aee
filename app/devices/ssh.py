"""One SSH connection to a device with an interactive shell channel, over paramiko, with a pinned host key.

The host key is checked before any credential is sent (a password must never reach an impostor); when a key
is pinned, only its type is asked for, so the same key is compared every time. Every step has a timeout,
and keepalives keep an idle connection from being dropped by a firewall between two requests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import time

import paramiko
from flask_babel import gettext as _

from app.devices.profile import (
    AuthenticationFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyPolicy,
    Login,
    Target,
    Timing,
    seconds_text,
)

log = logging.getLogger(__name__)

# The signature algorithms a server may use for a key of each type (an RSA key signs with SHA-2 nowadays).
_ALGORITHMS = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}


def fingerprint(key: paramiko.PKey) -> str:
    """SHA256:..., as `ssh-keygen -l` and OpenSSH's warnings print it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_private_key(text: str) -> paramiko.PKey:
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    raise DeviceError(_("The stored private key could not be read (%(errors)s).", errors="; ".join(errors)))


class ShellConnection:
    """An SSH session whose channel is the device's interactive shell; send text, read it line by line."""

    def __init__(self, target: Target, login: Login, host_keys: HostKeyPolicy, timing: Timing) -> None:
        self.target = target
        self.login = login
        self.host_keys = host_keys
        self.timing = timing
        self.transport: paramiko.Transport | None = None
        self.channel: paramiko.Channel | None = None
        self._buffer = b""

    # ---------------------------------------------------------------- opening

    def open(self) -> None:
        pinned = self.host_keys.pinned_type(self.target.address, self.target.port)
        try:
            transport = self._handshake(pinned)
        except paramiko.SSHException:
            # (Raised only when a key type was asked for.) The host no longer offers a key of the pinned type:
            # look at the key it offers now, so that the refusal names it.
            transport = self._handshake(None)
        self.transport = transport
        try:
            key = transport.get_remote_server_key()
            self.host_keys.check(self.target.address, self.target.port, key.get_name(), fingerprint(key))
            self._authenticate(transport)
            transport.set_keepalive(self.timing.keepalive)
            channel = transport.open_session(timeout=self.timing.connect_timeout)
            channel.get_pty(term="vt100", width=250, height=50)
            channel.invoke_shell()
            self.channel = channel
        except paramiko.SSHException as exc:
            self.close()
            raise DeviceUnreachable(_("No SSH session with %(host)s: %(error)s", host=self.target.name,
                                      error=exc)) from exc
        except BaseException:
            self.close()
            raise

    def _handshake(self, key_type: str | None) -> paramiko.Transport:
        host, timeout = self.target.name, self.timing.connect_timeout
        try:
            sock = socket.create_connection((self.target.address, self.target.port), timeout=timeout)
        except TimeoutError as exc:
            raise DeviceUnreachable(_("%(host)s did not answer within %(seconds)s s.", host=host,
                                      seconds=seconds_text(timeout))) from exc
        except ConnectionRefusedError as exc:
            raise DeviceUnreachable(_("%(host)s refused the connection (SSH is not running there, or the device "
                                      "is restarting).", host=host)) from exc
        except OSError as exc:
            raise DeviceUnreachable(_("%(host)s cannot be reached: %(error)s", host=host,
                                      error=exc.strerror or exc)) from exc
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = timeout
        if key_type is not None:
            try:
                transport.get_security_options().key_types = _ALGORITHMS.get(key_type, [key_type])
            except ValueError:  # a type this paramiko no longer speaks: take any, the fingerprint decides
                key_type = None
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            if isinstance(exc, paramiko.SSHException) and key_type is not None:
                raise
            raise DeviceUnreachable(_("No SSH session with %(host)s: %(error)s", host=host,
                                      error=exc or type(exc).__name__)) from exc
        return transport

    def _authenticate(self, transport: paramiko.Transport) -> None:
        login, host = self.login, self.target.name
        tried = []
        if login.private_key:
            try:
                transport.auth_publickey(login.username, load_private_key(login.private_key))
                return
            except paramiko.AuthenticationException:
                tried.append("key")
        if login.password:
            try:
                transport.auth_password(login.username, login.password)
                return
            except paramiko.AuthenticationException:
                tried.append("password")
        if not tried:
            raise AuthenticationFailed(_("No password or key is stored for %(host)s.", host=host))
        raise AuthenticationFailed(_("%(host)s refused the login of %(user)s (tried: %(tried)s).", host=host,
                                     user=login.username, tried=", ".join(tried)))

    # ---------------------------------------------------------------- talking

    def send(self, text: str) -> None:
        if self.channel is None:
            raise DeviceUnreachable(_("The session with %(host)s is closed.", host=self.target.name))
        try:
            self.channel.sendall(text.encode())
        except (OSError, paramiko.SSHException) as exc:
            raise DeviceUnreachable(_("The session with %(host)s dropped: %(error)s", host=self.target.name,
                                      error=exc)) from exc

    def read_line(self, deadline: float, waiting_for: str) -> str:
        """The next line (without its end), waiting until `deadline` (time.monotonic())."""
        while b"\n" not in self._buffer:
            if self.channel is None:
                raise DeviceUnreachable(_("The session with %(host)s is closed.", host=self.target.name))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(_("%(host)s did not finish its answer to “%(request)s” within %(seconds)s s.",
                                      host=self.target.name, request=waiting_for,
                                      seconds=seconds_text(self.timing.command_timeout)))
            self.channel.settimeout(remaining)
            try:
                data = self.channel.recv(65536)
            except TimeoutError:
                continue
            except (OSError, paramiko.SSHException) as exc:
                raise DeviceUnreachable(_("The session with %(host)s dropped: %(error)s", host=self.target.name,
                                          error=exc)) from exc
            if not data:
                self.close()
                raise DeviceUnreachable(_("The session with %(host)s ended while waiting for the answer to "
                                          "“%(request)s”.", host=self.target.name, request=waiting_for))
            self._buffer += data
        line, _sep, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace").rstrip("\r")

    def close(self) -> None:
        for part in (self.channel, self.transport):
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing a dead connection may fail; it is closed either way
                    log.debug("closing the SSH connection to %s failed", self.target.name, exc_info=True)
        self.channel = None
        self.transport = None
        self._buffer = b""

    @property
    def is_open(self) -> bool:
        return self.channel is not None and self.transport is not None and self.transport.is_active()
