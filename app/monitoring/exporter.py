"""The state exporter (being written)."""

from __future__ import annotations

import click


@click.command("exporter")
def exporter_command() -> None:
    """Serve the meetings, maintenance windows and link tree as metrics (being written)."""
    raise click.ClickException("not yet")
