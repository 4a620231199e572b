"""``flask --app wsgi admin hash-password|reset-password``: the admin account of /admin."""

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


@admin_cli.command("reset-password")
def admin_reset_password() -> None:
    """Make a new admin password for the embedded default, print it once, keep its hash.

    Every admin session ends. With LOOKALIKE_ADMIN_PASSWORD_HASH set, change that instead.
    """
    from pathlib import Path

    from flask import current_app

    from app.admin import first_password

    if current_app.config.get("ADMIN_PASSWORD_HASH"):
        raise click.UsageError("LOOKALIKE_ADMIN_PASSWORD_HASH is set, so the password is "
                               "that hash's: make a new one with `flask --app wsgi admin "
                               "hash-password` and set it there.")
    password = first_password.reset(Path(current_app.instance_path))
    click.echo(f"New admin password for user {current_app.config['ADMIN_USER']!r}: {password}")
    click.echo("(shown once: only its hash is kept. Every admin session has ended.)", err=True)
