"""server_baseline.yml and link_qos.yml run through the app's jobs against two Linux test hosts: the files land
in each host's own view of /etc (never the machine's), the rules are in each host's network namespace, the
media service restarts once when its configuration is new and never on a second run, which changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.provisioning.models import JobState
from app.sites.models import HostKind

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/nft").exists() or not Path("/usr/sbin/tc").exists(),
                                reason="nftables and iproute2's tc are needed: apt-get install nftables iproute2")

MANAGED = ("/etc/vcops-media/media.conf", "/etc/init.d/vcops-media", "/etc/nftables.d/vcops-baseline.nft")


def _totals(job) -> dict[str, int]:
    return {key: sum(counts[key] for counts in job.host_counts.values()) for key in ("ok", "changed", "failed")}


def test_a_technician_sets_up_two_media_servers_and_a_second_run_changes_and_restarts_nothing(linux_bed):
    real_etc = {path: Path(path).exists() for path in MANAGED}
    real_conf = Path("/etc/nftables.conf").read_bytes() if Path("/etc/nftables.conf").exists() else None
    bed = linux_bed(2, HostKind.MEDIA_SERVER)

    job = bed.run("server_baseline.yml", extra_vars={"media_bitrate_kbps": 4096, "ntp_servers": ["198.18.0.1"]})
    assert job.state is JobState.SUCCEEDED, bed.log(job)
    assert set(job.host_counts) == {"h1", "h2"} and all(c["changed"] > 0 for c in job.host_counts.values())

    for host in bed.hosts.values():
        conf = host.run("cat", "/etc/vcops-media/media.conf").stdout
        assert "bitrate_kbps = 4096" in conf and "port_min = 16384" in conf
        assert "server 198.18.0.1 iburst" in host.run("cat", "/etc/chrony/chrony.conf").stdout
        ruleset = host.run("nft", "list", "table", "inet", "vcops_baseline").stdout
        assert "udp dport 5060 accept" in ruleset and "tcp dport { 5060, 5061 } accept" in ruleset
        assert "udp dport 16384-32767 accept" in ruleset
        assert host.run("cat", "/var/lib/vcops-media/restarts").stdout.strip() == "1"
        assert host.run("/etc/init.d/vcops-media", "status", check=False).returncode == 0
    # Nothing reached the machine's own files.
    assert {path: Path(path).exists() for path in MANAGED} == real_etc
    assert (Path("/etc/nftables.conf").read_bytes() if real_conf is not None else None) == real_conf

    again = bed.run("server_baseline.yml", extra_vars={"media_bitrate_kbps": 4096, "ntp_servers": ["198.18.0.1"]})
    assert again.state is JobState.SUCCEEDED, bed.log(again)
    assert _totals(again)["changed"] == 0, bed.log(again)
    for host in bed.hosts.values():
        assert host.run("cat", "/var/lib/vcops-media/restarts").stdout.strip() == "1"

    # A new bitrate restarts the service once more, on the one host it was asked for.
    third = bed.run("server_baseline.yml", limit="h1",
                    extra_vars={"media_bitrate_kbps": 6144, "ntp_servers": ["198.18.0.1"]})
    assert third.state is JobState.SUCCEEDED, bed.log(third)
    assert bed.hosts["h1"].run("cat", "/var/lib/vcops-media/restarts").stdout.strip() == "2"
    assert bed.hosts["h2"].run("cat", "/var/lib/vcops-media/restarts").stdout.strip() == "1"


def test_rules_lost_at_a_reboot_are_loaded_again(linux_bed):
    bed = linux_bed(1, HostKind.MEDIA_SERVER)
    assert bed.run("server_baseline.yml").state is JobState.SUCCEEDED
    host = bed.hosts["h1"]
    host.run("nft", "delete", "table", "inet", "vcops_baseline")
    job = bed.run("server_baseline.yml")
    assert job.state is JobState.SUCCEEDED and job.host_counts["h1"]["changed"] == 1, bed.log(job)
    assert "udp dport 16384-32767 accept" in host.run("nft", "list", "ruleset").stdout


def test_a_technician_shapes_two_link_routers_to_their_bandwidth_and_marks_video_af41(linux_bed):
    bed = linux_bed(2, HostKind.LINK_ROUTER)
    job = bed.run("link_qos.yml", extra_vars={"bandwidth_kbps": 2048})
    assert job.state is JobState.SUCCEEDED, bed.log(job)
    for host in bed.hosts.values():
        qdiscs = json.loads(host.run("tc", "-j", "qdisc", "show", "dev", f"vh{host.index}b", "root").stdout)
        assert [(q["kind"], q["options"]["rate"]) for q in qdiscs] == [("tbf", 2048 * 1000 // 8)]
        ruleset = host.run("nft", "list", "table", "inet", "vcops_qos").stdout
        assert "udp dport 16384-32767 ip dscp set af41" in ruleset
        assert "udp sport 16384-32767 ip dscp set af41" in ruleset

    again = bed.run("link_qos.yml", extra_vars={"bandwidth_kbps": 2048})
    assert again.state is JobState.SUCCEEDED and _totals(again)["changed"] == 0, bed.log(again)

    # The contract grows: the shaper follows, nothing else changes.
    bigger = bed.run("link_qos.yml", limit="h2", extra_vars={"bandwidth_kbps": 10000})
    assert bigger.state is JobState.SUCCEEDED and bigger.host_counts["h2"]["changed"] == 1, bed.log(bigger)
    host = bed.hosts["h2"]
    qdiscs = json.loads(host.run("tc", "-j", "qdisc", "show", "dev", f"vh{host.index}b", "root").stdout)
    assert qdiscs[0]["options"]["rate"] == 10000 * 125


def test_a_link_router_without_a_bandwidth_fails_naming_the_missing_variable(linux_bed):
    bed = linux_bed(1, HostKind.LINK_ROUTER)
    job = bed.run("link_qos.yml")
    assert job.state is JobState.FAILED
    assert "bandwidth_kbps" in bed.log(job)
