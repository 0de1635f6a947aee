"""Runs a job's playbook through ansible-runner on a task-queue worker, and ends the runs whose worker died.

One run, in order: take the job's hosts (one job at a time per host; a job whose host is busy stays queued,
waiting for the job that holds it, and is woken when that job ends); write a private data directory (mode
0700) with the inventory, the opened credentials (files 0600) and the accepted host keys of its hosts (a job
whose hosts have no accepted key is refused before anything connects); run ansible-playbook with VCOps' Ansible
settings (`ansible_settings()`: Mitogen's one interpreter per host, pipelining, forks, reused SSH connections,
only pinned host keys) and the worker's secrets left out of its environment; store every event as it comes, a
few at a time in short transactions on a thread of their own, so the job page shows it live and
ansible-playbook never waits for the database, with every secret of the run scrubbed; stop when a cancel is
asked for; keep the artifacts, scrubbed, under INSTANCE_PATH/jobs/<id>/; end the run's SSH connections and
remove the private data directory whatever happened; end the job and free its hosts in one transaction.

A worker that dies leaves its job running: `reap_lost_jobs()` (periodic) finds such jobs, ends their
ansible-playbook process group, removes the private data directory, marks them lost and frees their hosts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
import yaml
from flask import current_app

from app.config import PROJECT_ROOT
from app.db import commit_scope, db, read_only_intent, utcnow
from app.devices.hostkeys import record_contact
from app.provisioning.backups.service import backup_from_event
from app.provisioning.credentials.service import CredentialKeyError, DeviceLogin, credentials_for
from app.provisioning.inventory import Inventory, build_inventory, endpoint_hostname  # noqa: F401 - re-exported
from app.provisioning.models import TERMINAL_STATES, Job, JobEvent, JobHost, JobState
from app.queue import outbox
from app.queue.models import WorkerCheckin

log = logging.getLogger(__name__)
SCRUBBED = "********"
RUN_MARK = "VCOPS_JOB_RUN"  # set in ansible-playbook's environment: finds the run's processes after a crash
CANCEL_CHECK_SECONDS = 1.0
EVENT_BATCH_SECONDS = 0.2  # how long the events of a run gather before they are stored together
EVENT_BATCH_MAX = 500
TERM_GRACE_SECONDS = 5.0
# Inherited variables ansible-playbook may see; everything else of the worker's environment (the database
# URL, the credential keys, the session secret…) stays out of it and out of the run's artifacts.
_INHERITED_ENV = re.compile(r"^(PATH|HOME|USER|LOGNAME|SHELL|TERM|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|PYTHONPATH|"
                            r"ANSIBLE_\w+|SSL_CERT_\w+|REQUESTS_CA_BUNDLE)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def worker_name() -> str:
    """The name the worker checks in under (app.queue.tasks): host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------- the inventory of a run
# (built by app.provisioning.inventory, shared with the dynamic inventory script inventory/vcops.py)


class _Unsafe(str):
    """A value Ansible must never template (secrets, user-given variables): written with YAML's !unsafe."""


class _InventoryDumper(yaml.SafeDumper):
    pass


