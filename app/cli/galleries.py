"""``flask --app wsgi gallery list|create|delete``: the galleries of this deployment."""

from __future__ import annotations

import click
from flask import current_app

from app.cli import fail
from app.cli.gallery import gallery_cli
from app.exceptions import LookalikeError


@gallery_cli.command("list")
def gallery_list() -> None:
    """Every gallery: name, title, model, images, alias."""
    from app.extensions import servings
    from app.galleries import service
    from app.galleries.current import job_files

    try:
        every = servings().registry.all()
        rows = service.rows(servings(), {g.name: job_files(current_app, g.name) for g in every})
    except LookalikeError as error:
        fail(error)
        return
    for row in rows:
        gallery = row.gallery
        images = "?" if row.images is None else str(row.images)
        click.echo(
            f"{gallery.name}{' (default)' if gallery.default else ''}\t{gallery.title}\t"
            f"model {row.serving_model or gallery.model}\t{images} images\t"
            f"alias {gallery.alias}\t{row.health}"
        )


@gallery_cli.command("create")
@click.argument("name")
@click.option("--title", default="", help="Shown on its pages (default: from the name).")
@click.option(
    "--model",
    default=None,
    metavar="MODEL",
    help="Hub id or model folder (default: LOOKALIKE_MODEL).",
)
def gallery_create(name: str, title: str, model: str | None) -> None:
    """Create a gallery NAME (lower-case letters, digits, hyphens); fill it with
    `gallery add --gallery NAME`."""
    from app import audit
    from app.extensions import galleries

    try:
        gallery = galleries().create(
            name, title=title, model=model or str(current_app.config["MODEL"])
        )
    except LookalikeError as error:
        fail(error)
        return
    audit.record("galleries.create", user="cli", name=gallery.name, model=gallery.model)
    click.echo(
        f"Created the gallery {gallery.name!r} ({gallery.title}), model {gallery.model}, "
        f"alias {gallery.alias}. Search it at /g/{gallery.name}/."
    )


@gallery_cli.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def gallery_delete(name: str, yes: bool) -> None:
    """Delete the gallery NAME: its collections, and the image files no other gallery holds."""
    from app import audit
    from app.extensions import galleries, images, servings
    from app.galleries import service
    from app.galleries.current import job_files

    try:
        gallery = galleries().get(name)
        count = service.image_count(servings().store_for(gallery.alias))
        if not yes:
            click.confirm(
                f"Delete the gallery {name!r} and its index of {count} images?", abort=True
            )
        held = service.delete_gallery(
            name, servings=servings(), images=images(), files=job_files(current_app, name)
        )
    except LookalikeError as error:
        fail(error)
        return
    audit.record("galleries.delete", user="cli", name=name, images=held)
    click.echo(
        f"Deleted the gallery {name!r} ({held} images); files other galleries hold were kept."
    )
