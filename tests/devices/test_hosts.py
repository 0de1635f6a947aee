"""The test hosts themselves (tests/hosts.py): their own filesystem view, names that never clash, and nothing
left behind, also when a test fails or a run was killed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
import pytest

from tests.support.hosts import LOCKS, HostLab, host_lab, missing_requirements


def _ssh(host) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # the test's own host, made a moment ago
    client.connect(host.address, username=host.username, key_filename=str(host.client_key), timeout=5,
                   allow_agent=False, look_for_keys=False)
    return client


def _gone(host) -> bool:
    return (not Path(f"/run/netns/{host.namespace}").exists() and not Path(f"/sys/class/net/{host.host_if}").exists()
            and not (LOCKS / str(host.index)).exists())


def test_a_linux_host_writes_to_its_own_etc_and_never_to_the_machines(ssh_hosts):
    (host,) = ssh_hosts(1, "linux")
    marker = f"vcops-test-{host.index}"
    with _ssh(host) as client:
        command = (f"echo chrony > /etc/{marker} && mkdir -p /root/.ansible/tmp/{marker}"
                   f" && echo t > /tmp/{marker} && cat /etc/{marker}")
        _stdin, stdout, _stderr = client.exec_command(command)
        assert stdout.read().decode().strip() == "chrony" and stdout.channel.recv_exit_status() == 0
        with client.open_sftp() as sftp:  # Ansible copies its modules over sftp
            with sftp.open(f"/etc/{marker}.conf", "w") as fh:
                fh.write("server ntp.tuyenquang.vn iburst\n")
    assert not Path(f"/etc/{marker}").exists() and not Path(f"/etc/{marker}.conf").exists()
    assert not Path(f"/tmp/{marker}").exists() and not Path("/root/.ansible/tmp").joinpath(marker).exists()
    assert (host.folder / "fs" / "upper" / "etc" / marker).read_text() == "chrony\n"
    assert host.run("cat", f"/etc/{marker}.conf").stdout == "server ntp.tuyenquang.vn iburst\n"


def test_every_host_has_its_own_names_and_subnet_and_all_are_removed_when_the_test_fails(tmp_path):
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    with pytest.raises(RuntimeError, match="the test failed"), host_lab(tmp_path) as lab:
        hosts = lab.make(2, "xapi") + lab.make(1, "linux")
        assert len({h.namespace for h in hosts}) == 3 and len({h.address for h in hosts}) == 3
        assert all(len(h.host_if) <= 15 and len(f"vh{h.index}b") <= 15 for h in hosts)
        assert all(h.address.startswith(("198.18.", "198.19.")) for h in hosts)
        anchors = [h.anchor_pid() for h in hosts]
        assert all(anchors)
        raise RuntimeError("the test failed")
    assert all(_gone(h) for h in hosts)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in anchors)


def test_what_a_killed_run_left_behind_is_removed_by_the_next_one(tmp_path):
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    lab = HostLab(tmp_path / "killed")
    try:
        (host,) = lab.make(1, "xapi")
        dead = subprocess.Popen(["true"])  # a pid that no longer lives: the killed run's
        dead.wait()
        (LOCKS / str(host.index)).write_text(f"{dead.pid} {host.namespace} {host.host_if}\n")
        lab.hosts.clear()  # the killed run never cleaned up
        HostLab(tmp_path / "next")
        assert _gone(host)
    finally:
        lab.cleanup()