_InventoryDumper.add_representer(_Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_inventory(inventory: Inventory, path: Path, logins: dict[int, DeviceLogin] | None = None,
                    key_dir: Path | None = None) -> None:
    """Write the inventory as YAML (mode 0600); with `logins`, each host gets its user and its password or
    a private key file (0600 in key_dir)."""
    hosts: dict[str, dict[str, Any]] = {}
    key_files: dict[int, Path] = {}
    for name, variables in inventory.hosts.items():
        host_vars = dict(variables)
        pin = host_vars.get("vcops_host_key")
        if isinstance(pin, dict) and pin.get("type"):
            # ssh asks for the pinned kind of key, so a host that has several offers the accepted one.
            host_vars["ansible_ssh_extra_args"] = f"-o HostKeyAlgorithms={host_key_algorithms(str(pin['type']))}"
        login = (logins or {}).get(inventory.credential_of.get(name, -1))
        if login is not None:
            if login.username:
                host_vars["ansible_user"] = login.username
            if login.private_key:
                if login.credential_id not in key_files:
                    assert key_dir is not None
                    key_files[login.credential_id] = key_dir / f"credential-{login.credential_id}"
                    _write_private(key_files[login.credential_id], login.private_key)
                host_vars["ansible_ssh_private_key_file"] = str(key_files[login.credential_id])
            else:
                host_vars["ansible_password"] = _Unsafe(login.password)
        hosts[name] = host_vars
    children = {g: {"hosts": dict.fromkeys(names, None)} for g, names in inventory.groups.items()}
    document = {"all": {"hosts": hosts, "children": children}}
    _write_private(path, yaml.dump(document, Dumper=_InventoryDumper, allow_unicode=True, sort_keys=False))


# ---------------------------------------------------------------- VCOps' Ansible settings

DEFAULT_FORKS = 25  # hosts worked on at once (JOB_FORKS); Ansible's own default is 5
SSH_CONTROL_PERSIST_SECONDS = 60
# Facts (OS, service manager…) change with a reinstall, not from one run to the next: a host's are gathered
# again when older than this (JOB_FACT_CACHE_SECONDS; 0 gathers them at every run, as Ansible does by default).
DEFAULT_FACT_CACHE_SECONDS = 3600
# A control socket's path is its folder + 28 characters (Ansible's 10-character name, ssh's temporary suffix)
# and must fit in the 108 bytes of a Unix socket address.
_CONTROL_DIR_MAX = 72


def ssh_dir(run_dir: Path) -> Path:
    """The run's SSH trust: the accepted host keys of its hosts, and ssh's look-up of them."""
    return run_dir / "ssh"


def control_dir(run_dir: Path) -> Path:
    """Where ssh keeps the run's shared connections (one per host, reused by every task): in the run's
    folder, or, when that path is too long for a socket, a folder of the system's temporary folder named after
    it. Never shared between runs: a run must not ride on a connection another run's credential opened."""
    inside = run_dir / "cp"
    if len(str(inside)) <= _CONTROL_DIR_MAX:
        return inside
    return Path(tempfile.gettempdir()) / f"vcops-cp-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]}"


def ansible_settings(run_dir: Path, forks: int = DEFAULT_FORKS, fact_cache: Path | None = None,
                     fact_cache_seconds: int = DEFAULT_FACT_CACHE_SECONDS) -> dict[str, str]:
    """VCOps' Ansible settings for the run whose private data directory is `run_dir`, as ansible-playbook's
    environment (the runner's; bench/provisioning.py runs plain ansible-playbook with them too).

    Speed: pipelining (a module runs in the SSH session that sends it, no temporary files: one round trip per
    task), `forks` hosts at once, one SSH connection per host kept open for the whole run (ControlPersist) in
    a folder of the run's own, and, with `fact_cache`, each host's facts kept there for `fact_cache_seconds`
    (a play gathers them only for hosts whose facts are older: Ansible's "smart" gathering). Trust: ssh
    accepts only the host keys a technician accepted (written by write_host_keys(); ~/.ssh/known_hosts and the
    machine's own are not read), with strict checking."""
    pins = ssh_dir(run_dir)
    venv_bin = str(Path(sys.executable).parent)  # ansible-playbook sits beside the worker's Python
    ssh_args = ["-C", "-o", "ControlMaster=auto", "-o", f"ControlPersist={SSH_CONTROL_PERSIST_SECONDS}s",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "CheckHostIP=no",
                "-o", f'KnownHostsCommand="{pins / KNOWN_HOSTS_COMMAND}" %I %H %f %t %K']
    return {"PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", os.defpath)]),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "0", RUN_MARK: str(run_dir),
            "ANSIBLE_LIBRARY": str(PROJECT_ROOT / "playbooks" / "library"),  # the vcops_xapi module
            "ANSIBLE_FORKS": str(max(1, forks)), "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_SSH_ARGS": shlex.join(ssh_args),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir(run_dir)),
            # The main process looks for results every 10 ms instead of every millisecond: less CPU taken
            # from the forks on a small machine, for a delay nobody sees.
            "ANSIBLE_INTERNAL_POLL_INTERVAL": "0.01",
            **_mitogen_settings(),
            **(_fact_cache_settings(fact_cache, fact_cache_seconds) if fact_cache and fact_cache_seconds > 0
               else {})}


