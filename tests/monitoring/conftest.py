"""Fixtures of the monitoring tests: probe labs (tests/netlab.py: namespaces full of addresses that tests take down
or make lossy) and simulated endpoints (tests/hosts.py: namespaced SSH hosts running the xAPI simulator)."""

from __future__ import annotations

from tests.support.hosts import ssh_hosts  # noqa: F401 - a fixture
from tests.support.netlab import netlab  # noqa: F401 - a fixture
