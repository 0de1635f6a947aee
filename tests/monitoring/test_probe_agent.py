"""The probe agent as operators rely on it: links whose far ends live in probe labs (network namespaces that the
tests take down or make lossy) are measured each step, written to the database for the board, and shown on the
agent's /metrics for Prometheus; history is pruned; shards split the work; `vcops probe` runs as a process."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.config import SETTINGS
from app.db import commit_scope, db, utcnow
from app.monitoring.agent import store
from app.monitoring.agent.probe import Agent, run_step
from app.monitoring.models import EndpointSample, EndpointState, LinkSample, LinkState
from app.monitoring.topology import Shard
from app.sites import equipment, service
from app.sites.models import Endpoint, EndpointKind, Link, LinkMedium, Site, Status
from tests.support.netlab import REPO
from tests.support.served import free_port

FAST = {"PROBE_ECHOES": 5, "PROBE_ECHO_INTERVAL": 0.02, "PROBE_TIMEOUT": 0.5, "PROBE_HISTORY_MINUTES": 90,
        "DEVICE_CONNECT_TIMEOUT": 3, "DEVICE_COMMAND_TIMEOUT": 3}


@pytest.fixture
def probe_app(app: Any, session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared app (SQLite or PostgreSQL) with short probe settings, whose demo links and endpoints are
    retired for the test (their addresses are not in a lab of ours: nothing may be sent to them)."""
    for key, value in FAST.items():
        monkeypatch.setitem(app.config, key, value)
    session.execute(sa.update(Link).values(status=Status.RETIRED))
    session.execute(sa.update(Endpoint).values(status=Status.RETIRED))
    session.commit()
    return app


def communes(session: Any) -> list[Site]:
    """Demo sites that have a parent, ordered: the far ends of the test links."""
    return list(session.scalars(sa.select(Site).where(Site.parent_id.is_not(None)).order_by(Site.code)))


def add_links(session: Any, addresses: list[str], prefix: str = "LAB") -> list[Link]:
    """A dedicated link from a site's parent down to it for each address (the address is the site's end)."""
    sites = communes(session)
    links = []
    for i, address in enumerate(addresses):
        site = sites[i % len(sites)]
        links.append(equipment.save_link(session, {
            "code": f"{prefix}-{i + 1}", "site_a_id": site.id, "address_a": address, "site_b_id": site.parent_id,
            "address_b": "", "medium": LinkMedium.DEDICATED, "bandwidth_kbps": 8000}))
    session.commit()
    return links


def states(session: Any) -> dict[int, LinkState]:
    """The link states as they are now (detached copies: a later read does not change them)."""
    session.expire_all()
    found = {s.link_id: s for s in session.scalars(sa.select(LinkState))}
    for state in found.values():
        session.expunge(state)
    return found


def samples_of(session: Any, link: Link) -> list[LinkSample]:
    return list(session.scalars(sa.select(LinkSample).where(LinkSample.link_id == link.id)
                                .order_by(LinkSample.measured_at, LinkSample.id)))