def _mitogen_settings() -> dict[str, str]:
    """Mitogen for Ansible (a dependency; skipped only if it cannot be imported): one Python interpreter per
    host for the whole run, which keeps the modules' imports (ansible.module_utils) instead of unpacking and
    compiling them again at every task: a third of the wall time of Ansible's defaults on the bench. Its ssh
    connection passes ANSIBLE_SSH_ARGS on, so only the pinned host keys are accepted still (tested). A playbook
    that asks for `strategy: free` itself leaves Mitogen: it should ask for `mitogen_free`."""
    try:
        import ansible_mitogen
    except ImportError:
        return {}
    return {"ANSIBLE_STRATEGY_PLUGINS": str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear"}


def _fact_cache_settings(folder: Path, seconds: int) -> dict[str, str]:
    return {"ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(folder), "ANSIBLE_CACHE_PLUGIN_TIMEOUT": str(seconds)}


def fact_cache_dir() -> Path:
    """The app's fact cache (INSTANCE_PATH/facts, 0700): one JSON file per host, shared by the runs."""
    folder = Path(current_app.config["INSTANCE_PATH"]) / "facts"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- pinned host keys
# The database keeps each host's accepted key as a fingerprint (app.devices.hostkeys), not the key itself, so
# the run's known hosts are a look-up: ssh's KnownHostsCommand hands the script the key the host offers, and
# the script vouches for it (prints it as a known_hosts line) only when its fingerprint is the accepted one.
# ssh still checks that the host holds the private half, as for any known_hosts entry.

KNOWN_HOSTS_COMMAND = "known-hosts"
_KNOWN_HOSTS_SCRIPT = """#!/bin/sh
# VCOps: ssh's KnownHostsCommand for one run. Arguments: why ssh asks (HOSTNAME, ORDER, ADDRESS), the host as
# known_hosts names it, and the fingerprint, type and key it offered. The key is trusted only when "pinned"
# lists it for that host; any other is noted in "offered" (VCOps reports it) and ssh refuses the connection.
[ "$1" = HOSTNAME ] || exit 0
dir=${0%/*}
if grep -qxF -- "$2 $3" "$dir/pinned"; then
    printf '%s %s %s\\n' "$2" "$4" "$5"
else
    printf '%s %s %s\\n' "$2" "$4" "$3" >> "$dir/offered"
fi
exit 0
"""
_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")


def host_key_algorithms(key_type: str) -> str:
    """The host key algorithms ssh asks for to get a key of this type."""
    return "rsa-sha2-512,rsa-sha2-256" if key_type == "ssh-rsa" else key_type


def known_hosts_name(address: str, port: int) -> str:
    """How ssh names a host in known_hosts: the address, with its port in brackets unless 22."""
    address = address.lower()
    return address if port == 22 else f"[{address}]:{port}"


def _where(variables: dict[str, Any], name: str) -> tuple[str, int]:
    return str(variables.get("ansible_host") or name), int(variables.get("ansible_port") or 22)


def on_controller(variables: dict[str, Any]) -> bool:
    """A host at a loopback address is the controller itself: nothing between them to pin a key against."""
    address = str(variables.get("ansible_host") or "")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def hosts_without_keys(inventory: Inventory, hosts: Iterable[str]) -> list[str]:
    """The hosts of a run that have no accepted host key (the controller itself needs none)."""
    return [h for h in hosts if not inventory.hosts[h].get("vcops_host_key") and not on_controller(inventory.hosts[h])]


def write_host_keys(inventory: Inventory, hosts: Iterable[str], run_dir: Path) -> None:
    """The run's SSH trust (0700 folder): the accepted key of each host, and the script ssh asks about a key."""
    folder = ssh_dir(run_dir)
    folder.mkdir(mode=0o700, exist_ok=True)
    lines = []
    for name in hosts:
        variables = inventory.hosts[name]
        pin = variables.get("vcops_host_key")
        if isinstance(pin, dict) and pin.get("fingerprint"):
            lines.append(f"{known_hosts_name(*_where(variables, name))} {pin['fingerprint']}\n")
    _write_private(folder / "pinned", "".join(lines))
    script = folder / KNOWN_HOSTS_COMMAND
    _write_private(script, _KNOWN_HOSTS_SCRIPT)
    script.chmod(0o700)


def fingerprint_of(key_base64: str) -> str:
    """'AAAA...' (a public key as known_hosts writes it) -> 'SHA256:...', as ssh-keygen -l prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(key_base64)).digest()).decode().rstrip("=")


def scan_host_keys(targets: Iterable[tuple[str, int]], timeout: int = 5) -> dict[tuple[str, int], tuple[str, str]]:
    """The key each (address, port) offers now, by ssh-keyscan, all at once: {(address, port): (type,
    fingerprint)}, the preferred type when a host has several; hosts that do not answer are left out."""
    by_port: dict[int, list[str]] = {}
    for address, port in targets:
        by_port.setdefault(port, []).append(address)
    found: dict[tuple[str, int], tuple[str, str]] = {}
    keyscan = shutil.which("ssh-keyscan")
    if keyscan is None:
        log.warning("ssh-keyscan is not installed: the keys of hosts without an accepted key are not recorded")
        return found
    for port, addresses in by_port.items():
        named = {known_hosts_name(a, port): a for a in addresses}
        try:
            result = subprocess.run([keyscan, "-T", str(timeout), "-p", str(port), "--", *addresses],  # noqa: S603
                                    capture_output=True, text=True, timeout=timeout + 30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("ssh-keyscan failed: %s", exc)
            continue
        offered: dict[str, dict[str, str]] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#") and parts[0].lower() in named:
                offered.setdefault(parts[0].lower(), {})[parts[1]] = parts[2]
        for host, keys in offered.items():
            key_type = min(keys, key=lambda t: _KEY_PREFERENCE.index(t) if t in _KEY_PREFERENCE else 99)
            try:
                found[(named[host], port)] = (key_type, fingerprint_of(keys[key_type]))
            except ValueError:
                continue
    return found


def _record_offered(keys: dict[tuple[str, int], tuple[str, str]]) -> bool:
    """Record the keys hosts offered as waiting for a technician (the host keys page shows them)."""
    try:
        with commit_scope() as session:
            for (address, port), (key_type, fingerprint) in sorted(keys.items()):
                record_contact(session, address, port, key_type, fingerprint)
        return True
    except sa.exc.SQLAlchemyError as exc:  # (another run recorded the same key meanwhile)
        db.session.remove()
        log.warning("offered host keys not recorded: %s", type(exc).__name__)
        return False


def refuse_hosts_without_keys(inventory: Inventory, hosts: list[str]) -> str:
    """The refusal of a run whose hosts have no accepted key, naming them; the keys they offer now are recorded
    as waiting for a technician, so that accepting them is one click on the host keys page."""
    where = {h: _where(inventory.hosts[h], h) for h in hosts}
    offered = scan_host_keys(where.values())
    recorded = bool(offered) and _record_offered(offered)
    names = ", ".join(f"{h} ({known_hosts_name(*where[h])})" for h in hosts)
    return (f"No accepted SSH host key for {names}: a technician must accept each host's key before a job may "
            f"connect to it (Devices › Host keys)."
            + (" The keys they offer now wait there, to be compared with the hosts' own and accepted."
               if recorded else ""))


def refused_host_keys(inventory: Inventory, hosts: Iterable[str], run_dir: Path) -> str:
    """After a run: the hosts whose key ssh refused because it was not the accepted one, named with both
    fingerprints; the offered keys are recorded as waiting next to the pinned ones."""
    try:
        lines = (ssh_dir(run_dir) / "offered").read_text().splitlines()
    except OSError:
        return ""
    by_name = {known_hosts_name(*_where(inventory.hosts[h], h)): h for h in hosts}
    refusals: dict[str, tuple[str, str]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] in by_name:
            refusals[by_name[parts[0]]] = (parts[1], parts[2])
    if not refusals:
        return ""
    _record_offered({_where(inventory.hosts[h], h): keys for h, keys in refusals.items()})
    messages = []
    for host, (_key_type, offered) in sorted(refusals.items()):
        pinned = (inventory.hosts[host].get("vcops_host_key") or {}).get("fingerprint", "?")
        messages.append(f"{host} ({known_hosts_name(*_where(inventory.hosts[host], host))}) offered the SSH host "
                        f"key {offered}, not the accepted {pinned}: the connection was refused. If the host was "
                        f"reinstalled or replaced, compare its new key and accept it (Devices › Host keys).")
    return " ".join(messages)


# ---------------------------------------------------------------- which hosts a run works on

def _play_patterns(playbook: Path, seen: set[Path] | None = None) -> list[str]:
    """The host patterns of the playbook's plays (following import_playbook); "all" where one is templated."""
    from ansible.parsing.dataloader import DataLoader

    seen = seen or set()
    if playbook in seen:
        return []
    seen.add(playbook)
    plays = DataLoader().load_from_file(str(playbook)) or []
    patterns: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        if "import_playbook" in play:
            target = str(play["import_playbook"])
            patterns += (["all"] if "{{" in target
                         else _play_patterns((playbook.parent / target).resolve(), seen))
        elif "hosts" in play:
            hosts = play["hosts"]
            pattern = ",".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts)
            patterns.append("all" if "{{" in pattern else pattern)
    return patterns


def target_hosts(playbook: Path, inventory_file: Path, limit: str) -> list[str]:
    """The hosts the run will work on: each play's pattern within the limit, as Ansible itself resolves them."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory_file)])
    if limit:
        manager.subset(limit)
    found: set[str] = set()
    for pattern in _play_patterns(playbook):
        found.update(h.name for h in manager.get_hosts(pattern))
    return sorted(found)


# ---------------------------------------------------------------- keeping secrets out

class Scrubber:
    """Replaces every secret of a run (and its JSON-escaped spelling, and each line of a key) with ********."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.update({secret, secret.strip(), json.dumps(secret)[1:-1]})
            variants.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 16
                            and not line.startswith("-----"))
        # Longest first, so that a secret containing another is replaced whole.
        self._texts = sorted((v for v in variants if len(v) >= 3), key=len, reverse=True)
        self._bytes = [v.encode() for v in self._texts]

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, SCRUBBED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, SCRUBBED.encode())
        return value


