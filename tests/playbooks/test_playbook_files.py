"""The endpoint playbooks are clean for Ansible (--syntax-check) and for ansible-lint (offline), and the
vcops_xapi module upgrades an endpoint (the firmware playbook's step): it reboots and returns the new version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import PROJECT_ROOT

PLAYBOOKS = PROJECT_ROOT / "playbooks"
MINE = ("provision_endpoint.yml", "backup_config.yml", "readiness.yml")
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library")}


@pytest.mark.parametrize("playbook", MINE)
def test_endpoint_playbooks_pass_the_syntax_check(playbook):
    if not (BIN / "ansible-playbook").exists():
        pytest.skip("ansible-playbook is not installed beside the test's Python")
    result = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", playbook],
                            cwd=PLAYBOOKS, env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_endpoint_playbooks_pass_ansible_lint_offline():
    lint = BIN / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed (pip install ansible-lint)")
    result = subprocess.run([str(lint), "--offline", *(f"playbooks/{p}" for p in MINE)], cwd=PROJECT_ROOT,
                            env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_module_upgrades_an_endpoint_and_returns_the_new_version(ssh_hosts, tmp_path):
    host = ssh_hosts(1, "xapi", boot_seconds=1.0)[0]
    inventory = {"all": {"hosts": {"room": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ansible_host": host.address, "ansible_user": host.username, "ansible_password": host.password,
        "vcops_vendor": "Cisco", "vcops_host_key": {"type": "ssh-ed25519", "fingerprint": host.host_key_fingerprint()},
    }}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "upgrade.yml").write_text(yaml.safe_dump([{"name": "Upgrade", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Install the image", "register": "up", "vcops_xapi": {
            "action": "upgrade", "host": "{{ ansible_host }}", "vendor": "{{ vcops_vendor }}",
            "username": "{{ ansible_user }}", "password": "{{ ansible_password }}", "host_key": "{{ vcops_host_key }}",
            "url": "http://198.18.0.1/firmware/cmterm-s53200ce11_9_1_5.k4.cop.sha512", "version": "ce11.9.1.5",
            "checksum": "a" * 128, "boot_timeout": 60}},
            {"name": "Show", "ansible.builtin.debug": {"msg": "VERSION={{ up.version }} CHANGED={{ up.changed }}"}}]}]))
    result = subprocess.run([shutil.which("ansible-playbook", path=str(BIN)) or "ansible-playbook", "-i",
                             str(tmp_path / "hosts.yml"), str(tmp_path / "upgrade.yml")], env=_env(),
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERSION=ce11.9.1.5 CHANGED=True" in result.stdout
    assert host.read_state()["software"]["version"] == "ce11.9.1.5"
    assert host.password not in result.stdout + result.stderr
    assert json.dumps(host.read_state()["boots"]) == "1"
