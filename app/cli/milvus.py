"""``flask --app wsgi milvus status|stop``: the local Milvus Lite server of the embedded default."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

milvus_cli = AppGroup("milvus", help="The local Milvus Lite server of the embedded default.")


@milvus_cli.command("status")
def milvus_status() -> None:
    """Whether the local Milvus Lite server is running, and where."""
    from app.vectors.lite_server import running_server

    server = running_server(_lite_dir())
    click.echo(f"running at {server.uri} (pid {server.pid})" if server else "not running")


@milvus_cli.command("stop")
def milvus_stop() -> None:
    """Stop the local Milvus Lite server (the app starts it again when needed)."""
    from app.vectors.lite_server import stop_server

    click.echo("stopped" if stop_server(_lite_dir()) else "was not running")


def _lite_dir() -> Path:
    from app.vectors.connect import local_data_dir

    data_dir = local_data_dir(current_app)
    if data_dir is None:
        raise click.UsageError(
            f"LOOKALIKE_MILVUS_URI is a server ({current_app.config['MILVUS_URI']}), "
            "not Milvus Lite.")
    return data_dir