def keep_artifacts(source: Path, target: Path, scrub: Scrubber) -> None:
    """Copy the run's artifacts, scrubbed; the environment recorded with the command is left out."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_symlink() or relative.name in {"ssh_key_data", "env.list"}:
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(exist_ok=True, mode=0o700)
            continue
        if not path.is_file():
            continue  # a FIFO (the key pipe) or a socket
        data = path.read_bytes()
        if relative == Path("command"):
            try:
                recorded = json.loads(data)
                data = json.dumps({"command": recorded.get("command"), "cwd": recorded.get("cwd")}).encode()
            except ValueError:
                data = b""
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_bytes(destination, scrub.data(data))


def _write_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


# ---------------------------------------------------------------- events

_RESULTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_skipped": "skipped",
            "runner_on_unreachable": "unreachable", "runner_item_on_ok": "ok", "runner_item_on_failed": "failed",
            "runner_item_on_skipped": "skipped", "runner_on_async_ok": "ok", "runner_on_async_failed": "failed"}


def classify(event: dict[str, Any]) -> tuple[str, str]:
    """(type, status) of an ansible-runner event: play, task, result (ok/changed/failed/…), stats, output."""
    name = event.get("event", "")
    data = event.get("event_data") or {}
    if name == "playbook_on_play_start":
        return "play", ""
    if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
        return "task", ""
    if name in _RESULTS:
        status = _RESULTS[name]
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        return "result", status
    if name == "playbook_on_stats":
        return "stats", ""
    return "output", ""


def host_counts(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per-host counts from the playbook_on_stats event (Ansible's ok includes the changed results)."""
    names = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
    counts: dict[str, dict[str, int]] = {}
    for source, name in names.items():
        for host, value in (stats.get(source) or {}).items():
            counts.setdefault(host, dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped"), 0))
            counts[host][name] = int(value)
    return counts


# ---------------------------------------------------------------- processes (Linux /proc)

def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[2])


