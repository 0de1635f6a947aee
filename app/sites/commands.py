"""`vcops seed-demo`: Tuyên Quang province as demo data (after 1 July 2025: province and communes, or with the
former districts), and a demo admin whose password is printed once."""

from __future__ import annotations

import secrets

import click
import sqlalchemy as sa
from flask.cli import with_appcontext


@click.command("seed-demo")
@with_appcontext
@click.option("--layout", type=click.Choice(["three-level", "two-level"]), default="three-level", show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has sites.")
def seed_demo(layout: str, if_empty: bool) -> None:
    """Load Tuyên Quang province as demo data, with a demo admin whose password is printed once."""
    from app.auth.models import Role, User
    from app.auth.service import create_user
    from app.db import commit_scope
    from app.sites.demo import seed
    from app.sites.models import Site

    with commit_scope() as session:
        if if_empty and session.scalar(sa.select(Site.id).limit(1)) is not None:
            click.echo("the database already has sites; demo data not loaded")
            return
        seed(session, layout)
        email, password = "admin@tuyenquang.example.com", None
        if session.scalar(sa.select(User.id).where(User.email == email)) is None:
            password = secrets.token_urlsafe(12)
            create_user(session, email, Role.ADMIN, password, name="Quản trị demo", must_change_password=True)
    click.echo(f"demo data loaded ({layout})")
    if password:
        click.echo(f"demo admin: {email}  password: {password}  (shown once; you choose your own at the first login)")

commands = [seed_demo]
