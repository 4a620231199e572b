"""``gallery add s3://BUCKET/PREFIX`` and ``gallery sync s3://BUCKET/PREFIX``: buckets in place.

``gallery add`` hands its ``s3://`` arguments here (app/cli/gallery.py); this
module also registers ``gallery sync`` and ``gallery sources`` on the same group.
"""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from app.cli import fail
from app.cli.gallery import gallery_cli
from app.cluster.cli import ray_option, ray_sync_options, resolve_address
from app.exceptions import LookalikeError
from app.galleries.current import gallery_option


class PathOrLocation(click.ParamType):
    """A local path that must exist, or an ``s3://`` location kept as text."""

    name = "path|s3://bucket/prefix"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and value.startswith("s3://"):
            return value
        return click.Path(exists=True, path_type=Path).convert(value, param, ctx)


def add_locations(
    locations: list[str],
    *,
    labels: Path | None,
    label_from_folder: bool,
    label_meta: str,
    endpoint: str,
    dry_run: bool = False,
    ray: str | None = None,
) -> None:
    """Register each location as a source of the current gallery, then sync it (on Ray
    at address ``ray``, if given)."""
    from app.buckets import service
    from app.buckets.location import parse

    rule = "folder" if label_from_folder else (f"meta:{label_meta}" if label_meta else "")
    try:
        for text in locations:
            source = service.add_source(
                parse(text), endpoint=endpoint, label_rule=rule, labels_csv=labels
            )
            click.echo(
                f"Source {source.location} of gallery {source.gallery}"
                + (f" (labels: {source.label_rule})" if source.label_rule else "")
            )
            _sync(source, dry_run=dry_run, restart=False, ray=ray)
    except LookalikeError as error:
        fail(error)


@gallery_cli.command("sync")
@click.argument("location")
@click.option("--dry-run", is_flag=True, help="Only report what would change.")
@click.option(
    "--restart",
    is_flag=True,
    help="Start from the first key instead of resuming an interrupted sync.",
)
@ray_option
@gallery_option
def gallery_sync(location: str, dry_run: bool, restart: bool, ray_address: str | None) -> None:
    """Index new and changed objects of a bucket source and remove rows of gone ones.

    Resumable: an interrupted sync continues after the last chunk it finished. With
    --ray, new and changed objects are read and embedded on Ray.
    """
    from app.buckets import service
    from app.buckets.location import parse

    try:
        source = service.catalog().get(service.gallery(), parse(location))
        _sync(source, dry_run=dry_run, restart=restart, ray=resolve_address(ray_address))
    except LookalikeError as error:
        fail(error)


@gallery_cli.command("sources")
@gallery_option
def gallery_sources() -> None:
    """List the bucket sources of the gallery with their counters."""
    from app.buckets import service
    from app.buckets.service import describe

    try:
        sources = service.catalog().sources(service.gallery())
    except LookalikeError as error:
        fail(error)
        return
    for source in sources:
        click.echo(describe(source))
    if not sources:
        click.echo("No bucket sources; add one with `gallery add s3://BUCKET/PREFIX`.")


def _sync(source, *, dry_run: bool, restart: bool, ray: str | None = None) -> None:  # type: ignore[no-untyped-def]
    from app.buckets import service

    if source.checkpoint and not restart and not dry_run:
        click.echo(f"Resuming after {source.checkpoint}")
    with (
        ray_sync_options(None if dry_run else ray) as options,
        tqdm(unit="obj", desc="listed", dynamic_ncols=True) as listed,
        tqdm(unit="img", desc="indexed", dynamic_ncols=True) as indexed,
    ):

        def step(_) -> None:  # type: ignore[no-untyped-def]
            listed.update(1)

        def outcome(o) -> None:  # type: ignore[no-untyped-def]
            indexed.update(1)
            if o.status == "rejected":
                indexed.write(f"failed {o.name}: {o.reason}")

        report = service.syncer(source, on_step=step, on_outcome=outcome, **options).sync(
            dry_run=dry_run, restart=restart
        )
    click.echo(report.summary())


@gallery_cli.command("events")
@click.option("--follow", is_flag=True, help="Keep draining as events arrive (Ctrl-C stops).")
def gallery_events(follow: bool) -> None:
    """Handle queued bucket events here instead of in the web workers' drainer threads."""
    import os
    import time

    from flask import current_app

    from app.buckets import service
    from app.buckets.drain import drain_once

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    queue, handled = service.event_queue(), 0
    try:
        while True:
            done = drain_once(app, queue, worker=f"cli-{os.getpid()}")
            handled += done
            if not done and not follow:
                break
            if not done:
                time.sleep(1.0)  # the poll interval of a long-running drainer
    except LookalikeError as error:
        fail(error)
    click.echo(f"Handled {handled} events; {queue.pending()} pending.")
