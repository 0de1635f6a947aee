"""bench/provisioning — playbook runs through VCOps against plain ansible-playbook, on real SSH test hosts.

In one run (root needed: the hosts are network namespaces with their own sshd, tests/hosts.py):
1. server_baseline.yml on N Linux test hosts (media servers), timed three ways on the same hosts:
   (a) through VCOps: a job launched by the app's service and carried out by its runner (ansible-runner with
       VCOps' settings, events stored as they come), from the launch to the job's end;
   (b) plain `ansible-playbook` with Ansible's default settings (no pipelining, 5 forks, the linear strategy,
       ssh's default ControlPersist): the play's own `ansible_pipelining: true` is overridden with
       `-e ansible_pipelining=false`, and the hosts' keys are in a known_hosts file of the bench;
   (c) plain `ansible-playbook` with VCOps' settings: the environment `runner.settings.ansible_settings()` gives the
       runner, the inventory and host keys the runner writes.
   Every timed run sets a new media bitrate, so each one changes the media service's configuration and
   restarts it on every host: the same work for the three. A first, untimed run through VCOps sets the hosts up.
   Targets: (a) at most 0.5 of (b), and within 10% of (c).
2. provision_endpoint.yml through VCOps on N simulated endpoints (the xAPI simulator): wall time of a run
   that changes every endpoint and of a second one that changes nothing, and SSH logins per host and run
   (target: one).

    .venv/bin/python bench/provisioning.py [--servers 20] [--endpoints 20] [--rounds 1]

Prints a table; record the figures in bench/README.md (section "Provisioning").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.models import Role, User  # noqa: E402
from app.auth.service import create_user  # noqa: E402
from app.db import commit_scope, db  # noqa: E402
from app.devices.models import HostKey, HostKeyState  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.provisioning import service  # noqa: E402
from app.provisioning.credentials import service as vault  # noqa: E402
from app.provisioning.inventory import build_inventory  # noqa: E402
from app.provisioning.models import Job, JobEvent, JobState  # noqa: E402
from app.provisioning.runner import hostkeys, processes, workdir  # noqa: E402
from app.provisioning.runner import settings as run_settings  # noqa: E402
from app.sites.models import Endpoint, HostKind, ManagedHost  # noqa: E402
from tests.support.hosts import HostLab, LabHost, missing_requirements  # noqa: E402
from tests.support.outbox import drain_outbox  # noqa: E402
from tests.support.seeds import province_site  # noqa: E402

PLAYBOOKS = ROOT / "playbooks"
VENV_BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- the app

def make_app(work: Path, backend_url: str = "") -> Any:
    instance = work / "instance"
    url = backend_url or f"sqlite:///{instance / 'vcops.db'}"
    instance.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    return create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": url, "SECRET_KEY": "bench",
                       "REDIS_URL": "", "EMBEDDED_WORKER": False, "PLAYBOOK_DIR": str(PLAYBOOKS),
                       "JOB_WORK_DIR": str(work / "jobs"), "DEFAULT_LANGUAGE": "en"})


def _pin(session: Any, host: LabHost) -> None:
    session.add(HostKey(address=host.address, port=host.port, key_type="ssh-ed25519",
                        fingerprint=host.host_key_fingerprint(), state=HostKeyState.ACCEPTED))


def seed(app: Any, servers: list[LabHost], endpoints: list[LabHost]) -> int:
    """A province with the servers as media servers (one key credential) and the endpoints at its hall (a
    password each), every host key accepted; returns the technician's id."""
    with app.app_context():
        with commit_scope() as session:
            site = province_site(session)
            user = create_user(session, "tech@example.com", Role.TECHNICIAN, "correct horse battery")
            for i, host in enumerate(servers, 1):
                session.add(ManagedHost(site_id=site.id, name=f"media{i:02d}", kind=HostKind.MEDIA_SERVER,
                                        mgmt_address=host.address))
                _pin(session, host)
            if servers:
                key = vault.create_credential(session, "lab key", "ssh_key", "root", servers[0].private_key_text)
                vault.assign_credential(session, key, HostKind.MEDIA_SERVER.value)
            for i, host in enumerate(endpoints, 1):
                endpoint = Endpoint(site_id=site.id, room_name=f"Phòng họp {i:02d}", vendor="Cisco",
                                    mgmt_address=host.address, mgmt_port=host.port,
                                    sip_uri=f"room{i:02d}@vc.tuyenquang.example.com")
                session.add(endpoint)
                session.flush()
                _pin(session, host)
                login = vault.create_credential(session, f"room {i:02d}", "password", host.username, host.password)
                vault.assign_credential(session, login, "endpoint", device=endpoint)
            user_id = user.id
        db.session.remove()
    return user_id


