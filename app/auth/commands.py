"""`vcops user` and `vcops token`: users and API tokens from the console."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.group()
def user() -> None:
    """Users."""


@user.command("add")
@with_appcontext
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r for r in
              ("admin", "secretariat", "technician", "operator", "viewer", "site_staff")]))
@click.option("--name", default="")
@click.option("--site", "site_code", default=None, help="Site code (site staff only).")
@click.option("--generate-password", is_flag=True,
              help="Generate a password, print it once; the user chooses their own at first login.")
def user_add(email: str, role: str, name: str, site_code: str | None, generate_password: bool) -> None:
    """Create a user; the password comes from a prompt, or from the first line of stdin, or is generated."""
    from app.auth.service import create_user, generated_password
    from app.db import commit_scope

    if generate_password:
        password = generated_password()
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")

    with commit_scope() as session:
        created = create_user(session, email, role, password, name=name, site_code=site_code,
                              must_change_password=generate_password)
        click.echo(f"user {created.email} ({created.role.value}) created")
    if generate_password:
        click.echo(f"password: {password}  (shown once; they choose their own at the first login)")


@user.command("two-factor-off")
@with_appcontext
@click.argument("email")
def user_two_factor_off(email: str) -> None:
    """Turn off a user's two-factor sign-in (a lost phone and lost recovery codes) and end their sessions."""
    from app.auth import two_factor
    from app.auth.audit import acting_as
    from app.auth.service import end_sessions, get_user
    from app.db import commit_scope

    with acting_as("cli"), commit_scope() as session:
        user = get_user(session, email)
        two_factor.turn_off(session, user)
        end_sessions(session, user, "two-factor off")
    click.echo(f"two-factor sign-in of {email} is off; they set it up again at their next login if their role "
               "requires it")


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@with_appcontext
@click.argument("email")
@click.option("--name", default="cli")
def token_create(email: str, name: str) -> None:
    """Create an API token for a user; the token is printed once."""
    from app.auth.service import create_token, get_user
    from app.db import commit_scope

    with commit_scope() as session:
        token, secret = create_token(session, get_user(session, email), name)
    click.echo(f"token {token.id} created for {email}; it is shown only now:", err=True)
    click.echo(secret)


@token.command("list")
@with_appcontext
@click.argument("email")
def token_list(email: str) -> None:
    """List a user's API tokens (id, name, start of the secret, state)."""
    from app.auth.service import get_user, tokens_of
    from app.db import db as database

    for t in tokens_of(database.session, get_user(database.session, email)):
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M} UTC" if t.revoked_at else "active"
        click.echo(f"{t.id}\t{t.name}\t{t.prefix}…\t{state}")


@token.command("revoke")
@with_appcontext
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token by its id."""
    from app.auth.service import revoke_token
    from app.db import commit_scope

    with commit_scope() as session:
        revoke_token(session, token_id)
    click.echo(f"token {token_id} revoked")


commands = [user, token]
