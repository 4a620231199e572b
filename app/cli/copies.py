"""``flask --app wsgi index calibrate`` and ``gallery duplicates``: copies in the gallery.

Attached to the ``index`` and ``gallery`` groups (app/cli/__init__.py).
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from app.cli import fail
from app.exceptions import LookalikeError


@click.command("calibrate")
@with_appcontext
@click.option(
    "--sample",
    type=click.IntRange(2, 5000),
    default=None,
    help="Gallery images to copy and score (default: LOOKALIKE_COPY_CALIBRATION_SAMPLE).",
)
def index_calibrate(sample: int | None) -> None:
    """Measure the serving collection's copy threshold on synthetic copies of its own
    images and store it, with its precision and recall, in the collection."""
    from app.copies.service import calibrate_and_store
    from app.copies.threshold import forget_cached
    from app.extensions import encoder, images, vectors

    try:
        calibration = calibrate_and_store(
            encoder(),
            vectors(),
            images(),
            sample=sample or int(current_app.config["COPY_CALIBRATION_SAMPLE"]),
            max_pixels=int(current_app.config["MAX_IMAGE_PIXELS"]),
            on_progress=lambda message: click.echo(f"Calibrating: {message} ..."),
        )
    except LookalikeError as error:
        fail(error)
        return
    forget_cached()
    click.echo(f"Copy threshold of {vectors().alias}: {calibration.describe()}")


@click.command("duplicates")
@with_appcontext
@click.option(
    "--threshold",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    help="Cosine score from which two images are copies (default: the "
    "collection's calibrated threshold).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--method",
    type=click.Choice(["auto", "exact", "range"]),
    default="auto",
    show_default=True,
    help="exact: a matrix product in memory; range: range "
    "searches on the index; auto chooses by size.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of the terminal.",
)
def gallery_duplicates(threshold: float | None, fmt: str, method: str, output: Path | None) -> None:
    """List groups of copies in the gallery (resized, re-compressed, cropped ... versions
    of one picture), each with the suggested one to keep: the largest original."""
    from app.copies.marks import Marks
    from app.copies.report import as_csv, as_json, as_table
    from app.copies.service import duplicates
    from app.extensions import images, serving, vectors

    try:
        marks = Marks(current_app.instance_path, serving().store.alias)
        with tqdm(total=0, unit="img", dynamic_ncols=True, disable=None, leave=False) as bar:

            def show(done: int, total: int) -> None:
                bar.total = max(total, 1)
                bar.n = done
                bar.refresh()

            report = duplicates(
                vectors(), images(), marks, threshold=threshold, method=method, on_progress=show
            )
    except LookalikeError as error:
        fail(error)
        return
    text = {"table": as_table, "csv": as_csv, "json": as_json}[fmt](report)
    if output:
        output.write_text(text)
        click.echo(f"{len(report.groups)} groups written to {output}.")
    else:
        click.echo(text)