def run_job(app: Any, user_id: int, playbook: str, extra_vars: dict[str, Any]) -> tuple[float, Job, int]:
    """Launch through the service and carry the job out as the worker does; (wall seconds, job, events)."""
    with app.app_context():
        started = time.perf_counter()
        with commit_scope() as session:
            template = service.save_template(session, {"name": f"{playbook} {time.monotonic_ns()}",
                                                       "playbook": playbook})
            job = service.launch_job(session, template, session.get(User, user_id), extra_vars=extra_vars)
        job_id = job.id
        db.session.remove()
        drain_outbox()
        wall = time.perf_counter() - started
        job = db.session.get(Job, job_id)
        events = db.session.scalar(sa.select(sa.func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id))
        db.session.remove()
    if job.state is not JobState.SUCCEEDED:
        raise RuntimeError(f"{playbook} through VCOps ended {job.state.value}: {job.error}")
    return wall, job, int(events or 0)


# ---------------------------------------------------------------- plain ansible-playbook

def _base_env(mark: Path) -> dict[str, str]:
    """What any shell gives ansible-playbook; no ANSIBLE_* setting of the caller's leaks in."""
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "USER", "LOGNAME", "LANG", "TERM", "TZ")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", os.defpath)])
    env[run_settings.RUN_MARK] = str(mark)  # finds the run's lingering ssh masters afterwards (not an Ansible setting)
    return env


def plain_default(work: Path, servers: list[LabHost], extra: Path) -> float:
    """ansible-playbook with Ansible's defaults; the control sockets in a folder of their own so that no
    connection of another run is reused (the location is not a speed setting)."""
    folder = work / f"default-{time.monotonic_ns()}"
    (folder / "cp").mkdir(parents=True)
    known = folder / "known_hosts"
    known.write_text("".join(f"{h.address} {(h.folder / 'hostkey.pub').read_text().split(' ')[0]} "
                             f"{(h.folder / 'hostkey.pub').read_text().split(' ')[1]}\n" for h in servers))
    lines = ["all:", "  children:", "    media_servers:", "      hosts:"]
    for i, host in enumerate(servers, 1):
        lines += [f"        media{i:02d}:", f"          ansible_host: {host.address}", "          ansible_user: root",
                  f"          ansible_ssh_private_key_file: {host.client_key}",
                  f"          ansible_ssh_extra_args: -o UserKnownHostsFile={known}"]
    (folder / "hosts.yml").write_text("\n".join(lines) + "\n")
    env = _base_env(folder) | {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(folder / "cp"),
                               "ANSIBLE_LOCAL_TEMP": str(folder / "tmp")}
    return _timed_playbook(folder, env, ["-i", str(folder / "hosts.yml"), "-e", f"@{extra}",
                                         "-e", "ansible_pipelining=false"])


def plain_vcops(app: Any, work: Path, extra: Path) -> float:
    """ansible-playbook with the environment, inventory and host keys the runner gives a run."""
    folder = Path(tempfile.mkdtemp(prefix="vcops-plain-", dir=work))
    with app.app_context():
        inventory = build_inventory(db.session())
        logins = vault.credentials_for(db.session(), set(inventory.credential_of.values()))
        (folder / "keys").mkdir(mode=0o700)
        workdir.write_inventory(inventory, folder / "hosts.yml", logins, folder / "keys")
        hostkeys.write_host_keys(inventory, list(inventory.hosts), folder)
        settings = run_settings.app_settings()
        db.session.remove()
    run_settings.control_dir(folder).mkdir(mode=0o700)
    env = _base_env(folder) | run_settings.ansible_settings(folder, **settings)
    try:
        return _timed_playbook(folder, env, ["-i", str(folder / "hosts.yml"), "-e", f"@{extra}"])
    finally:
        workdir.remove_run_dir(folder)


