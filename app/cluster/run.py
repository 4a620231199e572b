"""A gallery ingest on Ray, for the CLI and the reindex job: connect (or start a
local Ray), run the pipeline, drop repeats, write rows, report each source.

The outcomes are the in-process ingest's (``Outcome``/``Report`` of
app/gallery/ingest.py), so callers show and count them the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from flask import Flask

from app.cluster import require_ray
from app.cluster.pipeline import (
    STATUS_OK,
    STATUS_UNAVAILABLE,
    BucketsRecipe,
    EncoderRecipe,
    Item,
    Job,
    StoreRecipe,
    rows,
)
from app.cluster.writer import BulkImportWriter, RowWriter, UpsertWriter
from app.exceptions import StorageUnavailable
from app.gallery.ingest import ADDED, DUPLICATE, REJECTED, Outcome, Report
from app.gallery.sources import Source
from app.model.encoder import Encoder
from app.vectors.records import Entry
from app.vectors.store import VectorStore

LOCAL = "local"  # --ray with no address: a Ray started for this run
CHUNK = 8192  # sources per Ray dataset
# What Endpoints (app/buckets/endpoints.py) reads: the tasks reach bucket sources with it.
S3_SETTINGS = (
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "S3_SECURE",
    "S3_REGION",
    "S3_ENDPOINTS",
    "STORAGE_TIMEOUT",
)


LOCAL_START_TRIES = 3  # Ray gives a local raylet a fixed 30 s to register
# How Ray reports a local start that missed one of its fixed deadlines: the raylet
# registering, and the GCS server writing its port file.
START_DEADLINES = ("timed out during startup", "Timed out waiting for file")


def _start_local(ray: Any, temp: str, env: dict[str, Any]) -> None:
    """A local Ray for the run. On a busy machine its raylet can miss Ray's own start-up
    deadlines (START_DEADLINES); that start is shut down and tried again."""
    for attempt in range(1, LOCAL_START_TRIES + 1):
        try:
            ray.init(include_dashboard=False, _temp_dir=temp, runtime_env=env,
                     log_to_driver=False)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if not any(d in str(exc) for d in START_DEADLINES) or attempt == LOCAL_START_TRIES:
                raise
            ray.shutdown()


@contextmanager
def ray_session(address: str) -> Iterator[Any]:
    """Ray connected to ``address`` (a cluster) or a local Ray for the run
    (``local``); one already initialised in this process is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    root = str(Path(__file__).resolve().parents[2])
    env = {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))
        }
    }
    temp = tempfile.mkdtemp(prefix="lookalike-ray-")
    try:
        if address and address != LOCAL:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            _start_local(ray, temp, env)
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def make_job(
    app: Flask,
    ray: Any,
    encoder: Encoder,
    *,
    batch_size: int,
    store_images: bool = True,
    originals: bool = True,
    embedder: type | None = None,
) -> Job:
    """The job's recipes from the app's config and the cluster's resources."""
    from app.extensions import export_dir

    cfg = app.config
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = int(cfg["RAY_ACTORS"]) or max(gpus, 1)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    store = StoreRecipe(
        str(cfg["STORAGE"] or ""),
        instance_path=app.instance_path,
        endpoint=cfg["S3_ENDPOINT"] or None,
        access_key=cfg["S3_ACCESS_KEY"] or None,
        secret_key=cfg["S3_SECRET_KEY"] or None,
        secure=bool(cfg["S3_SECURE"]),
        region=cfg["S3_REGION"] or None,
        timeout=float(cfg["STORAGE_TIMEOUT"]),
    )
    recipe = EncoderRecipe(
        encoder.name,
        precision=str(cfg["PRECISION"]),
        backend=str(cfg["ENCODER_BACKEND"]),
        # Ray gives each worker one OpenMP thread; a CPU actor gets its share of the node.
        threads=int(cfg["THREADS"]) or (None if gpus else max(1, cpus // actors)),
        batch_size=batch_size,
        export_dir=str(export_dir(app)),
    )
    return Job(
        recipe,
        store if store_images else None,
        encoder.preprocess,
        max_pixels=int(cfg["MAX_IMAGE_PIXELS"]),
        batch_size=batch_size,
        actors=actors,
        gpus_per_actor=1.0 if gpus else 0.0,
        embedder=embedder,
        originals=originals,
        buckets=BucketsRecipe(json.dumps({k: cfg.get(k) for k in S3_SETTINGS})),
    )


def make_writer(app: Flask, vectors: VectorStore, collection: str) -> RowWriter:
    """Bulk import where the server can read our files, batched upserts elsewhere."""
    folder = str(app.config["MILVUS_IMPORT_DIR"] or "")
    if folder and not vectors.lite:
        return BulkImportWriter(
            vectors,
            collection,
            Path(folder),
            uri=str(app.config["MILVUS_URI"]),
            token=str(app.config["MILVUS_TOKEN"] or ""),
        )
    return UpsertWriter(vectors, collection)


def encode_on_ray(
    app: Flask,
    address: str,
    encoder: Encoder,
    vectors: VectorStore,
    sources: Iterable[Source],
    *,
    collection: str,
    batch_size: int,
    store_images: bool = True,
    skip_existing: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
    embedder: type | None = None,
    announce: Callable[[Job, RowWriter], None] | None = None,
) -> Report:
    """One Ray run: connect, build the job and the writer, ingest ``sources``."""
    with ray_session(address) as ray:
        job = make_job(
            app, ray, encoder, batch_size=batch_size, store_images=store_images, embedder=embedder
        )
        writer = make_writer(app, vectors, collection)
        if announce:
            announce(job, writer)
        return ingest(
            ray,
            job,
            sources,
            vectors,
            writer,
            collection=collection,
            skip_existing=skip_existing,
            on_outcome=on_outcome,
        )


def reindex_step(app: Flask, address: str) -> Callable[..., None]:
    """The reindex job's encode step on Ray (app/jobs/reindex.py ``encode_sources``):
    originals are in the store already, every row is written."""

    def encode(
        encoder: Encoder,
        vectors: VectorStore,
        sources: Iterable[Source],
        collection: str,
        batch_size: int,
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        encode_on_ray(
            app,
            address,
            encoder,
            vectors,
            sources,
            collection=collection,
            batch_size=batch_size or encoder.batch_size,
            store_images=False,
            skip_existing=False,
            on_outcome=on_outcome,
        )

    return encode


def inplace_step(app: Flask, ray: Any, batch_size: int = 0) -> Callable[..., None]:
    """Bucket objects indexed in place on Ray (``OnRay`` of app/buckets/changes.py): the
    tasks read them, store thumbnails only, and rows go to the syncing snapshot's collection.
    One call per sync chunk, so the manifest records only rows that were written."""

    def encode(
        objects: list[Any],
        encoder: Encoder,
        vectors: VectorStore,
        on_outcome: Callable[[Outcome], None],
        on_read: Callable[[str, dict[str, Any]], None],
    ) -> None:
        size = batch_size or encoder.batch_size
        job = make_job(app, ray, encoder, batch_size=size, originals=False)
        writer = make_writer(app, vectors, vectors.alias)
        ingest(
            ray,
            job,
            objects,
            vectors,
            writer,
            collection=vectors.alias,
            on_outcome=on_outcome,
            on_read=on_read,
        )

    return encode


def ingest(
    ray: Any,
    job: Job,
    sources: Iterable[Item],
    vectors: VectorStore,
    writer: RowWriter,
    *,
    collection: str | None = None,
    skip_existing: bool = True,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_read: Callable[[str, dict[str, Any]], None] | None = None,
) -> Report:
    """Every source through the Ray pipeline into ``writer``; each id written once.

    Sources go to Ray in chunks of CHUNK, so a source that travels as bytes (a zip
    member, an original read from the store) holds memory for one chunk only.
    ``on_read`` hears each read source's row metadata (a bucket object's ETag as read).
    A bucket's server that cannot be reached stops the run (StorageUnavailable), as in
    process: its objects are not reported as failed, so a rerun indexes them.
    """
    report = Report()
    seen: set[str] = set()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        ids = {r["id"] for r in batch}
        known = vectors.existing(ids, collection) if skip_existing else set()
        writer.add(
            [
                Entry(r["id"], r["vector"], r["key"], r["label"], r["metadata"])
                for r in batch
                if r["id"] not in known
            ]
        )
        for row in batch:
            status = DUPLICATE if row["id"] in known else ADDED
            _tell(report, Outcome(row["name"], status, key=row["key"]), on_outcome)
        batch.clear()

    iterator = iter(sources)
    while chunk := list(islice(iterator, CHUNK)):
        for row in rows(ray, chunk, job):
            if row["status"] == STATUS_UNAVAILABLE:
                raise StorageUnavailable(row["reason"])
            if on_read is not None and row["status"] == STATUS_OK:
                on_read(row["name"], row["metadata"])
            if row["status"] != STATUS_OK:
                _tell(report, Outcome(row["name"], REJECTED, reason=row["reason"]), on_outcome)
            elif row["id"] in seen:
                _tell(report, Outcome(row["name"], DUPLICATE, key=row["key"]), on_outcome)
            else:
                seen.add(row["id"])
                batch.append(row)
                if len(batch) >= max(job.batch_size * 8, 64):
                    flush()
    if batch:
        flush()
    writer.close()
    return report


def _tell(report: Report, outcome: Outcome, on_outcome: Callable[[Outcome], None] | None) -> None:
    report.outcomes.append(outcome)
    if on_outcome:
        on_outcome(outcome)