def process_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _proc_stat(pid)
    if stat is None:
        return not Path("/proc").is_dir()  # without /proc, kill() is all we know
    return stat[0] != "Z"


def run_processes(pgid: int | None, run_dir: str) -> list[int]:
    """Live processes of a run: its process group, any process carrying the run's mark, and the run's shared
    SSH connections (ssh names its masters "ssh: <control socket> [mux]" over the memory that held its
    environment, so they are known by their socket's folder)."""
    found = []
    mark = f"{RUN_MARK}={run_dir}".encode() + b"\0"
    sockets = f"ssh: {control_dir(Path(run_dir))}/".encode() if run_dir else b""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is None or stat[0] == "Z":
            continue
        if pgid is not None and stat[1] == pgid:
            found.append(int(entry.name))
            continue
        if run_dir:
            try:
                if mark in (entry / "environ").read_bytes() or (entry / "cmdline").read_bytes().startswith(sockets):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def end_processes(pgid: int | None, run_dir: str) -> bool:
    """SIGTERM to the run's processes, SIGKILL to what is left after a grace period; True when none remain."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
        pids = run_processes(pgid, run_dir)
        if not pids:
            return True
        if pgid is not None:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and run_processes(pgid, run_dir):
            time.sleep(0.1)
    return not run_processes(pgid, run_dir)


# ---------------------------------------------------------------- taking and freeing hosts

def release_hosts(session: so.Session, job: Job) -> None:
    """Free the job's hosts and wake the jobs that waited for it (call with the job's row locked and its
    terminal state set, in the same transaction)."""
    session.execute(sa.delete(JobHost).where(JobHost.job_id == job.id))
    waiting = session.scalars(sa.select(Job.id).where(Job.waiting_for_job_id == job.id,
                                                      Job.state == JobState.QUEUED)).all()
    for job_id in waiting:
        outbox.enqueue(session, "jobs.run", job_id=job_id)


def _take_hosts(job_id: int, hosts: list[str]) -> str:
    """Take every host or none: "run" (the job is started), "wait" (it waits for the holder) or "skip"
    (no longer queued)."""
    for _attempt in range(10):
        try:
            with commit_scope() as session:
                job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
                if job is None or job.state is not JobState.QUEUED:
                    return "skip"
                holders = session.scalars(sa.select(JobHost.job_id).where(JobHost.host.in_(hosts),
                                                                          JobHost.job_id != job_id)
                                          .order_by(JobHost.job_id)).all() if hosts else []
                if holders:
                    # Lock the holder: it either ends after we record our wait (and wakes us), or it has
                    # ended already and freed the host, and we try again at once.
                    holder = session.get(Job, holders[0], with_for_update=True, populate_existing=True)
                    if holder is not None and not holder.finished:
                        job.waiting_for_job_id = holder.id
                        job.worker = ""  # back in the queue's hands: the holder's end queues it again
                        return "wait"
                    continue
                session.add_all(JobHost(host=h, job_id=job_id) for h in hosts)
                job.start()
                job.worker = worker_name()
                return "run"
        except sa.exc.IntegrityError:
            db.session.remove()  # another job took one of the hosts meanwhile: look again
    return "wait"


# ---------------------------------------------------------------- the run

@dataclass
class _Plan:
    job_id: int
    playbook: Path
    limit: str
    tags: str
    check: bool
    extra_vars: dict[str, Any]
    inventory: Inventory


def _fail(job_id: int, message: str) -> None:
    """End a job that could not run, with the reason (its hosts, if it had taken any, are freed)."""
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.finished:
            return
        if job.state is JobState.QUEUED:
            job.start()
        job.error = message[:4000]
        job.finish(None)
        release_hosts(session, job)


def run_job(job_id: int) -> None:
    """Carry out a queued job (the outbox handler of "jobs.run"); a job that is not queued is left alone."""
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.state is not JobState.QUEUED:
            return
        # Claimed: should this worker die before the run starts, the reaper (service.reap_lost_claims) marks
        # the job lost instead of leaving it queued with nobody to run it.
        job.worker = worker_name()
        plan = _Plan(job.id, Path(current_app.config["PLAYBOOK_DIR"]) / job.playbook, job.limit, job.tags,
                     job.check_mode, dict(job.extra_vars or {}),
                     build_inventory(session, job.template.credential_id))
    if not plan.playbook.is_file():
        _fail(job_id, f"The playbook {plan.playbook.name} is not in {plan.playbook.parent}.")
        return
    work_dir = current_app.config.get("JOB_WORK_DIR") or None
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    run_dir = Path(tempfile.mkdtemp(prefix=f"vcops-job-{job_id}-", dir=work_dir))  # mode 0700
    try:
        _run_in(plan, run_dir)
    finally:
        remove_run_dir(run_dir)


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run's private data directory (it holds opened credentials) and its SSH control folder."""
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(control_dir(run_dir), ignore_errors=True)