def _timed_playbook(folder: Path, env: dict[str, str], args: list[str]) -> float:
    command = [str(VENV_BIN / "ansible-playbook"), *args, str(PLAYBOOKS / "server_baseline.yml")]
    with (folder.parent / f"{folder.name}.log").open("w") as out:
        started = time.perf_counter()
        result = subprocess.run(command, cwd=PLAYBOOKS, env=env, stdout=out, stderr=subprocess.STDOUT,
                                check=False, timeout=900)
        wall = time.perf_counter() - started
    processes.end_processes(None, str(folder))  # the ssh masters it left (ControlPersist)
    if result.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed ({result.returncode}); see {folder.parent / folder.name}.log")
    return wall


# ---------------------------------------------------------------- CPU spent

def _controller_cpu() -> float:
    """CPU seconds of this process (the worker's part of a VCOps run) and of its ended children
    (ansible-playbook, its forks and ssh clients)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _targets_cpu(hosts: list[LabHost]) -> float:
    """CPU seconds the hosts' ended SSH sessions took (modules, shells, sftp, sshd's own work), from the
    accounting of each host's sshd listener, read once every session has ended and been reaped."""
    listeners = {pid for pid in (h.sshd_pid() for h in hosts) if pid is not None}

    def sessions() -> int:
        count = 0
        for process in psutil.process_iter(["ppid"]):
            count += process.info["ppid"] in listeners
        return count

    deadline = time.monotonic() + 30
    while sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    seconds = 0.0
    for pid in listeners:
        times = psutil.Process(pid).cpu_times()
        seconds += times.user + times.system + times.children_user + times.children_system
    return seconds


def _sessions(host: LabHost) -> int:
    """SSH sessions the host's sshd started so far: each a command or a file transfer, and a round trip over
    the network at least (LogLevel VERBOSE logs one line for each)."""
    try:
        return (host.folder / "sshd.log").read_text(errors="replace").count("Starting session: ")
    except FileNotFoundError:
        return 0


@dataclass
class Measure:
    wall: float
    controller: float  # CPU seconds
    targets: float  # CPU seconds
    logins: float  # SSH connections that logged in, per host (median)
    sessions: float  # SSH sessions, per host (median)


def measured(hosts: list[LabHost], work: Callable[[], float]) -> Measure:
    controller, targets = _controller_cpu(), _targets_cpu(hosts)
    logins, sessions = [h.ssh_connections() for h in hosts], [_sessions(h) for h in hosts]
    wall = work()
    return Measure(wall, _controller_cpu() - controller, _targets_cpu(hosts) - targets,
                   statistics.median(h.ssh_connections() - n for h, n in zip(hosts, logins, strict=True)),
                   statistics.median(_sessions(h) - n for h, n in zip(hosts, sessions, strict=True)))


# ---------------------------------------------------------------- the benchmark

