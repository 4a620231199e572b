"""``flask --app wsgi admin hash-password``: the admin account of /admin."""

from __future__ import annotations

import click
from flask.cli import AppGroup

admin_cli = AppGroup("admin", help="The admin account of /admin.")


@admin_cli.command("hash-password")
def admin_hash_password() -> None:
    """Ask for a password (twice, hidden) and print its hash for LOOKALIKE_ADMIN_PASSWORD_HASH."""
    from werkzeug.security import generate_password_hash

    password = click.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.UsageError("Use at least 10 characters.")
    hashed = generate_password_hash(password)
    click.echo(hashed)
    click.echo(f"\nexport LOOKALIKE_ADMIN_PASSWORD_HASH='{hashed}'", err=True)
    click.echo("(in a docker-compose .env file, write each $ as $$)", err=True)