def scrape(agent: Agent) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The agent's /metrics as Prometheus reads it: {sample name: {sorted labels: value}}."""
    assert agent.server is not None
    conn = http.client.HTTPConnection(agent.server.host, agent.server.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        body = response.read().decode()
    finally:
        conn.close()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(link: Link, site: str) -> tuple[tuple[str, str], ...]:
    return (("link", link.code), ("site", site))


# ---------------------------------------------------------------- one step

def test_one_step_records_every_link_up_with_sane_round_trips(probe_app, session, netlab):
    lab = netlab(4)
    links = add_links(session, lab.addresses)
    result = run_step(probe_app, Shard(), "probe-test")
    assert sorted(m.target.link_id for m in result.links) == sorted(link.id for link in links)
    assert "links: 4, 4 up, 0 down" in result.summary()
    found = states(session)
    for link in links:
        state = found[link.id]
        assert (state.up, state.sent, state.lost, state.agent) == (True, 5, 0, "probe-test")
        # A veth into a namespace on the same machine: well under a millisecond, never near the timeout.
        assert 0 < state.rtt_min <= state.rtt_median <= state.rtt_max < FAST["PROBE_TIMEOUT"]
        assert state.jitter is not None and 0 <= state.jitter < FAST["PROBE_TIMEOUT"]
        assert state.loss_ratio == 0
        assert utcnow() - state.measured_at < dt.timedelta(minutes=1)
        assert state.changed_at == state.measured_at
        assert [s.up for s in samples_of(session, link)] == [True]


def test_operator_sees_a_link_down_by_the_end_of_the_next_step(probe_app, session, netlab):
    failing, healthy = netlab(1), netlab(1)
    down_link, up_link = add_links(session, [failing.addresses[0], healthy.addresses[0]])
    site_of = {link.id: session.get(Site, link.site_a_id).code for link in (down_link, up_link)}
    agent = Agent(probe_app, Shard(), "board", listen="127.0.0.1:0")
    agent.serve()
    try:
        agent.step()
        first = states(session)
        assert first[down_link.id].up and first[up_link.id].up
        metrics = scrape(agent)
        assert metrics["vcops_link_up"][labels(down_link, site_of[down_link.id])] == 1

        failing.set_down()
        agent.step()
        second = states(session)
        state = second[down_link.id]
        assert (state.up, state.sent, state.lost, state.rtt_median, state.jitter) == (False, 5, 5, None, None)
        assert state.changed_at == state.measured_at > first[down_link.id].changed_at
        assert second[up_link.id].up and second[up_link.id].changed_at == first[up_link.id].changed_at
        assert [s.up for s in samples_of(session, down_link)][-2:] == [True, False]
        assert samples_of(session, down_link)[-1].lost == 5

        metrics = scrape(agent)
        down, up = labels(down_link, site_of[down_link.id]), labels(up_link, site_of[up_link.id])
        assert metrics["vcops_link_up"][down] == 0 and metrics["vcops_link_up"][up] == 1
        assert metrics["vcops_link_packet_loss_ratio"][down] == 1.0
        assert down not in metrics["vcops_link_rtt_seconds"] and up in metrics["vcops_link_rtt_seconds"]
        assert (metrics["vcops_link_probes_sent_total"][down], metrics["vcops_link_probes_lost_total"][down]) == (
            10, 5)
        assert metrics["vcops_probe_targets"][(("kind", "link"),)] == 2
        assert metrics["vcops_probe_step_duration_seconds"][()] > 0

        failing.set_up()
        agent.step()
        third = states(session)[down_link.id]
        assert third.up and third.changed_at == third.measured_at > state.changed_at
        assert scrape(agent)["vcops_link_up"][down] == 1
    finally:
        agent.close()


def test_a_lossy_link_is_up_with_its_loss_measured(probe_app, session, netlab, monkeypatch):
    monkeypatch.setitem(probe_app.config, "PROBE_ECHOES", 40)
    lab = netlab(1)
    (link,) = add_links(session, lab.addresses)
    lab.drop_icmp(50)
    run_step(probe_app)
    state = states(session)[link.id]
    assert state.up and state.sent == 40
    assert 0.1 < state.loss_ratio < 0.9  # 50 % dropped at random (five standard deviations either side)


def test_a_retired_link_leaves_the_board_and_keeps_its_history(probe_app, session, netlab):
    lab = netlab(2)
    kept, retired = add_links(session, lab.addresses)
    run_step(probe_app)
    equipment.retire(session, session.get(Link, retired.id))
    session.commit()
    result = run_step(probe_app)
    assert set(states(session)) == {kept.id}
    assert result.written.forgotten == 1
    assert len(samples_of(session, retired)) == 1


# ---------------------------------------------------------------- history

def test_history_older_than_the_setting_is_pruned_a_bounded_batch_per_step(probe_app, session, netlab, monkeypatch):
    lab = netlab(1)
    (link,) = add_links(session, lab.addresses)
    endpoint = session.scalar(sa.select(Endpoint).order_by(Endpoint.id).limit(1))  # retired: not probed
    now = utcnow()
    old = now - dt.timedelta(minutes=FAST["PROBE_HISTORY_MINUTES"] + 5)
    recent = now - dt.timedelta(minutes=FAST["PROBE_HISTORY_MINUTES"] - 5)
    session.add_all([LinkSample(link_id=link.id, up=True, sent=5, lost=0, measured_at=old - dt.timedelta(seconds=i))
                     for i in range(25)])
    session.add(LinkSample(link_id=link.id, up=True, sent=5, lost=0, measured_at=recent))
    session.add_all([EndpointSample(endpoint_id=endpoint.id, up=True, measured_at=old) for _ in range(3)])
    session.commit()
    monkeypatch.setattr(store, "PRUNE_BATCH", 10)

    pruned = [run_step(probe_app).written.pruned for _ in range(3)]
    assert pruned == [10 + 3, 10, 5]  # at most 10 per table and step: a backlog is worked off over steps
    session.expire_all()
    kept = samples_of(session, link)
    assert [s.measured_at for s in kept][0] == recent
    assert len(kept) == 1 + 3  # the recent one and the three steps'
    assert session.scalar(sa.select(sa.func.count()).select_from(EndpointSample)) == 0


# ---------------------------------------------------------------- shards

def test_two_shards_together_cover_every_target_exactly_once(probe_app, session, netlab):
    lab = netlab(9)
    links = add_links(session, lab.addresses[:6])
    sites = communes(session)
    endpoints = [equipment.save_endpoint(session, {
        "site_id": sites[i].id, "room_name": f"Phòng lab {i}", "vendor": "Cisco", "kind": EndpointKind.ROOM_SYSTEM,
        "mgmt_address": address, "mgmt_port": 22}) for i, address in enumerate(lab.addresses[6:])]
    session.commit()

    first = run_step(probe_app, Shard.parse("1/2"), "agent-1")
    second = run_step(probe_app, Shard.parse("2/2"), "agent-2")
    links_1 = {m.target.link_id for m in first.links}
    links_2 = {m.target.link_id for m in second.links}
    assert links_1.isdisjoint(links_2) and links_1 | links_2 == {link.id for link in links}
    endpoints_1 = {m.target.endpoint_id for m in first.endpoints}
    endpoints_2 = {m.target.endpoint_id for m in second.endpoints}
    assert endpoints_1.isdisjoint(endpoints_2) and endpoints_1 | endpoints_2 == {e.id for e in endpoints}
    assert links_1 and links_2  # ids alternate between the shards

    run_step(probe_app, Shard.parse("1/2"), "agent-1")  # a shard's step leaves the other shard's rows alone
    found = states(session)
    assert {link_id: s.agent for link_id, s in found.items()} == {
        link_id: "agent-1" if link_id in links_1 else "agent-2" for link_id in links_1 | links_2}
    endpoint_states = {s.endpoint_id: s for s in session.scalars(sa.select(EndpointState))}
    assert set(endpoint_states) == {e.id for e in endpoints}
    for state in endpoint_states.values():  # lab addresses answer echoes but have no SSH server
        assert state.up and state.icmp_up and state.mgmt_port_open is False and state.registered is None
        assert state.error == "The management port 22 does not answer."


# ---------------------------------------------------------------- the process

def _seed_fresh(app: Any, address: str) -> None:
    """An empty database: a province, a district and the link between them (the district's end at `address`)."""
    with app.app_context():
        with commit_scope() as session:
            service.ensure_levels(session, "three-level")
            province = service.create_site(session, {"code": "TQ", "name": "Tuyên Quang", "level": "province"})
            district = service.create_site(session, {"code": "TQ-LB", "name": "Lâm Bình", "level": "district",
                                                     "parent_id": province.id})
            equipment.save_link(session, {"code": "TQ-LB-1", "site_a_id": district.id, "address_a": address,
                                        "site_b_id": province.id, "medium": LinkMedium.DEDICATED,
                                        "bandwidth_kbps": 20000})
        db.session.remove()


def _environment(app: Any, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCOPS_")}
    env.update({"VCOPS_DATABASE_URL": app.config["DATABASE_URL"], "VCOPS_INSTANCE_PATH": app.config["INSTANCE_PATH"],
                "VCOPS_REDIS_URL": "", "PYTHONPATH": str(REPO)})
    env.update({f"VCOPS_{k}": str(v) for k, v in {**FAST, **settings}.items()})
    known = {s.key for s in SETTINGS}
    assert all(k.removeprefix("VCOPS_") in known for k in env if k.startswith("VCOPS_"))
    return env


def _query_states(app: Any) -> list[LinkState]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(LinkState)))
        db.session.remove()
    return found


