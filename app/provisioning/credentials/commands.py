"""`vcops credentials rotate` and `new-key`: the keys that encrypt device credentials."""

from __future__ import annotations

import click
from cryptography.fernet import Fernet
from flask.cli import with_appcontext

from app.db import commit_scope
from app.provisioning.credentials.service import CredentialKeyError, rotate_all


@click.group("credentials")
def credentials_cli() -> None:
    """Device credentials: their encryption keys."""


@credentials_cli.command("rotate")
@with_appcontext
def rotate_command() -> None:
    """Re-encrypt every stored secret under the newest key (the first of VCOPS_CREDENTIAL_KEYS)."""
    try:
        with commit_scope() as session:
            done, current = rotate_all(session)
    except CredentialKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{done} secrets re-encrypted under the newest key; {current} were already under it. "
               "Older keys may now be removed from VCOPS_CREDENTIAL_KEYS.")


@credentials_cli.command("new-key")
def new_key_command() -> None:
    """Print a new key: put it first in VCOPS_CREDENTIAL_KEYS, keep the old ones after it, then rotate."""
    click.echo(Fernet.generate_key().decode())


commands = [credentials_cli]
