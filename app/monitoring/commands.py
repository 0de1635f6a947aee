"""`vcops probe` and `vcops exporter`: the operators' long-running processes (separate from the web workers)."""

from __future__ import annotations

from app.monitoring.agent.probe import probe_command
from app.monitoring.exporter import exporter_command

commands = [probe_command, exporter_command]
