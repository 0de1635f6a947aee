"""`vcops probe` and `vcops exporter`: the operators' long-running processes (separate from the web workers)."""

from __future__ import annotations

from app.monitoring.exporter import exporter_command
from app.monitoring.probe import probe_command

__all__ = ["exporter_command", "probe_command"]
