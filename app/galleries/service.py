"""What the galleries pages and commands do: list with stats, create, delete.

A gallery's images are rows in its own collections; the originals and thumbnails
are content-addressed and shared by every gallery that holds the same image. So
deleting an image, or a whole gallery, removes a file only when no other gallery
holds that image (``held_elsewhere``, ``ids_elsewhere``). docs/architecture.md,
"Galleries", says why.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from app.exceptions import BadRequest, LookalikeError, NotFound
from app.galleries.registry import Gallery, GalleryRegistry
from app.galleries.servings import Servings
from app.gallery.keys import original_name, thumb_name
from app.gallery.storage import ImageStore
from app.jobs.state import JobFiles, JobState, gallery_writes
from app.vectors.calls import milvus_call
from app.vectors.records import Entry
from app.vectors.store import VectorStore


@dataclass(frozen=True)
class GalleryRow:
    """One line of the galleries overview."""

    gallery: Gallery
    images: int | None  # None when its collection cannot be reached
    serving_model: str
    last_reindex: JobState | None
    job: JobState
    health: str  # "ok", "empty" or why not


def rows(servings: Servings, files_of: dict[str, JobFiles]) -> list[GalleryRow]:
    """Every gallery with its size, serving model, last reindex and health."""
    out = []
    for gallery in servings.registry.all():
        files = files_of[gallery.name]
        store = servings.store_for(gallery.alias)
        try:
            collection = store.resolve()
            images = store.count(collection) if collection else 0
            stamp = store.stamp_of(collection) if collection else None
            health = "ok" if collection else "empty"
        except LookalikeError as exc:
            images, stamp, health = None, None, exc.message
        out.append(
            GalleryRow(
                gallery,
                images,
                stamp.name if stamp else "",
                files.last_success(),
                files.read(),
                health,
            )
        )
    return out


def image_count(store: VectorStore) -> int:
    collection = store.resolve()
    return store.count(collection) if collection else 0


def held_elsewhere(id_: str, gallery: Gallery, servings: Servings) -> list[str]:
    """The other galleries whose serving collection holds image ``id_``."""
    holders = []
    for other in servings.registry.all():
        if other.name == gallery.name:
            continue
        store = servings.store_for(other.alias)
        if store.resolve() is None:
            continue
        try:
            store.get(id_)
        except NotFound:
            continue
        holders.append(other.name)
    return holders


def ids_elsewhere(gallery: Gallery, servings: Servings) -> set[str]:
    """Every image id held by another gallery (``gallery check`` must not treat those
    originals as unfinished adds to this one)."""
    ids: set[str] = set()
    for other in servings.registry.all():
        if other.name != gallery.name:
            store = servings.store_for(other.alias)
            if store.resolve() is not None:
                ids.update(entry.id for entry in store.iterate())
    return ids


def delete_gallery(name: str, *, servings: Servings, images: ImageStore, files: JobFiles) -> int:
    """Delete a gallery: the files only it holds, then its collections, alias and entry.

    Returns how many images it held. Files another gallery holds stay. Files go
    before rows, as for one image: interrupted, the delete can simply be run again.
    """
    registry: GalleryRegistry = servings.registry
    registry.invalidate()
    gallery = registry.get(name)
    if gallery.default:
        raise BadRequest(
            f"{name!r} is the default gallery (LOOKALIKE_COLLECTION): it cannot be deleted."
        )
    if files.job_locked():
        raise BadRequest(f"A reindex of {name!r} is running: cancel it first, then delete.")
    store = servings.store_for(gallery.alias)
    held = image_count(store)
    if held:
        elsewhere = ids_elsewhere(gallery, servings)
        with gallery_writes(files):
            for entry in store.iterate():
                if entry.id not in elsewhere:
                    images.delete(original_name(entry.key))
                    images.delete(thumb_name(entry.key))
    _drop_collections(store)
    registry.remove(name)
    servings.forget(name)
    shutil.rmtree(files.root, ignore_errors=True)
    return held


@milvus_call("dropping a gallery's collections")
def _drop_collections(store: VectorStore) -> None:
    client = store.client
    if store.alias in client.list_aliases(timeout=store.timeout).get("aliases", []):
        client.drop_alias(store.alias, timeout=store.maintenance_timeout)
    for collection in store.generations():
        client.drop_collection(collection, timeout=store.maintenance_timeout)


def delete_from_current(id_: str) -> tuple[Entry, list[str]]:
    """Delete image ``id_`` from the current gallery: its row, and its files unless
    another gallery holds the same image (returned: those galleries' names).

    The one delete path of the admin page, the duplicates page and the API.
    """
    from app.admin.service import delete_image
    from app.extensions import gallery, images, serving, servings
    from app.galleries.current import job_files

    others = held_elsewhere(id_, gallery(), servings())
    entry = delete_image(id_, serving=serving(), images=images(), files=job_files(),
                         keep_files=bool(others))
    return entry, others
