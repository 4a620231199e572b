"""Suite 9: indexing a bucket in place against indexing the same files from a folder.

The same photos are written to a local folder and uploaded to an S3 server
(``s3rver`` where installed, a separate file-backed process; else moto in this
process). With one encoder, in the same run, interleaved: ``Ingestor`` over the
folder (originals and thumbnails stored) and ``Syncer`` over the bucket (each
object read once over HTTP, thumbnails stored, originals left in place), each
into a fresh collection, the clock stopping when the rows are indexed. Also the
cost of queueing one bucket event (what ``POST /api/hooks/s3`` does per request).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from minio import Minio

from app.buckets.catalog import Catalog
from app.buckets.event_queue import CREATED, Event, EventQueue
from app.buckets.location import Location
from app.buckets.sync import Syncer
from app.coordination.local import FileSyncLocks
from app.gallery import imaging
from app.gallery.ingest import Ingestor
from app.gallery.sources import collect
from app.gallery.storage import LocalStore, connect_minio
from app.model.encoder import Encoder
from app.serving import Snapshot, stamp_of
from app.vectors.connect import open_client
from app.vectors.store import VectorStore
from bench.common import Stat, percentile
from bench.ingest_speed import write_photos
from bench.models import VIT_S14, model_dirs

BUCKET = "bench-photos"
STARTUP_S = 20.0


@contextmanager
def s3_server(workdir: Path) -> Iterator[tuple[str, str, str, str]]:
    """(kind, endpoint, access key, secret key) of a local S3 server, stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    executable = shutil.which("s3rver")
    if executable:
        data = workdir / f"s3rver-{port}"
        process = subprocess.Popen(
            [executable, "--silent", "-a", "127.0.0.1", "-p", str(port), "-d", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, process)
            yield "s3rver", f"127.0.0.1:{port}", "S3RVER", "S3RVER"
        finally:
            process.terminate()
            process.wait(timeout=10)
            shutil.rmtree(data, ignore_errors=True)
        return
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        _wait_listening(port, None)
        yield "moto", f"127.0.0.1:{port}", "bench-access", "bench-secret"
    finally:
        server.stop()


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("the S3 server exited during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # the poll interval of a wait with a deadline
    raise RuntimeError(f"the S3 server did not listen on {port} in {STARTUP_S:g} s")


def upload(client: Minio, folder: Path) -> int:
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    files = sorted(folder.iterdir())
    for path in files:
        data = path.read_bytes()
        client.put_object(
            BUCKET, f"photos/{path.name}", io.BytesIO(data), len(data), content_type="image/jpeg"
        )
    return len(files)


def fresh_store(encoder: Encoder, uri: str, name: str) -> tuple[VectorStore, str]:
    client, version = open_client(uri, timeout=600)
    store = VectorStore(
        client, f"bench{name}_{time.time_ns()}", lite=version.startswith("milvus_lite"), timeout=600
    )
    return store, store.create_collection(stamp_of(encoder))


def from_folder(encoder: Encoder, uri: str, folder: Path, workdir: Path) -> tuple[float, int]:
    store, collection = fresh_store(encoder, uri, "folder")
    images = LocalStore(workdir / f"images-{time.time_ns()}")
    start = time.perf_counter()
    report = Ingestor(encoder, store, images, collection=collection).run(collect([folder]))
    store.wait_for_index(collection, serving=False)
    elapsed = time.perf_counter() - start
    store.client.drop_collection(collection)
    return elapsed, report.added


def from_bucket(encoder: Encoder, uri: str, client: Minio, workdir: Path) -> tuple[float, int]:
    store, collection = fresh_store(encoder, uri, "bucket")
    pinned = VectorStore(store.client, collection, lite=store.lite, timeout=600)
    images = LocalStore(workdir / f"images-{time.time_ns()}")
    state = workdir / f"buckets-{time.time_ns()}"
    catalog = Catalog.in_folder(state)
    source = catalog.add(collection, Location(BUCKET, "photos/"))

    @contextmanager
    def writes() -> Iterator[Snapshot]:
        yield Snapshot(collection, stamp_of(encoder), encoder, pinned)

    start = time.perf_counter()
    report = Syncer(
        catalog,
        source,
        client,
        images,
        writes,
        locks=FileSyncLocks(state),
        batch_size=encoder.batch_size,
    ).sync()
    store.wait_for_index(collection, serving=False)
    elapsed = time.perf_counter() - start
    store.client.drop_collection(collection)
    return elapsed, report.tally.added


def event_queueing_ms(workdir: Path, count: int) -> dict[str, float]:
    """Milliseconds to queue one event, as the hook route does for each request."""
    queue = EventQueue.in_folder(workdir / f"events-{time.time_ns()}")
    samples = []
    for i in range(count):
        start = time.perf_counter()
        queue.push([Event(BUCKET, f"photos/{i:06d}.jpg", CREATED)])
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "p50": round(percentile(samples, 50), 3),
        "p99": round(percentile(samples, 99), 3),
        "events": count,
    }


def run(workdir: Path, *, uri: str, count: int, repeats: int) -> dict[str, Any]:
    model_dir = model_dirs(workdir)[VIT_S14]
    folder = write_photos(workdir / f"bucket-{count}", count)
    encoder = Encoder.from_pretrained(str(model_dir))
    encoder.embed([imaging.decode(next(folder.iterdir()).read_bytes()).image])  # warm
    local, bucket, ratios = [], [], []
    with s3_server(workdir) as (kind, endpoint, access, secret):
        client = connect_minio(endpoint, access_key=access, secret_key=secret, timeout=60)
        upload(client, folder)
        for _ in range(repeats):  # interleaved, so both see the same machine
            seconds, added = from_folder(encoder, uri, folder, workdir)
            local.append(added / seconds)
            seconds, added = from_bucket(encoder, uri, client, workdir)
            bucket.append(added / seconds)
            ratios.append(bucket[-1] / local[-1])
    return {
        "photos": count,
        "model": VIT_S14,
        "batch_size": encoder.batch_size,
        "server": kind,
        "cores": os.cpu_count(),
        "folder_images_per_s": Stat.of(local).as_dict(),
        "bucket_images_per_s": Stat.of(bucket).as_dict(),
        "ratio": Stat.of(ratios).as_dict(),
        "event_queue_ms": event_queueing_ms(workdir, 200 if count < 100 else 1000),
    }
