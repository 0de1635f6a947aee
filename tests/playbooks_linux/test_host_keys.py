"""A job connects only to hosts whose SSH key a technician accepted: a Linux server whose key changed is refused
(Ansible counts it unreachable, nothing on it changes, and the job names the host with both fingerprints and
records the new key for a technician to compare); a host without an accepted key is refused before anything
logs in to it, and once its key is accepted the same job runs."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import commit_scope, db
from app.devices import hostkeys
from app.devices.models import HostKey, HostKeyState
from app.provisioning.models import JobState
from app.sites.models import HostKind

BASELINE = {"media_bitrate_kbps": 4096, "ntp_servers": ["198.18.0.1"]}


def _keys(bed, host) -> dict[str, HostKeyState]:
    with bed.app.app_context():
        keys = {k.fingerprint: k.state for k in db.session.scalars(
            sa.select(HostKey).where(HostKey.address == host.address, HostKey.port == host.port))}
        db.session.remove()
    return keys


def test_a_linux_server_whose_host_key_changed_is_refused_and_left_untouched(linux_bed):
    bed = linux_bed(2, HostKind.MEDIA_SERVER)
    changed, kept = bed.hosts["h1"], bed.hosts["h2"]
    pinned = changed.host_key_fingerprint()
    offered = changed.regenerate_host_key()  # reinstalled, or someone in the way
    assert offered != pinned

    job = bed.run("server_baseline.yml", extra_vars=BASELINE)
    assert job.state is JobState.FAILED, bed.log(job)
    assert job.host_counts["h1"]["unreachable"] == 1 and job.host_counts["h1"]["changed"] == 0
    assert job.host_counts["h2"]["failed"] == 0 and job.host_counts["h2"]["changed"] > 0, "the other host ran"
    assert f"h1 ({changed.address}) offered the SSH host key {offered}, not the accepted {pinned}" in job.error
    assert changed.run("test", "-e", "/etc/vcops-media/media.conf", check=False).returncode != 0
    assert changed.ssh_connections() == 0, "no login: the key was refused before any credential was sent"
    assert kept.run("test", "-e", "/etc/vcops-media/media.conf", check=False).returncode == 0
    # The new key waits next to the pinned one, for a technician to compare and accept.
    assert _keys(bed, changed) == {pinned: HostKeyState.ACCEPTED, offered: HostKeyState.PENDING}


def test_a_host_without_an_accepted_key_is_refused_before_any_login_and_runs_once_accepted(linux_bed):
    bed = linux_bed(1, HostKind.MEDIA_SERVER, pinned=False)
    host = bed.hosts["h1"]

    job = bed.run("server_baseline.yml", extra_vars=BASELINE)
    assert job.state is JobState.FAILED and job.host_counts == {}
    assert f"No accepted SSH host key for h1 ({host.address})" in job.error
    assert "accept each host's key" in job.error
    assert host.ssh_connections() == 0
    # The key the host offers waits for a technician, who compares it with the host's own and accepts it.
    assert _keys(bed, host) == {host.host_key_fingerprint(): HostKeyState.PENDING}
    with bed.app.app_context():
        with commit_scope() as session:
            key = session.scalars(sa.select(HostKey).where(HostKey.address == host.address)).one()
            hostkeys.accept(session, key, None)
        db.session.remove()

    again = bed.run("server_baseline.yml", extra_vars=BASELINE)
    assert again.state is JobState.SUCCEEDED, bed.log(again)
    assert again.host_counts["h1"]["changed"] > 0
