"""VCOps' Ansible settings for a run: ansible-playbook's environment (speed: Mitogen, pipelining, forks,
shared SSH connections, the fact cache; trust: only pinned host keys) and what it inherits of the worker's."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from flask import current_app

from app.config import PROJECT_ROOT, default
from app.provisioning.runner.hostkeys import KNOWN_HOSTS_COMMAND, ssh_dir

RUN_MARK = "VCOPS_JOB_RUN"  # set in ansible-playbook's environment: finds the run's processes after a crash
# Inherited variables ansible-playbook may see; everything else of the worker's environment (the database
# URL, the credential keys, the session secret…) stays out of it and out of the run's artifacts.
INHERITED_ENV = re.compile(r"^(PATH|HOME|USER|LOGNAME|SHELL|TERM|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|PYTHONPATH|"
                            r"ANSIBLE_\w+|SSL_CERT_\w+|REQUESTS_CA_BUNDLE)$")

DEFAULT_FORKS = default("JOB_FORKS")  # hosts worked on at once; Ansible's own default is 5
SSH_CONTROL_PERSIST_SECONDS = 60
# Facts (OS, service manager…) change with a reinstall, not from one run to the next: a host's are gathered
# again when older than this (JOB_FACT_CACHE_SECONDS; 0 gathers them at every run, as Ansible does by default).
DEFAULT_FACT_CACHE_SECONDS = default("JOB_FACT_CACHE_SECONDS")
# A control socket's path is its folder + 28 characters (Ansible's 10-character name, ssh's temporary suffix)
# and must fit in the 108 bytes of a Unix socket address.
_CONTROL_DIR_MAX = 72

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
    accepts only the host keys a technician accepted (written by hostkeys.write_host_keys(); ~/.ssh/known_hosts and the
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


def app_settings() -> dict[str, Any]:
    """The app's choices for ansible_settings() (JOB_FORKS, JOB_FACT_CACHE_SECONDS)."""
    config = current_app.config
    seconds = int(config["JOB_FACT_CACHE_SECONDS"])
    return {"forks": int(config["JOB_FORKS"]), "fact_cache_seconds": seconds,
            "fact_cache": fact_cache_dir() if seconds > 0 else None}


def inherited_env(env: dict[str, str], settings: dict[str, str]) -> dict[str, str]:
    """ansible-playbook's environment: the run's settings, what ansible-runner added, and only those of the
    worker's own variables that INHERITED_ENV lets through."""
    return {k: v for k, v in env.items()
            if k in settings or k not in os.environ or os.environ.get(k) != v or INHERITED_ENV.match(k)}
