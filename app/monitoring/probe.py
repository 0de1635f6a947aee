"""The probe agent (being written)."""

from __future__ import annotations

import click


@click.command("probe")
def probe_command() -> None:
    """Probe every link and endpoint (being written)."""
    raise click.ClickException("not yet")