def _run_in(plan: _Plan, run_dir: Path) -> None:
    (run_dir / "inventory").mkdir(mode=0o700)
    (run_dir / "keys").mkdir(mode=0o700)
    (run_dir / "env").mkdir(mode=0o700)
    (run_dir / "tmp").mkdir(mode=0o700)
    plain_inventory = run_dir / "inventory" / "plan.yml"
    write_inventory(plan.inventory, plain_inventory)
    try:
        hosts = target_hosts(plan.playbook, plain_inventory, plan.limit)
    except Exception as exc:  # a playbook Ansible cannot read, a limit it refuses
        _fail(plan.job_id, f"The playbook or the limit cannot be read: {exc}")
        return
    finally:
        plain_inventory.unlink()
    if not hosts:
        _fail(plan.job_id, f"No host matches the playbook's hosts within the limit {plan.limit or '(none)'}.")
        return
    unpinned = hosts_without_keys(plan.inventory, hosts)
    if unpinned:  # refused before anything connects to them
        _fail(plan.job_id, refuse_hosts_without_keys(plan.inventory, unpinned))
        return
    if _take_hosts(plan.job_id, hosts) != "run":
        return
    outcome = _RunOutcome()
    scrub = Scrubber([])
    try:
        with commit_scope() as session:
            logins = credentials_for(session, {plan.inventory.credential_of[h] for h in hosts
                                               if h in plan.inventory.credential_of})
            session.execute(sa.update(Job).where(Job.id == plan.job_id).values(run_dir=str(run_dir)))
        scrub = Scrubber(login.secret for login in logins.values())
        # Only the hosts of this run get a login; the others stay in the inventory for its groups.
        run_inventory = Inventory(plan.inventory.hosts, plan.inventory.groups,
                                  {h: c for h, c in plan.inventory.credential_of.items() if h in hosts})
        write_inventory(run_inventory, run_dir / "inventory" / "hosts.yml", logins, run_dir / "keys")
        write_host_keys(plan.inventory, hosts, run_dir)
        control_dir(run_dir).mkdir(mode=0o700, exist_ok=True)
        if plan.extra_vars:
            _write_private(run_dir / "env" / "extravars",
                           yaml.dump(_unsafe(plan.extra_vars), Dumper=_InventoryDumper, allow_unicode=True))
        try:
            _run_playbook(plan, run_dir, scrub, outcome)
        finally:
            # The shared SSH connections outlive ansible-playbook by ControlPersist: end them with the run.
            end_processes(None, str(run_dir))
        refused = refused_host_keys(plan.inventory, hosts, run_dir)
        if refused:
            outcome.error = f"{outcome.error} {refused}".strip()
    except CredentialKeyError as exc:
        outcome.error = f"The credentials cannot be opened: {exc}"
    except Exception as exc:  # whatever broke, the job ends with the reason and its hosts are freed
        outcome.error = scrub.text(f"The run broke off: {type(exc).__name__}: {exc}")
        log.error("job %s: %s", plan.job_id, outcome.error)
    artifacts = Path(current_app.config["INSTANCE_PATH"]) / "jobs" / str(plan.job_id)
    try:
        if outcome.artifact_dir and Path(outcome.artifact_dir).is_dir():
            keep_artifacts(Path(outcome.artifact_dir), artifacts, scrub)
    except OSError as exc:
        log.warning("job %s: artifacts not kept: %s", plan.job_id, exc)
    _end(plan.job_id, outcome, artifacts)


