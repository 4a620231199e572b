"""``flask --app wsgi apikey create|list|revoke``: the API keys (docs/api.md)."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup

from app.cli import fail
from app.exceptions import LookalikeError

apikey_cli = AppGroup("apikey", help="API keys for the JSON API.")


@apikey_cli.command("create")
@click.option("--name", required=True, help="Who the key is for (letters, digits, _ . -).")
@click.option(
    "--scope",
    type=click.Choice(["search", "manage"]),
    required=True,
    help="search: searches only; manage: gallery management and reindex too.",
)
def apikey_create(name: str, scope: str) -> None:
    """Make a key and print it once: only its hash is kept."""
    from app import audit
    from app.apikeys.auth import key_store

    try:
        key, token = key_store().create(name, scope)
    except LookalikeError as error:
        fail(error)
        return
    audit.record("apikey.create", user="cli", name=key.name, scope=key.scope)
    click.echo(token)
    click.echo(
        f"API key {key.name!r} ({key.scope}) created. It is shown only this once: "
        "store it now. Send it as 'Authorization: Bearer <key>'.",
        err=True,
    )


@apikey_cli.command("list")
def apikey_list() -> None:
    """Every key: name, scope, created, last used, revoked."""
    from app.apikeys.auth import key_store

    try:
        keys = key_store().list()
    except LookalikeError as error:
        fail(error)
        return
    if not keys:
        click.echo("No API keys yet: flask --app wsgi apikey create --name NAME --scope search")
        return
    click.echo(f"{'name':<24} {'scope':<7} {'created':<19} {'last used':<19} revoked")
    for key in keys:
        click.echo(
            f"{key.name:<24} {key.scope:<7} {_when(key.created):<19} "
            f"{_when(key.last_used) or 'never':<19} {_when(key.revoked) or '-'}"
        )


@apikey_cli.command("revoke")
@click.argument("name")
def apikey_revoke(name: str) -> None:
    """Revoke a key: every worker refuses it within API_KEY_CACHE_SECONDS."""
    from app import audit
    from app.apikeys.auth import key_store

    try:
        key = key_store().revoke(name)
    except LookalikeError as error:
        fail(error)
        return
    audit.record("apikey.revoke", user="cli", name=key.name)
    click.echo(f"API key {key.name!r} revoked.")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch else ""
