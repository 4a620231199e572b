"""``flask --app wsgi index status|rebuild|rollback``: the serving collection and its jobs."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from app.cli import fail
from app.exceptions import LookalikeError

index_cli = AppGroup("index", help="Inspect the vector index.")


@index_cli.command("status")
def index_status() -> None:
    """Collection, model, dimension, row count and index state."""
    from app.vectors.connect import connect_milvus

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
    click.echo(f"runs on:     {_served_by(stamp.fingerprint if stamp else '')}")
    click.echo(f"rows:        {info.rows}")
    click.echo(f"index:       {info.index_type} {info.metric} {info.index_params}")
    click.echo(f"index state: {info.index_state}")
    click.echo(f"created:     {info.created}")


def _served_by(fingerprint: str) -> str:
    """The encoder backend and precision this app's workers run the serving model with."""
    from app.extensions import export_dir
    from app.model.backends.choose import served_by

    return served_by(str(current_app.config["ENCODER_BACKEND"]), export_dir(current_app),
                     fingerprint)


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
