"""How a run reaches its hosts: one SSH login per host for the whole run (every task rides on it), closed when
the job ends, and a host's facts gathered once and reused by the runs of the next hour."""

from __future__ import annotations

from pathlib import Path

import psutil

from app.provisioning.models import JobState
from app.sites.models import HostKind

BASELINE = {"media_bitrate_kbps": 4096, "ntp_servers": ["198.18.0.1"]}


def _orphan_connections(bed) -> list[str]:
    """ssh masters ("ssh: <control socket> [mux]") of VCOps runs that are over: their socket's folder (in the
    job's private data directory, or a vcops-cp-* folder named after it) is gone."""
    work = bed.app.config["JOB_WORK_DIR"]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        # ssh writes its master's title over its arguments: psutil may hand it back whole or split at spaces
        title = " ".join(process.info["cmdline"] or []).strip()
        if title.startswith("ssh: ") and title.endswith("[mux]"):
            socket = Path(title[len("ssh: "):-len("[mux]")].strip())
            ours = str(socket).startswith(work) or socket.parent.name.startswith("vcops-cp-")
            if ours and not socket.parent.exists():
                found.append(title)
    return found


def _gathered(bed, job) -> set[str]:
    return {e.host for e in bed.events(job.id) if e.type == "result" and e.task == "Gathering Facts"}


def test_each_host_gets_one_login_per_run_and_no_connection_outlives_the_job(linux_bed):
    bed = linux_bed(2, HostKind.MEDIA_SERVER)

    first = bed.run("server_baseline.yml", extra_vars=BASELINE)
    assert first.state is JobState.SUCCEEDED, bed.log(first)
    assert {name: h.ssh_connections() for name, h in bed.hosts.items()} == {"h1": 1, "h2": 1}
    assert _gathered(bed, first) == {"h1", "h2"}
    assert _orphan_connections(bed) == []

    again = bed.run("server_baseline.yml", extra_vars=BASELINE)
    assert again.state is JobState.SUCCEEDED, bed.log(again)
    assert {name: h.ssh_connections() for name, h in bed.hosts.items()} == {"h1": 2, "h2": 2}
    assert _gathered(bed, again) == set(), "the facts of the first run were reused"
    assert _orphan_connections(bed) == []
