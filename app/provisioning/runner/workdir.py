"""A run's private data directory (mode 0700, removed whatever happens): where it is made, the inventory it
holds (YAML, 0600, secrets marked !unsafe, key files 0600), and its removal with the run's SSH control folder.

The inventory itself is built by app.provisioning.inventory, shared with the dynamic inventory script
inventory/vcops.py.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from flask import current_app

from app.provisioning.credentials.service import DeviceLogin
from app.provisioning.inventory import Inventory
from app.provisioning.runner.files import write_private
from app.provisioning.runner.hostkeys import host_key_algorithms
from app.provisioning.runner.settings import control_dir


class _Unsafe(str):
    """A value Ansible must never template (secrets, user-given variables): written with YAML's !unsafe."""


class InventoryDumper(yaml.SafeDumper):
    pass


InventoryDumper.add_representer(_Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsafe(v) for v in value]
    return value


def dump_yaml(document: Any) -> str:
    """YAML as Ansible reads a run's files: values wrapped by unsafe() are written with !unsafe."""
    return yaml.dump(document, Dumper=InventoryDumper, allow_unicode=True, sort_keys=False)


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
                    write_private(key_files[login.credential_id], login.private_key)
                host_vars["ansible_ssh_private_key_file"] = str(key_files[login.credential_id])
            else:
                host_vars["ansible_password"] = _Unsafe(login.password)
        hosts[name] = host_vars
    children = {g: {"hosts": dict.fromkeys(names, None)} for g, names in inventory.groups.items()}
    document = {"all": {"hosts": hosts, "children": children}}
    write_private(path, dump_yaml(document))


def make_run_dir(job_id: int) -> Path:
    """A new private data directory (0700) for the job's run, in JOB_WORK_DIR or the system's temporary folder."""
    work_dir = current_app.config.get("JOB_WORK_DIR") or None
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(prefix=f"vcops-job-{job_id}-", dir=work_dir))  # mode 0700


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run's private data directory (it holds opened credentials) and its SSH control folder."""
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(control_dir(run_dir), ignore_errors=True)
