"""Command-line tools: ``flask --app wsgi gallery add|check``, ``index status|rebuild|rollback``,
``milvus status|stop``, ``admin hash-password``. One module per command group."""

from __future__ import annotations

import sys

import click
from flask import Flask

from app.exceptions import LookalikeError


def init_app(app: Flask) -> None:
    from app.cli import galleries  # noqa: F401  (adds list/create/delete to gallery_cli)
    from app.cli.admin import admin_cli
    from app.cli.apikey import apikey_cli
    from app.cli.gallery import gallery_cli
    from app.cli.index import index_cli
    from app.cli.milvus import milvus_cli

    for group in (gallery_cli, index_cli, milvus_cli, admin_cli, apikey_cli):
        app.cli.add_command(group)
    from app.cli.copies import gallery_duplicates, index_calibrate

    index_cli.add_command(index_calibrate)
    gallery_cli.add_command(gallery_duplicates)


def fail(error: LookalikeError) -> None:
    click.secho(f"Error: {error.message}", fg="red", err=True)
    sys.exit(1)
