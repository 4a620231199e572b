"""Sources -> Ray Data -> rows: the ingest's per-image step on CPU tasks, the model on
an actor pool.

The per-image step is the in-process ingest's own (``ready_image`` in
app/gallery/ingest.py: decode, store the original and its thumbnail, resize), and
the actors embed with ``Encoder.from_pretrained`` + ``embed_prepared``, so both
paths give the same keys and vectors. Objects of a bucket source (``BucketObject``)
are read by the tasks with the in-place path's own ``fetch``/``described``
(app/buckets/reading.py), and only their thumbnails are stored. Rows come back to
the driver in source order (``preserve_order``), so the first of two identical
images keeps its label as it does in process. A task or actor that dies is retried
by Ray; rows are keyed by content hash, so a retried batch can only repeat a row,
which the driver drops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.buckets.reading import BucketObject
from app.exceptions import BadRequest, NotFound, StorageUnavailable
from app.gallery import imaging
from app.gallery.sources import Source

STATUS_OK, STATUS_REJECTED = "ok", "rejected"
STATUS_UNAVAILABLE = "unavailable"  # the bucket's server could not be reached: stop the run


@dataclass(frozen=True)
class EncoderRecipe:
    """How each actor builds its encoder: ``Encoder.from_pretrained`` keyword arguments."""

    model: str
    precision: str = "auto"
    backend: str = "torch"
    threads: int | None = None
    batch_size: int | None = None
    export_dir: str | None = None

    def build(self):  # type: ignore[no-untyped-def]
        from app.model.encoder import Encoder

        return Encoder.from_pretrained(
            self.model,
            device=None,
            precision=self.precision,
            backend=self.backend,
            threads=self.threads,
            batch_size=self.batch_size,
            export_dir=Path(self.export_dir) if self.export_dir else None,
        )


@dataclass(frozen=True)
class StoreRecipe:
    """How each task opens the image store: ``open_store`` keyword arguments."""

    spec: str
    instance_path: str
    endpoint: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    secure: bool = False
    region: str | None = None
    timeout: float = 5.0

    def build(self):  # type: ignore[no-untyped-def]
        from app.gallery.storage import open_store

        args = asdict(self)
        return open_store(args.pop("spec"), instance_path=Path(args.pop("instance_path")), **args)


@dataclass(frozen=True)
class BucketsRecipe:
    """How each task reaches the bucket sources' S3 endpoints: the app's ``S3_*``
    settings as JSON, for ``Endpoints`` (app/buckets/endpoints.py)."""

    settings: str = field(repr=False)  # holds the secret keys: never shown

    def build(self):  # type: ignore[no-untyped-def]
        from app.buckets.endpoints import Endpoints

        return Endpoints(json.loads(self.settings))


@dataclass(frozen=True)
class Job:
    """What one Ray run needs besides its sources."""

    encoder: EncoderRecipe
    store: StoreRecipe | None  # None: re-encoding images the store already holds
    preprocess: Any  # the driver encoder's Preprocess (a small frozen dataclass)
    max_pixels: int
    batch_size: int = 8  # images per model call, per actor
    actors: int = 1
    gpus_per_actor: float = 0.0
    embedder: type | None = None  # the actor class; None: Embedder
    originals: bool = True  # False: in-place objects, only their thumbnails are stored
    buckets: BucketsRecipe | None = None  # for sources that are bucket objects
    extra: dict[str, Any] = field(default_factory=dict)


Item = Source | BucketObject


def describe(sources: Sequence[Item]) -> list[dict[str, Any]]:
    """Plain rows for Ray Data: a file or a bucket object is read by its task, anything
    else (a zip member, an upload) is read here and travels as bytes."""
    rows = []
    for index, source in enumerate(sources):
        row = {"index": index, "name": source.name, "path": "", "data": b"", "object": ""}
        if isinstance(source, BucketObject):
            rows.append({**row, "object": source.to_json(), "label": "", "metadata": "{}"})
            continue
        owner = getattr(source.read, "__self__", None)
        path = str(owner) if isinstance(owner, Path) else ""
        rows.append(
            {
                **row,
                "path": path,
                "data": b"" if path else source.read(),
                "label": source.label,
                "metadata": json.dumps(_metadata(source)),
            }
        )
    return rows


def prepare_batch(batch: dict[str, np.ndarray], *, job: Job) -> dict[str, np.ndarray]:
    """Ray task: read, hash, decode, store, resize and crop each image (no torch)."""
    images = _cached_store(job.store)
    n = len(batch["name"])
    ids, keys, status, reasons = [""] * n, [""] * n, [STATUS_OK] * n, [""] * n
    labels, metadata = list(batch["label"]), list(batch["metadata"])
    resized: list[Any] = []
    ok: list[int] = []
    for i in range(n):
        try:
            data = _read(batch, i, job, labels, metadata)
            ids[i] = imaging.content_hash(data)
            keys[i], small = _ready(data, ids[i], job, images)
        except OSError as exc:
            status[i], reasons[i] = STATUS_REJECTED, f"could not read the file ({exc})"
            continue
        except (BadRequest, NotFound) as exc:  # an object gone, too large or refused
            status[i], reasons[i] = STATUS_REJECTED, exc.message
            continue
        except StorageUnavailable as exc:
            status[i], reasons[i] = STATUS_UNAVAILABLE, exc.message
            continue
        except Exception as exc:  # noqa: BLE001 - InvalidImage, reported like in process
            status[i], reasons[i] = STATUS_REJECTED, getattr(exc, "message", str(exc))
            continue
        resized.append(small)
        ok.append(i)
    return {
        "index": batch["index"],
        "name": batch["name"],
        "label": np.array(labels),
        "metadata": np.array(metadata),
        "id": np.array(ids),
        "key": np.array(keys),
        "status": np.array(status),
        "reason": np.array(reasons),
        "pixels": _pixels(job.preprocess, resized, ok, n),
    }


def _pixels(preprocess: Any, resized: list[Any], ok: list[int], n: int) -> np.ndarray:
    """``Preprocess.finish`` of the readable images, zeros in the rows of the others."""
    if not resized:
        height, width = preprocess.input_size
        return np.zeros((n, height, width, 3), dtype=np.uint8)
    done = preprocess.finish(resized)
    pixels = np.zeros((n, *done.shape[1:]), dtype=done.dtype)
    pixels[ok] = done
    return pixels


def _read(batch: dict[str, np.ndarray], i: int, job: Job, labels: list, metadata: list) -> bytes:
    """Row ``i``'s bytes; a bucket object also sets its row's label and metadata."""
    if text := str(batch["object"][i]):
        assert job.buckets is not None, "bucket objects need the job's BucketsRecipe"
        item = BucketObject.from_json(text)
        data, labels[i], meta = item.read(_cached(job.buckets).client(item.endpoint))
        metadata[i] = json.dumps(meta)
        return data
    path = str(batch["path"][i])
    return Path(path).read_bytes() if path else bytes(batch["data"][i])


def _ready(data: bytes, digest: str, job: Job, images: Any) -> tuple[str, Any]:
    from app.gallery.ingest import ready_image, store_thumbnail

    store = None if job.originals or images is None else partial(store_thumbnail, images)
    return ready_image(data, digest, job.preprocess, images, max_pixels=job.max_pixels, store=store)


_BUILT: dict[Any, Any] = {}


def _cached(recipe: Any) -> Any:
    """One object per worker process and recipe (built lazily, never shipped)."""
    if recipe not in _BUILT:
        _BUILT[recipe] = recipe.build()
    return _BUILT[recipe]


def _cached_store(recipe: StoreRecipe | None) -> Any:
    return None if recipe is None else _cached(recipe)


class Embedder:
    """Ray actor: one encoder per actor, built once, embedding the prepared pixels."""

    def __init__(self, recipe: EncoderRecipe) -> None:
        self.encoder = recipe.build()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = batch.pop("pixels")
        ok = batch["status"] == STATUS_OK
        vectors = np.zeros((len(ok), self.encoder.dim), dtype=np.float32)
        if ok.any():
            vectors[ok] = self.encoder.embed_prepared(np.ascontiguousarray(pixels[ok]))
        batch["vector"] = vectors
        return batch


def rows(ray: Any, sources: Sequence[Item], job: Job) -> Iterator[dict[str, Any]]:
    """Every source as a row (id, key, name, label, metadata, status, reason, vector),
    in source order, from a Ray Data pipeline on the connected cluster."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the caller shows one bar over the whole job
    dataset = ray.data.from_items(describe(sources), override_num_blocks=_blocks(sources, job))
    dataset = dataset.map_batches(
        prepare_batch,
        fn_kwargs={"job": job},
        batch_size=job.batch_size,
        batch_format="numpy",
        max_retries=-1,
    )
    dataset = dataset.map_batches(
        job.embedder or Embedder,
        fn_constructor_args=(job.encoder,),
        compute=ray.data.ActorPoolStrategy(size=job.actors),
        batch_size=job.batch_size,
        batch_format="numpy",
        num_gpus=job.gpus_per_actor or None,
        # An actor that dies is restarted and its batches are run again.
        max_restarts=-1,
        max_task_retries=-1,
    )
    for batch in dataset.iter_batches(
        batch_size=job.batch_size, batch_format="numpy", prefetch_batches=2
    ):
        for i in range(len(batch["name"])):
            yield {
                "id": str(batch["id"][i]),
                "key": str(batch["key"][i]),
                "name": str(batch["name"][i]),
                "label": str(batch["label"][i]),
                "metadata": json.loads(str(batch["metadata"][i])),
                "status": str(batch["status"][i]),
                "reason": str(batch["reason"][i]),
                "vector": np.asarray(batch["vector"][i], dtype=np.float32),
            }


def _blocks(sources: Sequence[Item], job: Job) -> int:
    """Enough blocks for every CPU to have work, none smaller than a model batch."""
    return max(1, min(len(sources) // max(job.batch_size, 1), (os.cpu_count() or 1) * 4))


def _metadata(source: Source) -> dict[str, Any]:
    return {k: v for k, v in source.metadata.items() if v not in (None, "")}
