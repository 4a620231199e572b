"""Training data from the app's own gallery (local folder or MinIO), labels from Milvus.

``--data gallery`` reads the serving collection's labelled rows and copies
their originals out of the configured image store (``LOOKALIKE_STORAGE``, say
``s3://gallery`` on MinIO) into a local folder once; a CSV manifest there then
makes it ordinary data, so epochs read local files, not the network.
"""

from __future__ import annotations

import csv
from pathlib import Path

GALLERY = "gallery"


def is_gallery(data: str | Path) -> bool:
    return str(data) == GALLERY or str(data).startswith(GALLERY + ":")


def download_gallery(data: str, dest: Path | None = None) -> Path:
    """Copy the labelled gallery images to ``dest`` (default: instance/trainer-gallery);
    returns the manifest. ``gallery:NAME`` reads the collection or alias NAME."""
    from app import create_app
    from app.extensions import images
    from app.gallery.keys import original_name
    from app.vectors.connect import connect_milvus

    app = create_app()
    with app.app_context():
        vectors = connect_milvus(app)
        collection = data.split(":", 1)[1] if ":" in data else None
        store = images()
        dest = dest or Path(app.instance_path) / "trainer-gallery"
        (dest / "images").mkdir(parents=True, exist_ok=True)
        rows = []
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
