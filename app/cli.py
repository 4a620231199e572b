"""Command-line tools: ``flask --app wsgi gallery add|...``, ``index status``, ``milvus stop``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from tqdm import tqdm

from app.exceptions import LookalikeError

gallery_cli = AppGroup("gallery", help="Add images to the gallery.")
index_cli = AppGroup("index", help="Inspect the vector index.")
milvus_cli = AppGroup("milvus", help="The local Milvus Lite server of the embedded default.")


def init_app(app: Flask) -> None:
    for group in (gallery_cli, index_cli, milvus_cli):
        app.cli.add_command(group)


def fail(error: LookalikeError) -> None:
    click.secho(f"Error: {error.message}", fg="red", err=True)
    sys.exit(1)


@gallery_cli.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of path,label[,metadata...] (paths relative to the CSV).")
@click.option("--label-from-folder", is_flag=True, help="Use each image's folder name as its label.")
@click.option("--batch-size", type=int, default=None, help="Images per model batch.")
@click.option("--wait/--no-wait", default=True, help="Wait for the index to cover the new rows.")
def gallery_add(paths: tuple[Path, ...], labels: Path | None, label_from_folder: bool,
                batch_size: int | None, wait: bool) -> None:
    """Add image files, folders (recursive) and .zip archives to the gallery.

    Safe to re-run after an interruption: images already indexed are skipped.
    """
    from app.extensions import encoder, images, vectors
    from app.ingest import ADDED, DUPLICATE, Ingestor
    from app.sources import Labels, collect

    try:
        label_map = Labels.from_csv(labels) if labels else None
        sources = list(collect(paths, labels=label_map, label_from_folder=label_from_folder))
        click.echo(f"Loading the model {current_app.config['MODEL']} ...")
        ingestor = Ingestor(
            encoder(), vectors(), images(),
            batch_size=batch_size or int(current_app.config["BATCH_SIZE"]),
            max_pixels=int(current_app.config["MAX_IMAGE_PIXELS"]),
        )
        started = time.perf_counter()
        with tqdm(total=len(sources), unit="img", dynamic_ncols=True) as bar:
            def show(outcome) -> None:  # type: ignore[no-untyped-def]
                bar.update(1)
                if outcome.status != ADDED and outcome.status != DUPLICATE:
                    bar.write(f"rejected {outcome.name}: {outcome.reason}")
            report = ingestor.run(sources, show)
        elapsed = time.perf_counter() - started
        state = vectors().wait_for_index() if wait and report.added else ""
    except LookalikeError as error:
        fail(error)
        return
    rate = report.added / elapsed if elapsed else 0.0
    click.echo(f"Added {report.added}, skipped {report.duplicates} already in the gallery, "
               f"rejected {len(report.rejected)} in {elapsed:.1f} s ({rate:.1f} images/s).")
    if state:
        click.echo(f"Index: {state}.")


@index_cli.command("status")
def index_status() -> None:
    """Collection, model, dimension, row count and index state."""
    from app.extensions import connect_milvus

    try:
        info = connect_milvus(current_app).info()
    except LookalikeError as error:
        fail(error)
        return
    stamp = info.stamp
    click.echo(f"alias:       {info.alias} -> {info.collection}")
    click.echo(f"model:       {stamp.name if stamp else '(unknown)'}"
               + (f" (weights {stamp.fingerprint})" if stamp else ""))
    click.echo(f"dimension:   {stamp.dim if stamp else '?'}")
    click.echo(f"rows:        {info.rows}")
    click.echo(f"index:       {info.index_type} {info.metric} {info.index_params}")
    click.echo(f"index state: {info.index_state}")
    click.echo(f"created:     {info.created}")


@milvus_cli.command("status")
def milvus_status() -> None:
    """Whether the local Milvus Lite server is running, and where."""
    from app.lite_server import running_server

    server = running_server(_lite_dir())
    click.echo(f"running at {server.uri} (pid {server.pid})" if server else "not running")


@milvus_cli.command("stop")
def milvus_stop() -> None:
    """Stop the local Milvus Lite server (the app starts it again when needed)."""
    from app.lite_server import stop_server

    click.echo("stopped" if stop_server(_lite_dir()) else "was not running")


def _lite_dir() -> Path:
    uri = str(current_app.config["MILVUS_URI"] or "")
    if uri.startswith(("http://", "https://", "tcp://", "grpc://")):
        raise click.UsageError(f"LOOKALIKE_MILVUS_URI is a server ({uri}), not Milvus Lite.")
    path = Path(uri or "milvus.db")
    return path if path.is_absolute() else Path(current_app.instance_path) / path
