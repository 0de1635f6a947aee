"""Probe labs: a network namespace full of addresses to measure, with a link from the machine that tests impair.

`with lab(n_addresses=200) as l:` (or the `netlab` pytest fixture: `l = netlab(n_addresses=200)`) gives
- `l.addresses`: addresses in the lab's namespace (on its loopback), which the kernel there answers;
- `l.run(*argv)`: a command run inside the namespace;
- impairments: `l.set_down()` / `l.set_up()` (the machine's end of the link), `l.drop_icmp(percent)` (nftables
  inside the namespace drops that share of incoming ICMP at random), `l.start_responder(delays_ms=[40, 60])`
  (the kernel stops answering echoes and tests/monitoring/responder.py answers them after the scripted delays,
  alternating per address), `l.clear_impairments()`;
- for calls' media, in any namespace (a lab's or a test host's): `drop_udp(namespace, percent)` (nftables drops
  that share of incoming UDP at random, SIP's port spared), `limit_rate(namespace, device, kbit, queue_ms)` (a
  tbf queue: the kernel may lack sch_netem) and `clear_udp(namespace, device)`.
Everything the lab made (namespace, veth pair, routes, nftables table, the responder, the lock) is removed when
the block ends, also when the test fails. Without root or iproute2 the lab skips the test with the reason
(tests/conftest.py turns skips into failures in CI).

Addresses: 198.19.0.0/16 only (198.18.0.0/16 belongs to the SSH test hosts of tests/hosts.py). A lab claims one
/22 block (1,024 addresses) by index with a lock file in /run/vcops-test-labs/ holding the owner's pid
(tests/support/claims.py, as the SSH test hosts do); a lock whose owner is gone is reclaimed and what it left
removed. In block B (base = 198.19.0.0 + 1024*B):
`base+1/30` is the machine's end of the veth `vl<B>a`, `base+2/30` the namespace's end `vl<B>b`, the addresses
start at `base+4`. The machine routes the block via `base+2`, and keeps an `unreachable` route for the block
below it, so that while the link is down the echoes fail at once (ENETUNREACH/EHOSTUNREACH) instead of
leaving by the machine's default route.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import claims, hosts

REPO = Path(__file__).resolve().parents[2]
RESPONDER = REPO / "tests" / "monitoring" / "responder.py"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
NETWORK = ipaddress.ip_network("198.19.0.0/16")
BLOCK = 1024
BLOCKS = NETWORK.num_addresses // BLOCK
FIRST_ADDRESS = 4  # offsets 0-3 are the link's /30
MAX_ADDRESSES = BLOCK - FIRST_ADDRESS
LOCKS = Path("/run/vcops-test-labs")
RUN_ID = secrets.token_hex(3)
UNREACHABLE_METRIC = "65000"
NFT_TABLE = "vcops_impair"


def missing_requirements() -> str | None:
    """Why probe labs cannot be made on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "probe labs need root (network namespaces, veth pairs, raw ICMP sockets); run the tests as root"
    if shutil.which("ip") is None:
        return "iproute2 is not installed (`ip` missing): apt-get install iproute2"
    return None


