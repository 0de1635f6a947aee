"""Test hosts: network namespaces with their own sshd, their own users and their own view of the filesystem.

`HostLab(folder).make(n, kind)` makes N hosts; the `ssh_hosts` fixture gives that factory to a test and
removes every host afterwards, also when the test fails (it skips, with the reason, when the machine lacks
root, sshd or iproute2). Import it into a conftest.py to use it: `from tests.support.hosts import ssh_hosts`.

Each host is
- a network namespace with a veth pair to the machine's namespace: a /30 of 198.18.0.0/15 (the range set
  aside for test labs), `.1` on the machine's side, `.2` in the namespace, where sshd listens on port 22;
- a folder of its own (under the lab's folder) holding its sshd_config, host key, authorized_keys, pid file,
  sshd.log (LogLevel VERBOSE: one "Accepted ..." line per SSH login) and, for endpoints, the
  simulator's state file xapi.json;
- a mount namespace (`unshare --mount`, private propagation) where /etc, /root, /var, /usr/local, /opt and
  /srv are overlays whose writes land in the host folder's fs/upper/, /tmp and /run are fresh tmpfs, and the
  host folder itself stays visible at its own path. So a playbook may manage anything under /etc (chrony,
  nftables, a service's configuration, init scripts), a user may be added to /etc/passwd, Ansible may write
  ~/.ansible/tmp, and nothing reaches the machine's real files. A `sleep` process anchors the namespaces,
  so sshd can be stopped and started again (a reboot) inside the same view. The host folder must not lie
  under one of the overlaid paths (pytest's tmp_path is under /tmp: fine).

Kinds:
- "linux": root logs in with the lab's key (PasswordAuthentication no); Subsystem sftp for Ansible.
- "xapi": a Cisco room system: every login runs simulators/cisco_xapi.py (sshd ForceCommand) on the host's
  state file; user "admin" (uid 0 in the host's own /etc/passwd) logs in with a password or the lab's key.
  Its call daemon (simulators/endpoint_calls.py: SIP on the host's address, port 5060, and the calls' RTP
  media; calls.log, calls.pid) starts with sshd and ends with the host; `stop_calls()` makes the endpoint
  unreachable for calls, `start_calls()` brings it back.
  `xCommand SystemUnit Boot` or a software upgrade power-cycles the host: sessions drop, sshd is down for
  `boot_seconds`, then it answers again.

A bridge: `start_cms_simulator(host)` runs the Cisco Meeting Server simulator (simulators/cisco_cms.py: its API
on https://ADDR:443, SIP on ADDR:5060) on a "linux" host; `connect_hosts(bridge_host, *endpoints)` lets hosts
reach each other through the machine, so the bridge dials the endpoints and they dial it.

Names never clash between test runs, pytest-xdist workers or other users of this library on the machine:
each host first claims a subnet index (from 198.18.4.0 on; the /22 below is left to the demo data and to labs
made by hand) with a lock file in /run/vcops-test-hosts/ holding the owner's pid (tests/support/claims.py: a
lock whose owner died is reclaimed, and what it left is removed); its namespace (`vcops-<worker>-<run>-<index>`)
and interface names (`vh<index>a`/`vh<index>b`, at most 8 characters) derive from that index.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulators import cisco_xapi
from tests.support import claims

REPO = Path(__file__).resolve().parents[2]
SIMULATOR = REPO / "simulators" / "cisco_xapi.py"
# What runs in an endpoint host: the xAPI shell, and the call daemon with the modules it imports.
CALL_DAEMON = REPO / "simulators" / "endpoint_calls.py"
ENDPOINT_MODULES = (SIMULATOR, CALL_DAEMON, REPO / "simulators" / "sip.py", REPO / "simulators" / "media.py")
# The simulator needs only the standard library; the system's Python is visible inside every host's view,
# where a virtual environment under /tmp or the checkout may not be.
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
# 198.18.0.0/16 for SSH test hosts; 198.19.0.0/16 is left to the probe labs (tests/netlab.py).
NETWORK = ipaddress.ip_network("198.18.0.0/16")
SUBNETS = NETWORK.num_addresses // 4
FIRST_INDEX = 256
LOCKS = Path("/run/vcops-test-hosts")
RUN_ID = secrets.token_hex(3)
OVERLAID = ("/etc", "/root", "/var", "/usr/local", "/opt", "/srv")
KINDS = ("xapi", "linux")
TOOLS = ("ip", "unshare", "nsenter", "ssh-keygen", "openssl")


def missing_requirements() -> str | None:
    """Why test hosts cannot be made on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, veth pairs, mounts); run the tests as root"
    if not Path(SSHD).exists():
        return f"openssh-server is not installed ({SSHD} missing): apt-get install openssh-server"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools for test hosts: {', '.join(missing)} (apt-get install iproute2 util-linux openssl)"
    return None


