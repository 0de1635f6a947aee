"""A technician provisions the endpoints from VCOps: provision_endpoint.yml through the job machinery against
simulated room systems over SSH; the settings land on the devices, a second run changes nothing, check mode
shows a diff and changes nothing, and an endpoint that does not answer is reported unreachable."""

from __future__ import annotations

from app.provisioning.models import JobState
from tests.playbooks.conftest import SITES


def _config(host) -> dict:
    return host.read_state()["config"]


def test_technician_provisions_endpoints_once_and_a_second_run_changes_nothing(province):
    p = province(3)
    before = [h.ssh_connections() for h in p.hosts]

    job = p.run("provision_endpoint.yml")

    assert job.state is JobState.SUCCEEDED, (job.error, p.log(job.id))
    for host, (code, name) in zip(p.hosts, SITES, strict=False):
        config = _config(host)
        assert config["SIP DisplayName"] == name
        assert config["SIP URI"] == f"{code.lower()}@vc.tuyenquang.example.com"
        assert config["Time Zone"] == "Asia/Ho_Chi_Minh"
        assert config["Network 1 QoS Diffserv Video"] == 34
        assert config["Conference DefaultCall Rate"] == 2048
        assert config["NetworkServices NTP Mode"] == "Manual"
        assert config["NetworkServices NTP Server 1 Address"] == "0.vn.pool.ntp.org"
    assert [h.ssh_connections() - b for h, b in zip(p.hosts, before, strict=True)] == [1, 1, 1]
    assert {h: c["changed"] for h, c in job.host_counts.items()} == dict.fromkeys(p.names, 1)

    again = p.run("provision_endpoint.yml")
    assert again.state is JobState.SUCCEEDED
    assert {h: c["changed"] for h, c in again.host_counts.items()} == dict.fromkeys(p.names, 0)


def test_check_mode_shows_the_difference_and_changes_nothing(province):
    p = province(2)
    assert p.run("provision_endpoint.yml").state is JobState.SUCCEEDED
    with_state = p.hosts[0].state_path
    from simulators.cisco_xapi import StateStore

    with StateStore(with_state).edit() as state:  # someone changed the room's display name by hand
        state["config"]["SIP DisplayName"] = "Phòng cũ"
    untouched = [h.read_state()["config"] for h in p.hosts]

    job = p.run("provision_endpoint.yml", check=True)

    assert job.state is JobState.SUCCEEDED, p.log(job.id)
    assert [h.read_state()["config"] for h in p.hosts] == untouched
    assert job.host_counts[p.names[0]]["changed"] == 1 and job.host_counts[p.names[1]]["changed"] == 0
    log = p.log(job.id)
    assert "Phòng cũ" in log and SITES[0][1] in log  # the diff: before and after


def test_an_endpoint_that_does_not_answer_is_unreachable_while_the_others_are_provisioned(province):
    p = province(3)
    p.hosts[1].stop_ssh()
    p.hosts[1].wait_until_down()

    job = p.run("provision_endpoint.yml")

    assert job.host_counts[p.names[1]]["unreachable"] == 1, p.log(job.id)
    assert job.host_counts[p.names[0]]["changed"] == 1 and job.host_counts[p.names[2]]["changed"] == 1
    assert _config(p.hosts[0])["Time Zone"] == "Asia/Ho_Chi_Minh"
    assert "Time Zone" not in _config(p.hosts[1])