def _run(*argv: str, check: bool = True, timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return hosts._run(*argv, check=check, timeout=timeout, **kwargs)


_alive = claims._alive


def _block_base(index: int) -> ipaddress.IPv4Address:
    return NETWORK.network_address + BLOCK * index


@dataclass
class Lab:
    """One probe lab: a namespace behind one veth pair, with `addresses` answering inside it."""

    index: int
    namespace: str
    host_if: str
    ns_if: str
    addresses: list[str]
    folder: Path
    _responder: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def block(self) -> str:
        return f"{_block_base(self.index)}/22"

    @property
    def host_address(self) -> str:
        return str(_block_base(self.index) + 1)

    @property
    def peer_address(self) -> str:
        """The namespace's end of the link (the next hop to every lab address)."""
        return str(_block_base(self.index) + 2)

    # ---------------------------------------------------------------- acting on it

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the lab's network namespace."""
        return _run("ip", "netns", "exec", self.namespace, *argv, check=check, timeout=timeout)

    def set_down(self) -> None:
        """Take the machine's end of the link down: echoes to the lab cannot even be sent."""
        _run("ip", "link", "set", self.host_if, "down")

    def set_up(self) -> None:
        """Bring the link back, with the route to the block (the kernel dropped it with the link)."""
        _run("ip", "link", "set", self.host_if, "up")
        deadline = time.monotonic() + 10
        while True:
            result = _run("ip", "route", "replace", self.block, "via", self.peer_address, "dev", self.host_if,
                          check=False)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"route to {self.block} not restored: {result.stderr.strip()}")
            time.sleep(0.05)

    def drop_icmp(self, percent: float) -> None:
        """Drop `percent` % of the ICMP packets entering the namespace, at random (nftables' numgen)."""
        if shutil.which("nft") is None:
            pytest.skip("nftables is not installed (`nft` missing): apt-get install nftables")
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must lie between 0 and 100, not {percent}")
        self._delete_nft_table()
        script = (f"table inet {NFT_TABLE} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n"
                  f"  ip protocol icmp numgen random mod 100 < {int(round(percent))} drop\n }}\n}}\n")
        _run("ip", "netns", "exec", self.namespace, "nft", "-f", "-", input=script)

    def start_responder(self, delays_ms: Sequence[float] = (40, 60)) -> None:
        """Answer echoes in the namespace after the scripted delays instead of the kernel (which answers at
        once): reply i to an address waits delays_ms[i % len(delays_ms)] ms after the request arrived."""
        if not delays_ms or any(d < 0 for d in delays_ms):
            raise ValueError(f"delays_ms must be a non-empty list of non-negative delays, not {delays_ms!r}")
        self.stop_responder()
        self.run("sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
        log = self.folder / "responder.log"
        argv = ["ip", "netns", "exec", self.namespace, SYSTEM_PYTHON, str(RESPONDER),
                "--delays", ",".join(str(d) for d in delays_ms)]
        self._responder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=log.open("w"), text=True, start_new_session=True)
        assert self._responder.stdout is not None
        ready, _, _ = select.select([self._responder.stdout], [], [], 15)
        line = self._responder.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.stop_responder()
            raise RuntimeError(f"the echo responder did not start: {line!r}; log:\n{log.read_text()[-2000:]}")

    def stop_responder(self) -> None:
        """Stop the scripted responder and let the namespace's kernel answer echoes again."""
        process, self._responder = self._responder, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            self.run("sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=0", check=False)

    def clear_impairments(self) -> None:
        """Undo every impairment: the link up, no loss rule, the kernel answering echoes."""
        self.stop_responder()
        self._delete_nft_table()
        if not _link_is_up(self.host_if):
            self.set_up()

    def _delete_nft_table(self) -> None:
        if shutil.which("nft") is not None:
            self.run("nft", "delete", "table", "inet", NFT_TABLE, check=False)
        clear_udp(self.namespace, self.ns_if)  # drop_udp() and limit_rate() on the lab's link


# ---------------------------------------------------------------- impairing UDP (calls' media) in any namespace

MEDIA_NFT_TABLE = "vcops_media"


def drop_udp(namespace: str, percent: float, *, spare_port: int | None = 5060) -> None:
    """Drop `percent` % of the UDP packets entering `namespace`, at random (nftables' numgen), but none to or
    from `spare_port` (SIP: the call is set up, its media suffer). Undo with clear_udp(namespace, device)."""
    if shutil.which("nft") is None:
        pytest.skip("nftables is not installed (`nft` missing): apt-get install nftables")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must lie between 0 and 100, not {percent}")
    _run("ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", MEDIA_NFT_TABLE, check=False)
    spare = f"udp dport != {spare_port} udp sport != {spare_port} " if spare_port else "meta l4proto udp "
    script = (f"table inet {MEDIA_NFT_TABLE} {{\n chain input {{\n  type filter hook input priority 0; "
              f"policy accept;\n  {spare}numgen random mod 100 < {int(round(percent))} drop\n }}\n}}\n")
    _run("ip", "netns", "exec", namespace, "nft", "-f", "-", input=script)


def limit_rate(namespace: str, device: str, kbit: int, queue_ms: float) -> None:
    """A tbf rate limit on what leaves `namespace` by `device`, with a queue of `queue_ms` at that rate: a
    stream faster than the limit fills the queue, so its packets wait about `queue_ms` (and the excess is
    dropped). The kernel may lack sch_netem; tbf's queueing is how a delay is added then."""
    limit = max(3000, int(kbit * 1000 / 8 * queue_ms / 1000))
    _run("ip", "netns", "exec", namespace, "tc", "qdisc", "replace", "dev", device, "root", "tbf",
         "rate", f"{kbit}kbit", "burst", "3000", "limit", str(limit))


