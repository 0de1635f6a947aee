"""A run's SSH trust: the accepted (pinned) host keys of its hosts as ssh's KnownHostsCommand, the refusal
of hosts without one, and the keys hosts offered instead, recorded for a technician (Devices › Host keys)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.db import commit_scope, db
from app.devices.hostkeys import record_contact
from app.provisioning.inventory import Inventory
from app.provisioning.runner.files import write_private

log = logging.getLogger(__name__)

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


def ssh_dir(run_dir: Path) -> Path:
    """The run's SSH trust: the accepted host keys of its hosts, and ssh's look-up of them."""
    return run_dir / "ssh"


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
    write_private(folder / "pinned", "".join(lines))
    script = folder / KNOWN_HOSTS_COMMAND
    write_private(script, _KNOWN_HOSTS_SCRIPT)
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