def _run(*argv: str, check: bool = True, timeout: float = 20, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


_alive = claims._alive


def public_key_fingerprint(public_key_line: str) -> str:
    """'ssh-ed25519 AAAA... comment' -> 'SHA256:...', as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass
class LabHost:
    """One test host. `address` is where its sshd listens; `folder` holds everything it writes."""

    index: int
    kind: str
    namespace: str
    address: str
    peer_address: str  # the machine's end of the veth
    host_if: str
    folder: Path
    username: str
    password: str | None
    client_key: Path  # private key (OpenSSH format) that logs in as `username`
    boot_seconds: float = 3.0
    port: int = 22
    media_rate: float = 1.0  # share of the real RTP packet rates the call daemon sends (benchmarks lower it)
    _starter: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- facts

    @property
    def name(self) -> str:
        return self.namespace

    @property
    def state_path(self) -> Path:
        return self.folder / "xapi.json"

    @property
    def private_key_text(self) -> str:
        return self.client_key.read_text()

    def host_key_fingerprint(self) -> str:
        return public_key_fingerprint((self.folder / "hostkey.pub").read_text())

    def sshd_pid(self) -> int | None:
        try:
            pid = int((self.folder / "sshd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def anchor_pid(self) -> int | None:
        try:
            pid = int((self.folder / "anchor.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def ssh_connections(self) -> int:
        """SSH connections that logged in so far (sshd logs "Accepted password/publickey for" once for each;
        the banner probes of wait_for_ssh do not count)."""
        try:
            log = (self.folder / "sshd.log").read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return len(re.findall(r"Accepted (?:password|publickey|keyboard-interactive\S*) for ", log))

    def read_state(self) -> dict[str, Any]:
        """The simulated device's state (xapi hosts)."""
        return cisco_xapi.StateStore(self.state_path).read()

    # ---------------------------------------------------------------- acting on it

    def run(self, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a command on the host: in its network namespace and its own view of the filesystem."""
        anchor = self.anchor_pid()
        if anchor is None:
            raise RuntimeError(f"test host {self.namespace} is not running")
        return _run("nsenter", "-t", str(anchor), "-n", "-m", "--", *argv, check=check, timeout=timeout)

    def sshd_command(self) -> list[str]:
        return [SSHD, "-f", str(self.folder / "sshd_config"), "-E", str(self.folder / "sshd.log")]

    def calls_command(self, python: str = SYSTEM_PYTHON) -> list[str]:
        """The endpoint's call daemon (xapi hosts), run from the host folder's copy."""
        return [python, str(self.folder / CALL_DAEMON.name), "--state", str(self.state_path),
                "--address", self.address, "--media-rate", str(self.media_rate),
                "--pidfile", str(self.folder / "calls.pid")]

    def calls_pid(self) -> int | None:
        try:
            pid = int((self.folder / "calls.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def stop_calls(self) -> None:
        """End the call daemon (its calls are hung up): the endpoint no longer answers calls."""
        pid = self.calls_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait(lambda: not _alive(pid), 5)

    def start_calls(self) -> None:
        """Start the call daemon again (after stop_calls) and wait until it listens."""
        anchor = self.anchor_pid()
        if anchor is None:
            raise RuntimeError(f"test host {self.namespace} is not running")
        with (self.folder / "calls.log").open("ab") as log:
            subprocess.Popen(["nsenter", "-t", str(anchor), "-n", "-m", "--", *self.calls_command()],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not _wait(lambda: self.calls_pid() is not None, 10):
            raise RuntimeError(f"the call daemon of {self.namespace} did not start; see {self.folder / 'calls.log'}")

    def spawn(self, *argv: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process on the host (its namespaces, its view of the filesystem), its output
        appended to `log`; it ends when the caller ends it or when the host is removed."""
        anchor = self.anchor_pid()
        if anchor is None:
            raise RuntimeError(f"test host {self.namespace} is not running")
        with log.open("ab") as out:
            return subprocess.Popen(["nsenter", "-t", str(anchor), "-n", "-m", "--", *argv], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def wait_for_ssh(self, timeout: float = 15.0) -> None:
        """Wait until sshd answers with its banner; raise with its log when it does not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with socket.create_connection((self.address, self.port), timeout=1) as sock:
                    sock.settimeout(1)
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            if self._starter is not None and self._starter.poll() not in (None, 0):
                break
            time.sleep(0.05)
        raise RuntimeError(f"sshd of test host {self.namespace} did not answer on {self.address}:{self.port}; "
                           f"log:\n{self._logs()}")

    def wait_until_down(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"test host {self.namespace} still answers on port {self.port}")

    def stop_ssh(self) -> None:
        pid = self.sshd_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            _wait(lambda: not _alive(pid), 5)

    def start_ssh(self) -> None:
        self.run(*self.sshd_command())
        self.wait_for_ssh()

    def regenerate_host_key(self, key_type: str = "ed25519") -> str:
        """Give the host a new host key (as a reinstalled device would have) and return its fingerprint."""
        for name in ("hostkey", "hostkey.pub"):
            (self.folder / name).unlink(missing_ok=True)
        _run("ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", self.namespace, "-f", str(self.folder / "hostkey"))
        pid = self.sshd_pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)  # sshd re-executes itself and reads its keys again
            time.sleep(0.2)
        self.wait_for_ssh()
        return self.host_key_fingerprint()

    def _logs(self) -> str:
        texts = []
        for name in ("start.log", "sshd.log"):
            with contextlib.suppress(OSError):
                texts.append(f"--- {name}\n" + (self.folder / name).read_text(errors="replace")[-3000:])
        return "\n".join(texts)


def _wait(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class HostLab:
    """Makes test hosts in `folder` and removes them all in cleanup()."""

    def __init__(self, folder: Path, simulator_python: str = SYSTEM_PYTHON) -> None:
        self.folder = folder
        self.python = simulator_python
        self.hosts: list[LabHost] = []
        for overlaid in OVERLAID + ("/run",):
            if folder.resolve().is_relative_to(overlaid):
                raise ValueError(f"the lab's folder {folder} must not lie under {overlaid}, which hosts see anew")
        folder.mkdir(parents=True, exist_ok=True)
        claims.reclaim_stale(LOCKS, _teardown)  # remove what killed test runs left behind
        self.client_key = folder / "client_key"
        if not self.client_key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vcops-tests", "-f", str(self.client_key))
        self.client_public_key = (folder / "client_key.pub").read_text()

    def make(self, n: int, kind: str = "xapi", *, version: str = cisco_xapi.DEFAULT_VERSION,
             boot_seconds: float = 3.0, media_rate: float = 1.0) -> list[LabHost]:
        """N new hosts of a kind, all answering SSH when this returns (and, for endpoints, SIP)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of test host {kind!r} (expected one of {', '.join(KINDS)})")
        made = []
        try:
            for _ in range(n):
                host = self._claim(kind, boot_seconds)
                host.media_rate = media_rate
                made.append(host)
                self.hosts.append(host)
                self._prepare(host, version)
                self._start(host)
            for host in made:
                host.wait_for_ssh()
                if host.kind == "xapi" and not _wait(lambda h=host: h.calls_pid() is not None, 10):
                    raise RuntimeError(f"the call daemon of {host.namespace} did not start; log:\n"
                                       + (host.folder / "calls.log").read_text(errors="replace")[-3000:])
        except BaseException:
            for host in made:
                self._remove(host)
                self.hosts.remove(host)
            raise
        return made

    def cleanup(self) -> None:
        errors = []
        for host in reversed(self.hosts):
            try:
                self._remove(host)
            except Exception as exc:  # remove the others all the same
                errors.append(f"{host.namespace}: {exc}")
        self.hosts.clear()
        if errors:
            raise RuntimeError("test hosts not fully removed: " + "; ".join(errors))

    # ---------------------------------------------------------------- names and addresses

    def _claim(self, kind: str, boot_seconds: float) -> LabHost:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")

        def in_use(index: int, host_if: str) -> bool:
            subnet = f"{NETWORK.network_address + 4 * index}/30"
            return bool(_run("ip", "-o", "-4", "addr", "show", "to", subnet).stdout.strip()
                        or Path(f"/sys/class/net/{host_if}").exists())

        claimed = claims.claim(LOCKS, range(FIRST_INDEX, SUBNETS),
                               lambda index: (f"vcops-{worker}-{RUN_ID}-{index}", f"vh{index}a"),
                               in_use, _teardown, f"subnet for a test host in {NETWORK}")
        index = claimed.index
        base = NETWORK.network_address + 4 * index
        xapi = kind == "xapi"
        return LabHost(index=index, kind=kind, namespace=claimed.namespace, address=str(base + 2),
                       peer_address=str(base + 1), host_if=claimed.host_if, folder=self.folder / f"host-{index}",
                       username="admin" if xapi else "root",
                       password=secrets.token_urlsafe(12) if xapi else None,
                       client_key=self.client_key, boot_seconds=boot_seconds)

    # ---------------------------------------------------------------- making one

    def _prepare(self, host: LabHost, version: str) -> None:
        folder = host.folder
        folder.mkdir(parents=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.namespace, "-f", str(folder / "hostkey"))
        (folder / "authorized_keys").write_text(self.client_public_key)
        xapi = host.kind == "xapi"
        lines = [
            "Port 22", f"ListenAddress {host.address}", f"HostKey {folder / 'hostkey'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
            f"PasswordAuthentication {'yes' if xapi else 'no'}", "KbdInteractiveAuthentication no",
            # admin is uid 0 in the host's own /etc/passwd, and sshd treats uid 0 as root.
            f"PermitRootLogin {'yes' if xapi else 'prohibit-password'}",
            "StrictModes no", "UsePAM no", "UseDNS no", "PrintMotd no", "PrintLastLog no",
            "LogLevel VERBOSE", "MaxStartups 200", "MaxSessions 50",
            f"Subsystem sftp {SFTP_SERVER if Path(SFTP_SERVER).exists() else 'internal-sftp'}",
        ]
        users = calls = ""
        if xapi:
            serial = f"FOC{host.index:05d}SIM"
            cisco_xapi.StateStore(host.state_path).write(cisco_xapi.new_state(serial=serial, version=version))
            # The host sees a fresh /tmp and only its own folder of the machine's working places: the checkout
            # (wherever CI cloned it) may be invisible there, so the simulator runs from a copy in the folder.
            for module in ENDPOINT_MODULES:
                shutil.copy2(module, folder / module.name)
            calls = f'{shlex.join(host.calls_command(self.python))} >> "$HOST/calls.log" 2>&1 &\n'
            simulator = [self.python, str(folder / SIMULATOR.name), "--state", str(host.state_path),
                         "--sshd-pidfile", str(folder / "sshd.pid"), "--sshd-command", shlex.join(host.sshd_command()),
                         "--boot-seconds", str(host.boot_seconds)]
            lines.append(f"ForceCommand {shlex.join(simulator)}")
            password_hash = _run("openssl", "passwd", "-6", "-stdin", input=host.password).stdout.strip()
            (folder / "passwd.add").write_text("admin:x:0:0:Device administrator:/root:/bin/sh\n")
            (folder / "shadow.add").write_text(f"admin:{password_hash}:19000:0:99999:7:::\n")
            users = 'cat "$HOST/passwd.add" >> /etc/passwd\ncat "$HOST/shadow.add" >> /etc/shadow\n'
        (folder / "sshd_config").write_text("\n".join(lines) + "\n")
        overlays = "\n".join(
            f'mkdir -p "/run/vcops-host/fs/upper{d}" "/run/vcops-host/fs/work{d}"\n'
            f'mount -t overlay overlay -o "lowerdir={d},upperdir=/run/vcops-host/fs/upper{d},'
            f'workdir=/run/vcops-host/fs/work{d}" {d}' for d in OVERLAID)
        (folder / "start.sh").write_text(f"""#!/bin/sh
# Runs in the host's network namespace, in a new private mount namespace: give the host its own view of the
# filesystem, start sshd, then stay as the anchor of both namespaces.
set -eu
HOST={shlex.quote(str(folder))}
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/vcops-host
mount --bind "$HOST" /run/vcops-host
{overlays}
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p "$HOST"
mount --move /run/vcops-host "$HOST"
{users}ip link set lo up
{shlex.join(host.sshd_command())}
{calls}echo $$ > "$HOST/anchor.pid"
exec sleep infinity
""")
        ns_if = f"vh{host.index}b"
        _run("ip", "netns", "add", host.namespace)
        _run("ip", "link", "add", host.host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", host.namespace)
        _run("ip", "addr", "add", f"{host.peer_address}/30", "dev", host.host_if)
        _run("ip", "link", "set", host.host_if, "up")
        _run("ip", "netns", "exec", host.namespace, "ip", "addr", "add", f"{host.address}/30", "dev", ns_if)
        _run("ip", "netns", "exec", host.namespace, "ip", "link", "set", ns_if, "up")

    def _start(self, host: LabHost) -> None:
        with (host.folder / "start.log").open("wb") as log:
            host._starter = subprocess.Popen(
                ["ip", "netns", "exec", host.namespace, "unshare", "--mount", "--propagation", "private",
                 "/bin/sh", str(host.folder / "start.sh")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    # ---------------------------------------------------------------- removing one

    def _remove(self, host: LabHost) -> None:
        remove_namespace(host.namespace, host.host_if)
        if host._starter is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                host._starter.wait(timeout=5)
        (LOCKS / str(host.index)).unlink(missing_ok=True)


def _namespace_pids(namespace: str) -> list[int]:
    result = _run("ip", "netns", "pids", namespace, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def remove_namespace(namespace: str, host_if: str) -> None:
    """End every process in the namespace (sshd, sessions, a reboot in progress, the anchor), delete it and the
    host side of its veth pair (test hosts and probe labs alike)."""
    if Path(f"/run/netns/{namespace}").exists():
        # A reboot in progress may start sshd again between two looks: look until nothing is left.
        for _ in range(100):
            pids = _namespace_pids(namespace)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        else:
            raise RuntimeError(f"processes in {namespace} would not end")
        deleted = _run("ip", "netns", "del", namespace, check=False)
        if Path(f"/run/netns/{namespace}").exists():  # (another run reclaiming the same leftovers is fine)
            raise RuntimeError(f"namespace {namespace} not deleted: {deleted.stderr.strip()}")
    if Path(f"/sys/class/net/{host_if}").exists():
        _run("ip", "link", "del", host_if, check=False)


def _teardown(namespace: str, host_if: str, _index: int) -> None:
    """What a killed run's claim left (claims.reclaim_if_stale)."""
    remove_namespace(namespace, host_if)


def connect_hosts(*lab_hosts: LabHost) -> None:
    """Let test hosts reach each other through the machine (a bridge calling endpoints): each gets a route to
    the others via its veth, and the machine forwards what comes in on those veths only (the per-interface
    switch: the machine's own forwarding stays as it is). Removing a host removes both."""
    for host in lab_hosts:
        _run("sysctl", "-q", "-w", f"net.ipv4.conf.{host.host_if}.forwarding=1")
        for other in lab_hosts:
            if other is not host:
                _run("ip", "netns", "exec", host.namespace, "ip", "route", "replace", f"{other.address}/32",
                     "via", host.peer_address)


@dataclass
class CmsSimulator:
    """simulators/cisco_cms.py running on a test host: its API at `url` (HTTPS, pinned to `certificate`), SIP
    at `sip_address`:5060, its files in `state_dir` (requests.log, calls.log, state.json)."""

    host: LabHost
    user: str
    password: str
    state_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://{self.host.address}"

    @property
    def sip_address(self) -> str:
        return self.host.address

    @property
    def certificate(self) -> Path:
        return self.state_dir / "cert.pem"

    def requests(self) -> list[str]:
        """The requests that reached it so far, one `METHOD PATH STATUS` each."""
        with contextlib.suppress(FileNotFoundError):
            return (self.state_dir / "requests.log").read_text().splitlines()
        return []

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def start_cms_simulator(host: LabHost, *, user: str = "admin", password: str | None = None,
                        page_limit: int | None = None, sip_timeout: float | None = None,
                        ring_timeout: float | None = None, media_rate: float = 1.0,
                        timeout: float = 20.0) -> CmsSimulator:
    """Run the Cisco Meeting Server simulator on a (linux) test host: API on port 443, SIP on 5060 of its
    address; returns once it answers. It runs from a copy of simulators/ in the host folder (the checkout may
    be invisible there) under the system's Python."""
    package = host.folder / "cms" / "simulators"
    shutil.copytree(REPO / "simulators", package, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    state_dir = host.folder / "cms-state"
    password = password or secrets.token_urlsafe(12)
    argv = [SYSTEM_PYTHON, "-m", "simulators.cisco_cms", "--listen", f"{host.address}:443", "--user", user,
            "--password", password, "--state-dir", str(state_dir), "--sip-listen", f"{host.address}:5060"]
    if page_limit is not None:
        argv += ["--page-limit", str(page_limit)]
    if sip_timeout is not None:
        argv += ["--sip-timeout", str(sip_timeout)]
    if ring_timeout is not None:
        argv += ["--ring-timeout", str(ring_timeout)]
    if media_rate != 1.0:
        argv += ["--media-rate", str(media_rate)]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": str(package.parent)}
    process = host.spawn(*argv, log=host.folder / "cms.log", env=env)
    simulator = CmsSimulator(host, user, password, state_dir, process)
    if not _wait(lambda: (state_dir / "pid").exists() or process.poll() is not None, timeout) \
            or process.poll() is not None:
        simulator.stop()
        log = (host.folder / "cms.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the CMS simulator on {host.namespace} did not start; log:\n{log}")
    return simulator


@contextlib.contextmanager
def host_lab(folder: Path) -> Iterator[HostLab]:
    """A lab for any scope (module, session, a benchmark): its hosts are removed when the block ends."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    lab = HostLab(folder)
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., list[LabHost]]]:
    """make(n, kind="xapi"|"linux", version=..., boot_seconds=...) -> N test hosts, removed after the test."""
    with host_lab(tmp_path_factory.mktemp("hosts")) as lab:
        yield lab.make
