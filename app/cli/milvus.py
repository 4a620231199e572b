"""``flask --app wsgi milvus status|stop``: the local Milvus server of the instance folder."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

milvus_cli = AppGroup("milvus", help="The local Milvus server of the embedded default.")


@milvus_cli.command("status")
def milvus_status() -> None:
    """Which local Milvus serves this instance, whether it is running, and where."""
    from app.vectors import lite_server, standalone

    local = _local()
    module = standalone if local.kind == "standalone" else lite_server
    server = module.running_server(local.data_dir)
    what = "Milvus standalone" if local.kind == "standalone" else "Milvus Lite"
    click.echo(f"{what} ({local.data_dir}): "
               + (f"running at {server.uri} (pid {server.pid})" if server else "not running"))
    if local.warning:
        click.secho(f"warning: {local.warning}", fg="yellow")


@milvus_cli.command("stop")
def milvus_stop() -> None:
    """Stop the local Milvus servers of this instance (the app starts one again when needed)."""
    from app.vectors import lite_server, standalone
    from app.vectors.connect import LITE_DIR, STANDALONE_DIR

    local = _local()
    instance = Path(current_app.instance_path)
    # Both, whichever the app uses now: after `index migrate --to local` Lite's may remain.
    stopped = standalone.stop_server(instance / STANDALONE_DIR)
    lite_dir = local.data_dir if local.kind == "lite" else instance / LITE_DIR
    stopped = lite_server.stop_server(lite_dir) or stopped
    click.echo("stopped" if stopped else "was not running")


def _local():  # type: ignore[no-untyped-def]
    from app.vectors.connect import local_milvus

    local = local_milvus(current_app)
    if local is None:
        raise click.UsageError(
            f"LOOKALIKE_MILVUS_URI is a server ({current_app.config['MILVUS_URI']}), "
            "not a local one.")
    return local
