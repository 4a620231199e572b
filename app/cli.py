"""Command-line tools: ``flask --app wsgi gallery add|...``, ``index status|rebuild|rollback``,
``milvus stop``, ``admin hash-password``."""

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
admin_cli = AppGroup("admin", help="The admin account of /admin.")


def init_app(app: Flask) -> None:
    for group in (gallery_cli, index_cli, milvus_cli, admin_cli):
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
    from app.jobs.state import JobFiles, gallery_writes
    from app.sources import Labels, collect

    try:
        label_map = Labels.from_csv(labels) if labels else None
        sources = list(collect(paths, labels=label_map, label_from_folder=label_from_folder))
        click.echo("Loading the model of the serving collection ...")
        # Shared with other gallery writers; a reindex waits for it before it switches.
        with gallery_writes(JobFiles(current_app.instance_path), timeout=600):
            click.echo(f"Model {encoder().name}, collection {vectors().alias}")
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


@gallery_cli.command("check")
@click.option("--repair", is_flag=True, help="Fix what is found (see below).")
def gallery_check(repair: bool) -> None:
    """Find images stored without a vector, vectors without an image, stray thumbnails.

    With --repair: index originals that have no row (an interrupted add), delete
    rows whose original is gone (an interrupted delete), delete thumbnails of
    nothing and make missing thumbnails again. Exits 1 when problems remain.
    """
    from app import consistency
    from app.extensions import encoder, images, vectors
    from app.ingest import Ingestor
    from app.jobs.state import JobFiles, gallery_writes

    try:
        with gallery_writes(JobFiles(current_app.instance_path), timeout=600):
            report = consistency.check(vectors(), images())
            _print_check(report)
            if repair and not report.consistent:
                ingestor = Ingestor(encoder(), vectors(), images(),
                                    batch_size=int(current_app.config["BATCH_SIZE"]),
                                    max_pixels=int(current_app.config["MAX_IMAGE_PIXELS"]))
                done = consistency.repair(report, ingestor)
                click.echo(f"Repaired: indexed {done.indexed.added} (rejected "
                           f"{len(done.indexed.rejected)}), deleted {done.rows_deleted} rows and "
                           f"{done.thumbs_deleted} thumbnails, made {done.thumbs_made} thumbnails.")
                for outcome in done.indexed.rejected:
                    click.echo(f"  could not index {outcome.name}: {outcome.reason}")
                report = consistency.check(vectors(), images())
                _print_check(report)
    except LookalikeError as error:
        fail(error)
        return
    if not report.consistent:
        sys.exit(1)


def _print_check(report) -> None:  # type: ignore[no-untyped-def]
    click.echo(f"{report.rows} rows, {report.originals} originals, {report.thumbs} thumbnails.")
    problems = [("originals without a row", report.unindexed),
                ("rows without an original", report.missing_originals),
                ("thumbnails of nothing", report.orphan_thumbs),
                ("originals without a thumbnail", report.missing_thumbs)]
    for what, items in problems:
        if items:
            shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
            click.echo(f"  {len(items)} {what}: {shown}")
    click.echo("Consistent." if report.consistent else "Run with --repair to fix.")


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


@index_cli.command("rebuild")
@click.option("--batch-size", type=int, default=None, help="Images per model batch.")
@click.option("--lock-fd", type=int, default=None, hidden=True)  # from the web app's start
@click.option("--job-id", default="", hidden=True)
@click.option("--user", default="", hidden=True)
def index_rebuild(batch_size: int | None, lock_fd: int | None, job_id: str, user: str) -> None:
    """Re-encode every gallery image with LOOKALIKE_MODEL into a new collection, build its
    index, then switch the serving alias to it in one step.

    Searches keep using the current collection until the switch; the previous one is
    kept for `index rollback`. Safe to interrupt (Ctrl+C): the alias only moves at the
    end. Works while the web app runs; one reindex at a time.
    """
    _run_job("reindex", batch_size=batch_size, lock_fd=lock_fd, job_id=job_id, user=user)


@index_cli.command("rollback")
@click.option("--lock-fd", type=int, default=None, hidden=True)
@click.option("--job-id", default="", hidden=True)
@click.option("--user", default="", hidden=True)
def index_rollback(lock_fd: int | None, job_id: str, user: str) -> None:
    """Switch the serving alias back to the previous collection (and its model).

    Images added or deleted since the last reindex are carried over first.
    """
    _run_job("rollback", lock_fd=lock_fd, job_id=job_id, user=user)


def _run_job(kind: str, **options) -> None:  # type: ignore[no-untyped-def]
    import getpass

    from app.jobs.launch import run_here
    from app.jobs.state import JobState

    user = options.pop("user") or f"cli:{getpass.getuser()}"
    # disable=None: no bar when the output is not a terminal (the web-started job).
    with tqdm(total=0, unit="img", dynamic_ncols=True, disable=None) as bar:
        def show(state: JobState) -> None:
            bar.total = max(state.total, 1)
            bar.n = state.done
            bar.set_description(state.phase)
            bar.set_postfix_str(f"failed {state.failed}" if state.failed else state.message[:40],
                                refresh=False)
            bar.refresh()

        try:
            final = run_here(current_app, kind, user=user, on_change=show, **options)
        except LookalikeError as error:
            fail(error)
            return
    for reason in final.failures:
        click.echo(f"skipped {reason}")
    if final.phase != "done":
        click.secho(f"{kind} {final.phase}: {final.error or final.message}", fg="red", err=True)
        sys.exit(1)
    click.echo(f"{final.message} Re-encoded {final.done - final.failed} of {final.total} images "
               f"({final.failed} skipped) in {final.duration_s:.1f} s "
               f"({final.rate:.1f} images/s while encoding).")


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
