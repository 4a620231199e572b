"""``flask --app wsgi index status|rebuild|rollback``: the serving collection and its jobs."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from app.cli import fail
from app.cluster.cli import ray_option, resolve_address
from app.exceptions import LookalikeError
from app.galleries.current import gallery_option

index_cli = AppGroup("index", help="Inspect the vector index.")


@index_cli.command("status")
@gallery_option
def index_status() -> None:
    """Collection, model, dimension, row count and index state."""
    from app.copies.threshold import read_calibration
    from app.extensions import gallery
    from app.vectors.connect import connect_milvus

    try:
        store = connect_milvus(current_app, alias=gallery().alias)
        info = store.info()
        copies = read_calibration(store, info.collection)
    except LookalikeError as error:
        fail(error)
        return
    stamp = info.stamp
    _warn_local()
    click.echo(f"alias:       {info.alias} -> {info.collection}")
    click.echo(f"model:       {stamp.name if stamp else '(unknown)'}"
               + (f" (weights {stamp.fingerprint})" if stamp else ""))
    click.echo(f"dimension:   {stamp.dim if stamp else '?'}")
    click.echo(f"runs on:     {_served_by(stamp.fingerprint if stamp else '')}")
    click.echo(f"rows:        {info.rows}")
    click.echo(f"index:       {info.index_type} {info.metric} {info.index_params}")
    click.echo(f"index state: {info.index_state}")
    click.echo(f"created:     {info.created}")
    click.echo(f"copy threshold: {copies.describe()}")


def _served_by(fingerprint: str) -> str:
    """The encoder backend and precision this app's workers run the serving model with."""
    from app.extensions import export_dir
    from app.model.backends.choose import served_by

    return served_by(str(current_app.config["ENCODER_BACKEND"]), export_dir(current_app),
                     fingerprint)


def _warn_local() -> None:
    """Say when the gallery is on Milvus Lite, whose search slows down as it grows."""
    from app.vectors.connect import local_milvus

    local = local_milvus(current_app)
    if local is not None and local.warning:
        click.secho(f"warning: {local.warning}", fg="yellow")


@index_cli.command("rebuild")
@click.option("--batch-size", type=int, default=None, help="Images per model batch.")
@click.option("--lock-fd", type=int, default=None, hidden=True)  # from the web app's start
@click.option("--lock-token", default=None, hidden=True)  # the same, with Redis
@click.option("--job-id", default="", hidden=True)
@click.option("--user", default="", hidden=True)
@ray_option
@gallery_option
def index_rebuild(batch_size: int | None, lock_fd: int | None, lock_token: str | None,
                  job_id: str, user: str, ray_address: str | None) -> None:
    """Re-encode every gallery image with LOOKALIKE_MODEL into a new collection, build its
    index, then switch the serving alias to it in one step.

    Searches keep using the current collection until the switch; the previous one is
    kept for `index rollback`. Safe to interrupt (Ctrl+C): the alias only moves at the
    end. Works while the web app runs; one reindex at a time. With --ray the images are
    encoded on Ray (docs/scale.md); a reindex started from the admin page does so when
    LOOKALIKE_RAY_ADDRESS is set.
    """
    address = resolve_address(ray_address)
    if address is None and (lock_fd is not None or lock_token):  # started from the admin page
        address = str(current_app.config["RAY_ADDRESS"] or "") or None
    _run_job("reindex", batch_size=batch_size, lock_fd=lock_fd, lock_token=lock_token,
             job_id=job_id, user=user, ray_address=address)


@index_cli.command("rollback")
@click.option("--lock-fd", type=int, default=None, hidden=True)
@click.option("--lock-token", default=None, hidden=True)
@click.option("--job-id", default="", hidden=True)
@click.option("--user", default="", hidden=True)
@gallery_option
def index_rollback(lock_fd: int | None, lock_token: str | None, job_id: str, user: str) -> None:
    """Switch the serving alias back to the previous collection (and its model).

    Images added or deleted since the last reindex are carried over first.
    """
    _run_job("rollback", lock_fd=lock_fd, lock_token=lock_token, job_id=job_id, user=user)


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


@index_cli.command("migrate")
@click.option("--to", "to", required=True, metavar="URI",
              help="The Milvus to copy to, e.g. http://milvus.example:19530, or `local`: "
                   "the local Milvus server of this instance folder (the embedded default).")
@click.option("--collection", default=None, metavar="NAME",
              help="The serving alias on the target (default: LOOKALIKE_COLLECTION).")
@click.option("--token", default="", envvar="LOOKALIKE_MIGRATE_TOKEN",
              help="The target's token (user:password); better set LOOKALIKE_MIGRATE_TOKEN, "
                   "which keeps it out of the process list.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
def index_migrate(to: str, collection: str | None, token: str, batch_size: int) -> None:
    """Copy the gallery's vectors, labels, metadata, model stamp and collection properties
    to another Milvus, verify the copy, and point the serving alias there. Nothing is
    re-encoded.

    The source is only read, so the app keeps serving meanwhile. Interrupted, the same
    command resumes where it stopped; run again later, it catches up with what changed.
    """
    from app.vectors.connect import connect_milvus, connect_uri, retire_lite, standalone_uri
    from app.vectors.migrate import migrate

    alias = collection or str(current_app.config["COLLECTION"])
    with tqdm(total=0, unit="row", dynamic_ncols=True, disable=None) as bar:
        def show(progress) -> None:  # type: ignore[no-untyped-def]
            bar.total = max(progress.total, 1)
            bar.n = progress.done
            bar.set_description(progress.phase)
            bar.refresh()

        try:
            source = connect_milvus(current_app)
            uri = standalone_uri(current_app) if to == "local" else to
            target = connect_uri(current_app, uri, alias=alias, token=token)
            result = migrate(source, target, batch_size=batch_size, on_progress=show)
        except LookalikeError as error:
            fail(error)
            return
    click.echo(f"Copied {result.rows} rows from {result.source} to {result.target} at {to} "
               f"({result.copied} written by this run"
               + (", resumed" if result.resumed else "")
               + f", {result.reconciled} caught up; {result.sampled} rows compared).")
    click.echo(f"The alias {result.alias!r} there now points at {result.target}.")
    if to == "local" and retire_lite(current_app, {"rows": result.rows, "alias": alias,
                                                   "collection": result.target}):
        click.echo("This instance folder is served by its local Milvus server from now on "
                   "(the Milvus Lite database stays on disk, unused). Restart the app: "
                   "make stop && make run")
        return
    if to == "local":
        click.echo("To serve from it, unset LOOKALIKE_MILVUS_URI and restart the app.")
        return
    click.echo("To serve from it:")
    click.echo(f"  export LOOKALIKE_MILVUS_URI={to}")
    if alias != current_app.config["COLLECTION"]:
        click.echo(f"  export LOOKALIKE_COLLECTION={alias}")
    click.echo("then restart the app (and run this command once more after stopping writes, "
               "to catch up with images added meanwhile).")
