#!/usr/bin/python
# ruff: noqa: E402 - Ansible modules keep DOCUMENTATION and RETURN above their imports
"""vcops_xapi: VCOps' Ansible module for video endpoints, run on the controller (connection: local).

Endpoints have no Python: the module talks to each one through VCOps' device profile for its vendor
(app/devices: the Cisco xAPI over SSH first), so a second vendor is a new profile and no playbook changes.
Each call opens one SSH connection, does all its reads and writes on it, and closes it. The host key must be
the one a technician accepted (given by the inventory as vcops_host_key); any other is refused before a
credential is sent. The password is a no_log parameter: Ansible masks it in every result and log.

It needs the controller's Python with VCOps installed: plays set
`ansible_python_interpreter: "{{ ansible_playbook_python }}"`.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: vcops_xapi
short_description: Configure, back up, check and upgrade a video endpoint through VCOps' device profiles
description:
  - Runs on the controller and talks to the endpoint over SSH with the profile of its vendor.
  - One SSH connection per call; the host key is pinned.
options:
  action:
    description: What to do.
    choices: [configure, status, backup, command, upgrade]
    required: true
    type: str
  host: {description: Management address., required: true, type: str}
  port: {description: SSH port., default: 22, type: int}
  vendor: {description: The endpoint's vendor (selects the profile)., required: true, type: str}
  label: {description: How messages name the endpoint., default: "", type: str}
  username: {description: Login., required: true, type: str}
  password: {description: Password (no_log)., type: str}
  key_file: {description: Private key file (the runner writes it, mode 0600)., type: path}
  host_key: {description: "The accepted host key: {type, fingerprint}.", type: dict}
  settings: {description: Desired settings (common names or native paths), for configure., type: dict}
  command: {description: The device's own command, for command., type: str}
  params: {description: Its parameters., type: dict}
  url: {description: Software image URL, for upgrade., type: str}
  checksum: {description: Its SHA-256 or SHA-512 checksum (hex)., default: "", type: str}
  version: {description: The version the image brings; already running it means no change., default: "", type: str}
  boot_timeout: {description: Seconds to wait for the device to come back after the upgrade., default: 300, type: int}
  endpoint_id: {description: VCOps' id of the endpoint (a backup names it)., type: int}
  connect_timeout: {description: Seconds for connect, handshake and login., default: 10, type: float}
  command_timeout: {description: Seconds for one request and its answer., default: 30, type: float}
"""

RETURN = r"""
status: {description: The device's status in common terms (status, and after upgrade)., type: dict}
diff: {description: Before and after of the settings that differ (configure)., type: dict}
config: {description: The configuration as text, one native path a line (backup)., type: str}
sha256: {description: Its SHA-256 (backup)., type: str}
vcops_backup: {description: What VCOps stores as a configuration backup (backup)., type: dict}
clock_offset_seconds: {description: Controller time minus device time (status), when the device tells it., type: float}
version: {description: The software version after the upgrade., type: str}
"""

import datetime as dt
import hashlib
import sys
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    from app.devices.profile import (
        DeviceError,
        DeviceLogin,
        DeviceTimeout,
        DeviceUnreachable,
        PinnedFingerprint,
        Target,
        Timing,
        profile_class,
    )
    IMPORT_ERROR = ""
except ImportError as exc:  # the interpreter is not VCOps' Python
    IMPORT_ERROR = str(exc)


def _device_time(device: Any) -> dt.datetime | None:
    """The device's clock, when its profile can read it (a `clock()` method, or the Cisco status leaf)."""
    if hasattr(device, "clock"):
        return device.clock()
    if hasattr(device, "status_values"):
        text = device.status_values("Time SystemTime").get("Time SystemTime", "")
        if text:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None


def _config_text(config: dict[str, str]) -> str:
    return "".join(f"{path}: {value}\n" for path, value in sorted(config.items()))


