"""Suite "ray": the Ray pipeline against the in-process ingest, and bulk import against
batched upserts.

1. The same photos, model and batch size, files -> stored originals + thumbnails ->
   rows in a fresh Milvus Lite collection, by the in-process ``Ingestor`` and by the
   Ray pipeline on a local Ray holding every core of the machine, interleaved. Ray's
   start is outside the clock (a cluster is up before a job); the actor pool's start
   and model load are inside it, as every job pays them.
2. On a Milvus server (``--milvus-server``): N rows written by batched upserts and by
   bulk import (Parquet + ``do_bulk_insert``), each clocked until the rows are served.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.cluster.pipeline import EncoderRecipe, Job, StoreRecipe
from app.cluster.run import ingest as ray_ingest
from app.cluster.writer import BulkImportWriter, UpsertWriter
from app.gallery.ingest import Ingestor
from app.gallery.sources import collect
from app.gallery.storage import LocalStore
from app.model.cpus import available_cpus
from app.model.encoder import Encoder
from app.vectors.connect import open_client
from app.vectors.records import Entry, ModelStamp
from app.vectors.store import VectorStore
from bench.common import Stat
from bench.ingest_speed import write_photos
from bench.models import VIT_S14, model_dirs


def _fresh(uri: str, encoder_name: str, dim: int, prefix: str) -> tuple[VectorStore, str, Any]:
    client, version = open_client(uri, timeout=600)
    store = VectorStore(
        client, f"{prefix}_{time.time_ns()}", lite=version.startswith("milvus_lite"), timeout=600
    )
    return store, store.create_collection(ModelStamp(encoder_name, "bench", dim)), client


def in_process(encoder: Encoder, uri: str, folder: Path, workdir: Path) -> float:
    store, collection, client = _fresh(uri, encoder.name, encoder.dim, "benchplain")
    images = LocalStore(workdir / f"images-{time.time_ns()}")
    start = time.perf_counter()
    report = Ingestor(encoder, store, images, collection=collection).run(collect([folder]))
    seconds = time.perf_counter() - start
    client.drop_collection(collection)
    return report.added / seconds


def on_ray(ray: Any, encoder: Encoder, uri: str, folder: Path, workdir: Path) -> float:
    store, collection, client = _fresh(uri, encoder.name, encoder.dim, "benchray")
    cpus = available_cpus()
    job = Job(
        EncoderRecipe(encoder.name, threads=cpus, batch_size=encoder.batch_size),
        StoreRecipe(str(workdir / f"images-{time.time_ns()}"), str(workdir)),
        encoder.preprocess,
        max_pixels=10**8,
        batch_size=encoder.batch_size,
        actors=1,
    )
    start = time.perf_counter()
    report = ray_ingest(
        ray,
        job,
        list(collect([folder])),
        store,
        UpsertWriter(store, collection),
        collection=collection,
    )
    seconds = time.perf_counter() - start
    client.drop_collection(collection)
    return report.added / seconds


def encoding(workdir: Path, *, uri: str, count: int, repeats: int) -> dict[str, Any]:
    from app.cluster.run import ray_session

    model_dir = model_dirs(workdir)[VIT_S14]
    folder = write_photos(workdir / f"ingest-{count}", count)
    encoder = Encoder.from_pretrained(str(model_dir))
    plain, spread = [], []
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with ray_session("local") as ray:
        for _ in range(repeats):  # interleaved, so both see the same machine
            plain.append(in_process(encoder, uri, folder, workdir))
            spread.append(on_ray(ray, encoder, uri, folder, workdir))
    ratios = [r / p for r, p in zip(spread, plain, strict=True)]
    return {
        "photos": count,
        "model": VIT_S14,
        "batch_size": encoder.batch_size,
        "cores": available_cpus(),
        "in_process_images_per_s": Stat.of(plain).as_dict(),
        "ray_images_per_s": Stat.of(spread).as_dict(),
        "ratio": Stat.of(ratios).as_dict(),
    }


def writing(uri: str, *, rows: int, repeats: int, dim: int = 384) -> dict[str, Any]:
    """Rows/s of batched upserts and of bulk import into a fresh collection, until served."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries = [
        Entry(f"{i:064x}", vectors[i], f"{i:064x}.jpg", f"label{i % 50}", {"source": f"{i}.jpg"})
        for i in range(rows)
    ]
    upserts, imports = [], []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        for _ in range(repeats):
            upserts.append(_write(uri, entries, dim, None))
            imports.append(_write(uri, entries, dim, Path(folder)))
    ratios = [b / u for b, u in zip(imports, upserts, strict=True)]
    return {
        "rows": rows,
        "dim": dim,
        "upsert_rows_per_s": Stat.of(upserts).as_dict(),
        "bulk_import_rows_per_s": Stat.of(imports).as_dict(),
        "ratio": Stat.of(ratios).as_dict(),
    }


def _write(uri: str, entries: list[Entry], dim: int, folder: Path | None) -> float:
    store, collection, client = _fresh(uri, "bench", dim, "benchwrite")
    start = time.perf_counter()
    if folder is None:
        writer: Any = UpsertWriter(store, collection)
    else:
        writer = BulkImportWriter(store, collection, folder, uri=uri)
    for i in range(0, len(entries), 1000):
        writer.add(entries[i : i + 1000])
    writer.close()
    if folder is None:  # served: every row counted by a strong read
        while store.client.query(
            collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )[0]["count(*)"] < len(entries):
            time.sleep(0.1)  # polling the server: there is nothing to wait on
    seconds = time.perf_counter() - start
    client.drop_collection(collection)
    return len(entries) / seconds
