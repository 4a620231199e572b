"""Suite 4: ingest throughput (files -> searchable rows) against the encoder alone.

Both are measured in the same run on the same photos with the same model and
batch size (the encoder's default): the encoder alone runs on already preprocessed
batches; the ingest pipeline reads, hashes, decodes, thumbnails, stores, preprocesses, encodes,
inserts and finally builds the index. Peak memory is measured in subprocesses
ingesting N and 3N photos: a streaming pipeline stays flat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.gallery import imaging
from app.gallery.ingest import Ingestor
from app.gallery.sources import collect
from app.gallery.storage import LocalStore
from app.model.encoder import Encoder
from app.vectors.connect import open_client
from app.vectors.records import ModelStamp
from app.vectors.store import VectorStore
from bench.common import ROOT, Stat, rss_mb
from bench.data import photo_files
from bench.models import VIT_S14, model_dirs


def write_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(photo_files(count)):
        (folder / f"{i:06d}.jpg").write_bytes(data)
    return folder


def ingest_once(model_dir: Path, uri: str, folder: Path, workdir: Path) -> tuple[float, int]:
    """Seconds from files to searchable rows in a fresh collection, and rows added."""
    encoder = Encoder.from_pretrained(str(model_dir))
    client, version = open_client(uri, timeout=600)
    lite = version.startswith("milvus_lite")
    store = VectorStore(client, f"benchingest_{time.time_ns()}", lite=lite, timeout=600)
    collection = store.create_collection(ModelStamp(encoder.name, encoder.fingerprint, encoder.dim))
    images = LocalStore(workdir / f"images-{time.time_ns()}")
    encoder.embed([imaging.decode(next(folder.iterdir()).read_bytes()).image])  # warm
    start = time.perf_counter()
    report = Ingestor(encoder, store, images, collection=collection).run(
        collect([folder]))
    store.wait_for_index(collection, serving=False)
    elapsed = time.perf_counter() - start
    client.drop_collection(collection)
    return elapsed, report.added


def encoder_only(model_dir: Path, folder: Path, repeats: int) -> tuple[Stat, int]:
    """Images/s of the encoder alone, and the batch size it (and the ingest pipeline) used."""
    encoder = Encoder.from_pretrained(str(model_dir))
    files = sorted(folder.iterdir())
    size = encoder.batch_size  # the ingest pipeline's batch size too
    batches = [encoder.preprocess([imaging.decode(f.read_bytes()).image
                                   for f in files[i : i + size]])
               for i in range(0, len(files), size)]
    for batch in batches[:3]:  # warm-up
        encoder.embed_pixels(batch)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            encoder.embed_pixels(batch)
        samples.append(len(files) / (time.perf_counter() - start))
    return Stat.of(samples), size


def run(workdir: Path, *, uri: str, count: int, repeats: int) -> dict[str, Any]:
    model_dir = model_dirs(workdir)[VIT_S14]
    folder = write_photos(workdir / f"ingest-{count}", count)
    ingest, model = [], []
    batch_size = 0
    for _ in range(repeats):  # interleaved, so both see the same machine
        alone, batch_size = encoder_only(model_dir, folder, 1)
        model.append(alone.median)
        seconds, added = ingest_once(model_dir, uri, folder, workdir)
        ingest.append(added / seconds)
    ratios = [i / m for i, m in zip(ingest, model, strict=True)]
    failures: list[str] = []
    peaks = {n: peak_memory(uri, n, workdir, failures) for n in (count, 3 * count)}
    return {
        "photos": count,
        "model": VIT_S14,
        "batch_size": batch_size,
        "ingest_images_per_s": Stat.of(ingest).as_dict(),
        "encoder_only_images_per_s": Stat.of(model).as_dict(),
        "ratio": Stat.of(ratios).as_dict(),
        "peak_rss_mb": peaks,
        **({"peak_rss_failures": failures} if failures else {}),
    }


def peak_memory(uri: str, count: int, workdir: Path, failures: list[str]) -> float:
    """Peak RSS of a fresh process ingesting ``count`` photos.

    A child that fails is tried once more and its error kept in ``failures`` (the
    report shows it); one that fails twice fails the suite with its traceback.
    """
    result = _ingest_in_child(uri, count, workdir)
    if result.returncode != 0:
        failures.append(_failure(count, result))
        result = _ingest_in_child(uri, count, workdir)
        if result.returncode != 0:
            raise RuntimeError(_failure(count, result))
    return float(json.loads(result.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _ingest_in_child(uri: str, count: int, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.ingest_speed", uri, str(count), str(workdir)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )


def _failure(count: int, result: subprocess.CompletedProcess[str]) -> str:
    return (f"ingesting {count} photos in a fresh process failed "
            f"(exit {result.returncode}):\n{result.stderr[-4000:]}")


if __name__ == "__main__":
    uri_arg, count_arg, workdir_arg = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    model = model_dirs(workdir_arg)[VIT_S14]
    photos = write_photos(workdir_arg / f"ingest-{count_arg}", count_arg)
    ingest_once(model, uri_arg, photos, workdir_arg)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child of a
    # large bench process would report its parent's peak (seen: 13 GB for 512 photos).
    print(json.dumps({"peak_rss_mb": rss_mb(os.getpid(), "VmHWM")}))