def test_vcops_probe_once_prints_a_summary_and_writes_the_step(fresh_app, netlab):
    lab = netlab(1)
    app = fresh_app("sqlite")
    _seed_fresh(app, lab.addresses[0])
    run = subprocess.run([sys.executable, "-m", "app.cli", "probe", "--once", "--agent", "cli-agent"], cwd=REPO,
                         env=_environment(app), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "agent cli-agent (shard 1/1)" in run.stdout and "links: 1, 1 up, 0 down" in run.stdout
    (state,) = _query_states(app)
    assert state.up and state.agent == "cli-agent" and state.sent == FAST["PROBE_ECHOES"]


def test_vcops_probe_refuses_a_shard_it_cannot_read(fresh_app):
    app = fresh_app("sqlite")
    run = subprocess.run([sys.executable, "-m", "app.cli", "probe", "--once", "--shard", "3/2"], cwd=REPO,
                         env=_environment(app), capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--shard 3/2: I must be between 1 and N." in run.stderr


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_agent_steps_serves_metrics_and_stops_cleanly_on_sigterm(fresh_app, netlab, process):
    lab = netlab(1)
    app = fresh_app("sqlite")
    _seed_fresh(app, lab.addresses[0])
    port = free_port()
    # A step (5 echoes 0.02 s apart and the writes) lasts longer than this: each step overruns and says so.
    env = _environment(app, PROBE_STEP_SECONDS=0.05, PROBE_LISTEN=f"127.0.0.1:{port}")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "probe"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    process.append(proc)
    body = ""
    for _ in range(300):
        try:
            status, body = _get(port, "/metrics")
        except OSError:
            status = 0
        if status == 200 and 'vcops_link_up{link="TQ-LB-1",site="TQ-LB"} 1.0' in body:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    else:
        raise AssertionError(f"the agent's /metrics never showed the link up:\n{body}")
    assert _get(port, "/healthz")[0] == 200
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"started; /metrics on http://127.0.0.1:{port}/metrics" in out
    assert out.rstrip().endswith("probe agent stopped")
    assert "SIGTERM received" in err and "more than PROBE_STEP_SECONDS (0.05 s): the next starts now" in err
    with pytest.raises(OSError):
        _get(port, "/metrics")
    (state,) = _query_states(app)
    assert state.up


def test_an_agent_in_the_background_abandons_its_step_when_stopped(fresh_app, netlab):
    lab = netlab(1)
    # A step of 200 echoes 0.05 s apart lasts ten seconds: stop() comes in the middle of it.
    app = fresh_app("sqlite", **{**FAST, "PROBE_ECHOES": 200, "PROBE_ECHO_INTERVAL": 0.05})
    _seed_fresh(app, lab.addresses[0])
    agent = Agent(app, Shard(), "background", listen="127.0.0.1:0")
    agent.start()
    try:
        for _ in range(100):
            if agent.measuring:
                break
            time.sleep(0.05)
        assert agent.running and agent.measuring and agent.server is not None
    finally:
        agent.stop(timeout=10)
    assert not agent.running and agent.server is None
    assert agent.last is None and _query_states(app) == []  # nothing of the abandoned step was written
