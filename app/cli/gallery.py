"""``flask --app wsgi gallery add|check``: fill the gallery, and check it against the index."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from app.cli import fail
from app.cluster.cli import ray_option, resolve_address
from app.exceptions import LookalikeError
from app.galleries.current import gallery_option, job_files

gallery_cli = AppGroup("gallery", help="Add images to the gallery.")


def _path_or_location() -> click.ParamType:
    # Importing app.cli.buckets also adds `gallery sync` and `gallery sources` to this group.
    from app.cli.buckets import PathOrLocation

    return PathOrLocation()


@gallery_cli.command("add")
@click.argument("paths", nargs=-1, required=True, type=_path_or_location())
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of path,label[,metadata...] (paths relative to the CSV); "
                   "for s3:// a CSV of key,label.")
@click.option("--label-from-folder", is_flag=True,
              help="Use each image's folder name as its label.")
@click.option("--label-meta", default="", help="s3:// only: label from this user metadata "
              "(x-amz-meta-NAME).")
@click.option("--endpoint", default="", help="s3:// only: a named endpoint of S3_ENDPOINTS.")
@click.option("--batch-size", type=int, default=None, help="Images per model batch.")
@click.option("--wait/--no-wait", default=True, help="Wait for the index to cover the new rows.")
@click.option("--skip-copies", is_flag=True, default=None,
              help="Refuse images that are copies of one already in the gallery "
                   "(default: LOOKALIKE_REJECT_COPIES).")
@ray_option
@gallery_option
def gallery_add(paths: tuple[Path, ...], labels: Path | None, label_from_folder: bool,
                label_meta: str, endpoint: str, batch_size: int | None, wait: bool,
                skip_copies: bool | None, ray_address: str | None) -> None:
    """Add image files, folders (recursive) and .zip archives to the gallery, or index
    s3://BUCKET/PREFIX in place (docs/buckets.md).

    Safe to re-run after an interruption: images already indexed are skipped.
    """
    if any(isinstance(p, str) for p in paths):
        from app.cli.buckets import add_locations

        if not all(isinstance(p, str) for p in paths):
            fail(LookalikeError("Give either local paths or s3:// locations, not both."))
        return add_locations(list(paths), labels=labels, label_from_folder=label_from_folder,
                             label_meta=label_meta, endpoint=endpoint,
                             ray=resolve_address(ray_address))
    from app.copies.upload import copy_check
    from app.extensions import encoder, images, vectors
    from app.gallery.ingest import ADDED, DUPLICATE, Ingestor
    from app.gallery.sources import Labels, collect
    from app.jobs.state import gallery_writes

    try:
        label_map = Labels.from_csv(labels) if labels else None
        sources = list(collect(paths, labels=label_map, label_from_folder=label_from_folder))
        click.echo("Loading the model of the serving collection ...")
        # Shared with other gallery writers; a reindex waits for it before it switches.
        with gallery_writes(job_files(), timeout=600):
            click.echo(f"Model {encoder().name}, collection {vectors().alias}")
            ingestor = Ingestor(
                encoder(), vectors(), images(),
                batch_size=batch_size or int(current_app.config["BATCH_SIZE"]),
                max_pixels=int(current_app.config["MAX_IMAGE_PIXELS"]),
                copies=copy_check(reject=skip_copies),
            )
            started = time.perf_counter()
            if (address := resolve_address(ray_address)) is not None:
                from app.cluster.cli import ray_ingest

                report = ray_ingest(address, sources, batch_size=ingestor.batch_size)
            else:
                with tqdm(total=len(sources), unit="img", dynamic_ncols=True) as bar:
                    def show(outcome) -> None:  # type: ignore[no-untyped-def]
                        bar.update(1)
                        if outcome.status != ADDED and outcome.status != DUPLICATE:
                            bar.write(f"rejected {outcome.name}: {outcome.reason}")
                        elif outcome.near_key:
                            bar.write(f"{outcome.name} is a copy of {outcome.near_key} "
                                      f"(score {outcome.near_score:.3f})")
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
@gallery_option
def gallery_check(repair: bool) -> None:
    """Find images stored without a vector, vectors without an image, stray thumbnails.

    With --repair: index originals that have no row (an interrupted add), delete
    rows whose original is gone (an interrupted delete), delete thumbnails of
    nothing and make missing thumbnails again. Exits 1 when problems remain.
    """
    from app.buckets.service import missing_objects
    from app.extensions import encoder, gallery, images, servings, vectors
    from app.galleries.service import ids_elsewhere
    from app.gallery import check
    from app.gallery.ingest import Ingestor
    from app.jobs.state import gallery_writes

    try:
        with gallery_writes(job_files(), timeout=600):
            # Originals held by another gallery are not unfinished adds to this one.
            elsewhere = ids_elsewhere(gallery(), servings())
            report = check.check(vectors(), images(), missing_objects, held_elsewhere=elsewhere)
            _print_check(report)
            if repair and not report.consistent:
                ingestor = Ingestor(encoder(), vectors(), images(),
                                    batch_size=int(current_app.config["BATCH_SIZE"]),
                                    max_pixels=int(current_app.config["MAX_IMAGE_PIXELS"]))
                done = check.repair(report, ingestor)
                click.echo(f"Repaired: indexed {done.indexed.added} (rejected "
                           f"{len(done.indexed.rejected)}), deleted {done.rows_deleted} rows and "
                           f"{done.thumbs_deleted} thumbnails, made {done.thumbs_made} thumbnails.")
                for outcome in done.indexed.rejected:
                    click.echo(f"  could not index {outcome.name}: {outcome.reason}")
                report = check.check(vectors(), images(), missing_objects,
                                     held_elsewhere=elsewhere)
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
                ("originals without a thumbnail", report.missing_thumbs),
                ("rows whose bucket object is gone", list(report.missing_objects.values()))]
    for what, items in problems:
        if items:
            shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
            click.echo(f"  {len(items)} {what}: {shown}")
    click.echo("Consistent." if report.consistent else "Run with --repair to fix.")