def run(module: AnsibleModule, device: Any) -> dict[str, Any]:
    p = module.params
    action = p["action"]
    if action == "status":
        before = time.time()
        status = device.status()
        device_time = _device_time(device)
        result: dict[str, Any] = {"changed": False, "status": status}
        if device_time is not None:
            after = time.time()
            result["device_time"] = device_time.isoformat()
            result["clock_offset_seconds"] = round((before + after) / 2 - device_time.timestamp(), 1)
        return result
    if action == "configure":
        if not p["settings"]:
            module.fail_json(msg="configure needs settings")
        change = device.apply_config(p["settings"], check=module.check_mode)
        # As text, one setting a line: Ansible shows it as a unified diff (names and values as typed, not
        # JSON-escaped).
        shown = {side: _config_text({k: "" if v is None else str(v) for k, v in change.diff[side].items()})
                 for side in ("before", "after")}
        return {"changed": change.changed, "diff": shown, "settings_changed": change.diff}
    if action == "backup":
        text = _config_text(device.get_config())
        digest = hashlib.sha256(text.encode()).hexdigest()
        return {"changed": False, "config": text, "sha256": digest,
                "vcops_backup": {"endpoint_id": p["endpoint_id"], "content": text, "sha256": digest}}
    if action == "command":
        if not p["command"]:
            module.fail_json(msg="command needs the command's name")
        if module.check_mode:
            return {"changed": True, "msg": "not run in check mode"}
        return {"changed": True, "result": device.command(p["command"], **(p["params"] or {}))}
    # upgrade
    if not p["url"]:
        module.fail_json(msg="upgrade needs the image's url")
    current = device.status()["software_version"]
    if p["version"] and current == p["version"]:
        return {"changed": False, "version": current, "msg": f"already running {current}"}
    if module.check_mode:
        return {"changed": True, "version": current, "diff": {"before": {"version": current},
                                                              "after": {"version": p["version"] or p["url"]}}}
    device.upgrade_software(p["url"], p["checksum"])
    time.sleep(1.0)  # the device takes a moment before it drops its sessions
    status = device.wait_until_back(timeout=p["boot_timeout"])
    version = status["software_version"]
    if p["version"] and version != p["version"]:
        module.fail_json(msg=f"after the upgrade the device runs {version}, not {p['version']}", version=version,
                         status=status)
    return {"changed": version != current, "version": version, "previous_version": current, "status": status,
            "diff": {"before": {"version": current}, "after": {"version": version}}}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True,
                       "choices": ["configure", "status", "backup", "command", "upgrade"]},
            "host": {"type": "str", "required": True},
            "port": {"type": "int", "default": 22},
            "vendor": {"type": "str", "required": True},
            "label": {"type": "str", "default": ""},
            "username": {"type": "str", "required": True},
            "password": {"type": "str", "no_log": True},
            "key_file": {"type": "path", "no_log": False},
            "host_key": {"type": "dict"},
            "settings": {"type": "dict"},
            "command": {"type": "str"},
            "params": {"type": "dict"},
            "url": {"type": "str"},
            "checksum": {"type": "str", "default": "", "no_log": False},
            "version": {"type": "str", "default": ""},
            "boot_timeout": {"type": "int", "default": 300},
            "endpoint_id": {"type": "int"},
            "connect_timeout": {"type": "float", "default": 10},
            "command_timeout": {"type": "float", "default": 30},
        },
        required_one_of=[("password", "key_file")],
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=f"VCOps is not importable by {sys.executable}: {IMPORT_ERROR}; set "
                             "ansible_python_interpreter to ansible_playbook_python")
    p = module.params
    pin = p["host_key"] or {}
    if not pin.get("type") or not pin.get("fingerprint"):
        module.fail_json(msg=f"No accepted host key for {p['host']}:{p['port']}: a technician must accept the "
                             "endpoint's fingerprint first (endpoint page, device actions).")
    key_text = None
    if p["key_file"]:
        with open(p["key_file"], encoding="utf-8") as fh:
            key_text = fh.read()
    try:
        cls = profile_class(p["vendor"])
        device = cls(Target(p["host"], p["port"], p["label"]),
                     DeviceLogin(p["username"], password=p["password"], private_key=key_text),
                     PinnedFingerprint(pin["type"], pin["fingerprint"]),
                     Timing(connect_timeout=p["connect_timeout"], command_timeout=p["command_timeout"]))
    except DeviceError as exc:
        module.fail_json(msg=exc.message)
    try:
        result = run(module, device)
    except (DeviceUnreachable, DeviceTimeout) as exc:
        # Ansible counts the host unreachable (not failed), as for a host it cannot log in to.
        device.close()
        module.exit_json(unreachable=True, changed=False, msg=exc.message)
    except DeviceError as exc:
        device.close()
        module.fail_json(msg=exc.message)
    device.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