@dataclass
class _RunOutcome:
    status: str = ""
    rc: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    artifact_dir: str = ""


def app_settings() -> dict[str, Any]:
    """The app's choices for ansible_settings() (JOB_FORKS, JOB_FACT_CACHE_SECONDS)."""
    config = current_app.config
    seconds = config.get("JOB_FACT_CACHE_SECONDS")
    seconds = DEFAULT_FACT_CACHE_SECONDS if seconds is None else int(seconds)
    return {"forks": int(config.get("JOB_FORKS") or DEFAULT_FORKS), "fact_cache_seconds": seconds,
            "fact_cache": fact_cache_dir() if seconds > 0 else None}


def _run_playbook(plan: _Plan, run_dir: Path, scrub: Scrubber, outcome: _RunOutcome) -> None:
    from ansible_runner.interface import init_runner

    job_id = plan.job_id
    state = {"pid_recorded": False, "checked": 0.0, "cancel": False}

    writer = EventWriter(current_app._get_current_object(), job_id, scrub)

    def on_event(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            outcome.stats = event.get("event_data") or {}
        writer.put(event)  # stored by the writer's thread: ansible-playbook's output is read on at once
        return True

    def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
        outcome.status = str(data.get("status", ""))
        log.info("job %s: %s", job_id, outcome.status)

    def cancel_requested() -> bool:
        if state["cancel"]:
            return True
        now = time.monotonic()
        if now - state["checked"] >= CANCEL_CHECK_SECONDS:
            state["checked"] = now
            state["cancel"] = _read(lambda s: s.scalar(sa.select(Job.cancel_requested_at)
                                                       .where(Job.id == job_id))) is not None
        return state["cancel"]

    timeout = int(current_app.config.get("JOB_TIMEOUT") or 0)
    settings = ansible_settings(run_dir, **app_settings())
    cmdline = "--check --diff" if plan.check else None
    runner = init_runner(private_data_dir=str(run_dir), project_dir=str(plan.playbook.parent),
                         playbook=str(plan.playbook), inventory=str(run_dir / "inventory" / "hosts.yml"),
                         limit=plan.limit or None, tags=plan.tags or None, cmdline=cmdline, ident="run",
                         envvars=settings, quiet=True, timeout=timeout or None, rotate_artifacts=0,
                         # ansible-runner would point the fact cache at the run's own artifacts (empty at each
                         # run): the settings' cache is the app's.
                         fact_cache_type="",
                         settings={"pexpect_timeout": 0.25, "pexpect_use_poll": True},
                         event_handler=on_event, status_handler=on_status, cancel_callback=cancel_requested)
    # ansible-playbook inherits only what it needs of the worker's environment (see _INHERITED_ENV).
    runner.config.env = {k: v for k, v in runner.config.env.items()
                         if k in settings or k not in os.environ or os.environ.get(k) != v or _INHERITED_ENV.match(k)}
    outcome.artifact_dir = runner.config.artifact_dir
    writer.start()
    try:
        status, rc = runner.run()
    finally:
        writer.close()  # every event is stored before the job is marked ended
    outcome.status, outcome.rc = status, rc
    if status == "timeout":
        outcome.error = f"Stopped after {timeout} seconds (VCOPS_JOB_TIMEOUT)."


class EventWriter:
    """Stores a run's events on a thread of its own, in order, a batch per short transaction: the events that
    came while the last batch was written, within EVENT_BATCH_SECONDS (so the job page shows a line a fraction
    of a second after Ansible printed it). The reading of ansible-playbook's output never waits for the
    database, and a run of 20 hosts writes tens of transactions instead of a thousand. A batch that cannot be
    stored is stored again one event at a time, so one bad event loses no other."""

    _END = object()

    def __init__(self, app: Any, job_id: int, scrub: Scrubber) -> None:
        self.app = app
        self.job_id = job_id
        self.scrub = scrub
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name=f"job-{job_id}-events", daemon=True)
        self.pid_recorded = False

    def start(self) -> None:
        self.thread.start()

    def put(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(self._END)
            self.thread.join()

    def _work(self) -> None:
        with self.app.app_context():
            ended = False
            while not ended:
                batch = [self.queue.get()]
                deadline = time.monotonic() + EVENT_BATCH_SECONDS
                while len(batch) < EVENT_BATCH_MAX and batch[-1] is not self._END:
                    try:
                        batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                if batch[-1] is self._END:
                    ended = True
                    batch.pop()
                if batch:
                    self._store(batch)
            db.session.remove()

    def _row(self, event: dict[str, Any]) -> JobEvent:
        kind, status = classify(event)
        data = event.get("event_data") or {}
        text = self.scrub.text
        return JobEvent(job_id=self.job_id, seq=int(event.get("counter") or 0), type=kind,
                        event=str(event.get("event", ""))[:60], host=str(data.get("host") or "")[:255],
                        task=text(str(data.get("task") or data.get("play") or ""))[:500], status=status,
                        stdout=text(_ANSI.sub("", str(event.get("stdout") or "")).replace("\r\n", "\n")))

    def _store(self, events: list[dict[str, Any]]) -> None:
        values: dict[str, Any] = {}
        if not self.pid_recorded:
            pid = next((int(e["pid"]) for e in events if e.get("pid")), None)
            if pid is not None:
                values = {"pid": pid, "pgid": _pgid(pid)}
        try:
            self._transaction(events, values)
        except Exception:
            db.session.remove()
            if len(events) == 1 and not values:
                log.warning("job %s: event %s not stored", self.job_id, events[0].get("counter"), exc_info=True)
                return
            for event in events:  # one at a time: the others are kept
                try:
                    self._transaction([event], {})
                except Exception as exc:
                    db.session.remove()
                    log.warning("job %s: event %s not stored: %s", self.job_id, event.get("counter"),
                                type(exc).__name__)
            if values:
                self._transaction([], values)
        if values:
            self.pid_recorded = True

    def _transaction(self, events: list[dict[str, Any]], values: dict[str, Any]) -> None:
        with commit_scope() as session:
            session.add_all(self._row(e) for e in events)
            for event in events:
                backup_from_event(session, self.job_id, event, self.scrub.text)  # a backup job's configurations
            if values:
                session.execute(sa.update(Job).where(Job.id == self.job_id).values(**values))


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _read(fn: Callable[[so.Session], Any]) -> Any:
    """A short read of its own (on SQLite without taking the write lock), ended at once."""
    with read_only_intent():
        try:
            return fn(db.session())
        finally:
            db.session.rollback()


def _end(job_id: int, outcome: _RunOutcome, artifacts: Path) -> None:
    with commit_scope() as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None:
            return
        job.host_counts = host_counts(outcome.stats)
        job.artifacts_path = str(artifacts) if artifacts.is_dir() else ""
        job.run_dir = ""
        if job.state is JobState.RUNNING:  # (a reaper may have marked it lost meanwhile)
            if outcome.error:
                job.error = outcome.error[:4000]
            if outcome.status == "canceled":
                job.return_code = outcome.rc
                job.cancel()
            else:
                job.finish(outcome.rc if outcome.status in ("successful", "failed") else None)
        release_hosts(session, job)


# ---------------------------------------------------------------- lost jobs

def _worker_gone(session: so.Session, worker: str, stale: dt.timedelta) -> tuple[bool, bool]:
    """(gone, here): whether the job's worker is gone, and whether it ran on this machine."""
    host, _sep, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not process_alive(int(pid)), True
    if not worker:
        return True, False
    # Another machine: gone when no worker of that machine has checked in lately (its own reaper, if it
    # runs, ends the processes it left).
    seen = session.scalar(sa.select(sa.func.max(WorkerCheckin.seen_at))
                          .where(WorkerCheckin.name.like(f"{host}:%")))
    return seen is None or seen < utcnow() - stale, False


def reap_lost_jobs(session: so.Session) -> list[int]:
    """Mark running jobs whose worker died as lost, after ending their ansible-playbook process group on
    this machine, and free their hosts; wake queued jobs still waiting for a job that has ended.
    Returns the ids of the jobs marked lost."""
    stale = dt.timedelta(seconds=int(current_app.config.get("WORKER_STALE_SECONDS") or 180))
    lost: list[int] = []
    running = session.scalars(sa.select(Job.id).where(Job.state == JobState.RUNNING).order_by(Job.id)).all()
    for job_id in running:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.state is not JobState.RUNNING:
            continue
        gone, here = _worker_gone(session, job.worker, stale)
        if not gone:
            continue
        if here:
            if not end_processes(job.pgid, job.run_dir):
                log.error("job %s: processes of the run survive SIGKILL; not marked lost yet", job.id)
                continue
            if job.run_dir:
                remove_run_dir(Path(job.run_dir))  # it holds opened credentials
        job.mark_lost()
        job.error = f"The worker {job.worker} stopped during the run."
        job.run_dir = ""
        release_hosts(session, job)
        lost.append(job.id)
        log.warning("job %s marked lost: worker %s is gone", job.id, job.worker)
    blocker = so.aliased(Job)
    waiting = session.scalars(sa.select(Job.id).join(blocker, Job.waiting_for_job_id == blocker.id)
                              .where(Job.state == JobState.QUEUED, blocker.state.in_(TERMINAL_STATES))).all()
    for job_id in waiting:
        outbox.enqueue(session, "jobs.run", job_id=job_id)
    session.flush()
    return lost