def clear_udp(namespace: str, device: str) -> None:
    """Remove drop_udp's rule and limit_rate's qdisc (each one that is there)."""
    if shutil.which("nft") is not None:
        _run("ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", MEDIA_NFT_TABLE, check=False)
    _run("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", device, "root", check=False)


def _link_is_up(name: str) -> bool:
    return "UP" in _run("ip", "-o", "link", "show", name).stdout.split(">")[0]


# ---------------------------------------------------------------- making and removing labs

def _claim(folder: Path, n_addresses: int) -> Lab:
    def in_use(index: int, host_if: str) -> bool:
        block = f"{_block_base(index)}/22"
        return bool(_run("ip", "-o", "-4", "addr", "show", "to", block).stdout.strip()
                    or _run("ip", "-4", "route", "show", "root", block).stdout.strip()
                    or Path(f"/sys/class/net/{host_if}").exists())

    claimed = claims.claim(LOCKS, range(BLOCKS), lambda index: (f"vcops-lab-{RUN_ID}-{index}", f"vl{index}a"),
                           in_use, _teardown, f"/22 block for a probe lab in {NETWORK}")
    index = claimed.index
    base = _block_base(index)
    addresses = [str(base + FIRST_ADDRESS + i) for i in range(n_addresses)]
    lab_folder = folder / f"lab-{index}"
    lab_folder.mkdir(parents=True, exist_ok=True)
    return Lab(index=index, namespace=claimed.namespace, host_if=claimed.host_if, ns_if=f"vl{index}b",
               addresses=addresses, folder=lab_folder)


def _build(lab: Lab) -> None:
    ns = lab.namespace
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", lab.host_if, "type", "veth", "peer", "name", lab.ns_if, "netns", ns)
    _run("ip", "addr", "add", f"{lab.host_address}/30", "dev", lab.host_if)
    _run("ip", "link", "set", lab.host_if, "up")
    commands = [f"addr add {lab.peer_address}/30 dev {lab.ns_if}", f"link set {lab.ns_if} up", "link set lo up"]
    commands += [f"addr add {address}/32 dev lo" for address in lab.addresses]
    _run("ip", "-n", ns, "-batch", "-", input="\n".join(commands) + "\n")
    # Below the route via the link, so that a link that is down refuses echoes instead of routing them away.
    _run("ip", "route", "add", "unreachable", lab.block, "metric", UNREACHABLE_METRIC)
    lab.set_up()


def _remove(lab: Lab) -> None:
    with contextlib.suppress(Exception):
        lab.stop_responder()
    _teardown(lab.namespace, lab.host_if, lab.index)
    (LOCKS / str(lab.index)).unlink(missing_ok=True)


def _teardown(namespace: str, host_if: str, index: int) -> None:
    """End every process in the namespace, delete it, the veth pair and the block's routes."""
    hosts.remove_namespace(namespace, host_if)
    block = f"{_block_base(index)}/22"
    _run("ip", "route", "del", "unreachable", block, "metric", UNREACHABLE_METRIC, check=False)


@contextlib.contextmanager
def lab(n_addresses: int = 1, folder: Path | None = None) -> Iterator[Lab]:
    """A probe lab with `n_addresses` answering addresses (at most 1,020), removed when the block ends."""
    if not 1 <= n_addresses <= MAX_ADDRESSES:
        raise ValueError(f"a probe lab holds 1 to {MAX_ADDRESSES} addresses, not {n_addresses}")
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    claims.reclaim_stale(LOCKS, _teardown)  # remove what killed test runs left behind
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vcops-lab-")))
        made = _claim(folder, n_addresses)
        stack.callback(_remove, made)
        _build(made)
        yield made


@pytest.fixture
def netlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Lab]]:
    """make(n_addresses=1) -> a probe Lab, removed (with every impairment) after the test."""
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp("netlab")

        def make(n_addresses: int = 1) -> Lab:
            return stack.enter_context(lab(n_addresses, folder))

        yield make