def bench_servers(app: Any, user_id: int, work: Path, servers: list[LabHost],
                  rounds: int) -> dict[str, list[Measure]]:
    bitrate = iter(range(3000, 9000, 7))

    def extra_vars() -> dict[str, Any]:
        return {"media_bitrate_kbps": next(bitrate), "ntp_servers": ["198.18.0.1"]}

    def extra_file() -> Path:
        path = work / f"extra-{time.monotonic_ns()}.yml"
        values = extra_vars()
        path.write_text(f"media_bitrate_kbps: {values['media_bitrate_kbps']}\nntp_servers: [198.18.0.1]\n")
        return path

    def through_vcops() -> float:
        wall, job, count = run_job(app, user_id, "server_baseline.yml", extra_vars())
        changed = sum(c["changed"] for c in job.host_counts.values())
        print(f"      ({changed} changes, {count} events stored)", flush=True)
        return wall

    print(f"server_baseline.yml: first run through VCOps (sets the {len(servers)} hosts up, not timed)…", flush=True)
    run_job(app, user_id, "server_baseline.yml", extra_vars())
    results: dict[str, list[Measure]] = {"a": [], "b": [], "c": []}
    variants: dict[str, Callable[[], float]] = {
        "a": through_vcops,
        "b": lambda: plain_default(work, servers, extra_file()),
        "c": lambda: plain_vcops(app, work, extra_file()),
    }
    for r in range(rounds):
        for key in (["b", "c", "a"] if r % 2 == 0 else ["a", "c", "b"]):
            m = measured(servers, variants[key])
            results[key].append(m)
            print(f"  round {r + 1}: ({key}) {m.wall:6.1f} s wall, CPU {m.controller:5.1f} s controller + "
                  f"{m.targets:5.1f} s targets, per host {m.logins:g} login(s) and {m.sessions:g} sessions, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    restarts = {h.run("cat", "/var/lib/vcops-media/restarts").stdout.strip() for h in servers}
    print(f"  media service restarts per host after all runs: {sorted(restarts)}")
    return results


def bench_endpoints(app: Any, user_id: int, endpoints: list[LabHost]) -> list[tuple[str, float, list[int], int]]:
    rows = []
    for label in ("changes every endpoint", "changes nothing"):
        before = [h.ssh_connections() for h in endpoints]
        wall, job, _count = run_job(app, user_id, "provision_endpoint.yml", {})
        logins = [h.ssh_connections() - b for h, b in zip(endpoints, before, strict=True)]
        changed = sum(c["changed"] for c in job.host_counts.values())
        rows.append((label, wall, logins, changed))
        print(f"  provision_endpoint.yml ({label}): {wall:.1f} s, {changed} hosts changed, "
              f"SSH logins per host {min(logins)}–{max(logins)}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=20, help="Linux test hosts for server_baseline.yml")
    parser.add_argument("--endpoints", type=int, default=20, help="simulated endpoints for provision_endpoint.yml")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each of (a), (b), (c)")
    parser.add_argument("--database-url", default="", help="the app's database (default: SQLite in the bench folder)")
    parser.add_argument("--keep", action="store_true", help="keep the bench folder (logs of the plain runs)")
    args = parser.parse_args()
    reason = missing_requirements()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if not (VENV_BIN / "ansible-playbook").exists():
        print("cannot run: ansible-playbook is not installed beside this Python", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vcops-bench-provisioning-"))
    lab = HostLab(work / "lab")
    try:
        started = time.perf_counter()
        servers = lab.make(args.servers, "linux") if args.servers else []
        for host in servers:
            # The hosts see the machine's /root through an overlay: a developer's ~/.bashrc there (pyenv
            # init: ~100 processes at each SSH command) is no part of a server; empty it in each host's view.
            host.run("sh", "-c", ": > /root/.bashrc")
        endpoints = lab.make(args.endpoints, "xapi", boot_seconds=1.0) if args.endpoints else []
        print(f"{len(servers)} Linux hosts and {len(endpoints)} endpoints made in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        app = make_app(work, args.database_url)
        user_id = seed(app, servers, endpoints)
        times = bench_servers(app, user_id, work, servers, args.rounds) if servers else {}
        rows = bench_endpoints(app, user_id, endpoints) if endpoints else []
        app.extensions["vcops_engine"].dispose()
    finally:
        lab.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench folder kept: {work}")

    print()
    if times:
        med = {k: Measure(*(statistics.median(getattr(m, f) for m in times[k])
                            for f in ("wall", "controller", "targets", "logins", "sessions"))) for k in times}
        a, b, c = med["a"], med["b"], med["c"]
        print(f"server_baseline.yml on {len(servers)} Linux hosts (median of {args.rounds} run(s) each; CPU "
              "seconds of the controller and of the targets' SSH sessions; logins and sessions per host)")
        print("| run | wall time | CPU controller | CPU targets | logins / sessions per host | ratio |")
        print("| --- | --- | --- | --- | --- | --- |")
        for key, label, ratio in (("a", "(a) through VCOps", f"a/b {a.wall / b.wall:.2f} (target ≤ 0.5)"),
                                  ("b", "(b) plain, Ansible's defaults", "1"),
                                  ("c", "(c) plain, VCOps' settings", f"a/c {a.wall / c.wall:.2f} (target ≤ 1.10)")):
            m = med[key]
            print(f"| {label} | {m.wall:.1f} s | {m.controller:.1f} s | {m.targets:.1f} s | "
                  f"{m.logins:g} / {m.sessions:g} | {ratio} |")
    if rows:
        print()
        print(f"provision_endpoint.yml on {len(endpoints)} simulated endpoints, through VCOps")
        print("| run | wall time | hosts changed | SSH logins per host (min–max) |")
        print("| --- | --- | --- | --- |")
        for label, wall, logins, changed in rows:
            print(f"| {label} | {wall:.1f} s | {changed} | {min(logins)}–{max(logins)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
