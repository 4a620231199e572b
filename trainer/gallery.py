"""Training data from the app's own gallery (local folder or MinIO), labels from Milvus.

``--data gallery`` reads the default gallery's labelled rows (``gallery:NAME``
the gallery NAME's; a Milvus collection or alias NAME, as before galleries,
where no gallery has that name) and copies
their originals out of the configured image store (``LOOKALIKE_STORAGE``, say
``s3://gallery`` on MinIO) into a local folder once; a CSV manifest there then
makes it ordinary data, so epochs read local files, not the network.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

GALLERY = "gallery"


def is_gallery(data: str | Path) -> bool:
    return str(data) == GALLERY or str(data).startswith(GALLERY + ":")


def download_gallery(data: str, dest: Path | None = None) -> Path:
    """Copy the labelled gallery images to ``dest`` (default: instance/trainer-gallery);
    returns the manifest. ``gallery:NAME`` reads the gallery NAME (or the collection or
    alias NAME, where no gallery has that name)."""
    from app import create_app
    from app.extensions import images

    app = create_app()
    with app.app_context():
        name = data.split(":", 1)[1] if ":" in data else ""
        vectors, collection = _source(app, name)
        store = images()
        folder = f"trainer-gallery-{name}" if name and collection is None else "trainer-gallery"
        dest = dest or Path(app.instance_path) / folder
        (dest / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        from app.gallery.keys import original_name

        for entry in vectors.iterate(collection=collection):
            if not entry.label:
                continue
            path = dest / "images" / entry.key
            if not path.is_file():
                path.write_bytes(store.get(original_name(entry.key)))
            rows.append((f"images/{entry.key}", entry.label))
    manifest = dest / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), *rows])
    return manifest


def _source(app: Any, name: str) -> tuple[Any, str | None]:
    """The store to read and the collection in it (None: the one behind its alias)."""
    from app.exceptions import UnknownGallery
    from app.extensions import galleries
    from app.vectors.connect import connect_milvus

    if not name:
        return connect_milvus(app), None
    try:
        return connect_milvus(app, alias=galleries().get(name).alias), None
    except UnknownGallery:
        store = connect_milvus(app)
        if store.client.has_collection(name) or name in store.client.list_aliases().get(
                "aliases", []):
            return store, name  # a collection or alias named directly, as before galleries
        raise
