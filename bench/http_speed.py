"""Suites 2, 5 and 6: end-to-end query latency, concurrency, worker startup and memory.

gunicorn serves the app with the full-size ViT-S/14 (DINOv2-small's architecture)
over a gallery of synthetic 384-d vectors near real embeddings, on the Milvus
backend given (a server URI, or the embedded Lite server).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import torch

from app.model.encoder import Encoder
from app.vectors.connect import open_client
from app.vectors.records import ModelStamp
from app.vectors.store import VectorStore
from bench import search_scale
from bench.common import cpu_s, machine_cpu_s, percentile
from bench.data import photo_files
from bench.models import VIT_S14, model_dirs
from bench.serving import Server, behind_nginx, search, serve


def prepare_gallery(uri: str, collection: str, model_dir: Path, size: int, workdir: Path) -> None:
    """A serving collection of ``size`` vectors stamped with the model's identity."""
    encoder = Encoder.from_pretrained(str(model_dir))
    client, version = open_client(uri, timeout=600)
    lite = version.startswith("milvus_lite")
    store = VectorStore(client, collection, lite=lite, timeout=600)
    existing = store.resolve()
    if existing is not None and store.count() == size:
        # Loaded, with its index built: Milvus Lite rebuilds it after a restart,
        # and a build in the background would take CPU from every measure.
        store.wait_for_index(existing, serving=False, timeout=3600)
        return
    physical = store.create_collection(ModelStamp(encoder.name, encoder.fingerprint, encoder.dim))
    base, _ = search_scale.centres(workdir, quick=size < 10_000)
    vectors = search_scale.synthetic(base, size, seed=11)
    for i in range(0, size, search_scale.INSERT_BATCH):
        client.insert(physical, [
            {"id": f"{i + j:064x}", "vector": v.tolist(), "key": f"{i + j:064x}.jpg", "label": "",
             "metadata": {}} for j, v in enumerate(vectors[i : i + search_scale.INSERT_BATCH])])
    store.wait_for_index(physical, serving=False, timeout=3600)
    store.switch_to(physical)


def run(workdir: Path, *, uri: str, backend: str, gallery: int, quick: bool, cores: int,
        encoder_backend: str = "torch") -> dict[str, Any]:
    model_dir = model_dirs(workdir)[VIT_S14]
    collection = f"benchhttp_{gallery}"
    prepare_gallery(uri, collection, model_dir, gallery, workdir)
    env = {"LOOKALIKE_MODEL": str(model_dir), "LOOKALIKE_MILVUS_URI": uri,
           "LOOKALIKE_COLLECTION": collection, "LOOKALIKE_INSTANCE_PATH": str(workdir / "instance"),
           "HF_HUB_OFFLINE": "1", "LOOKALIKE_ENCODER_BACKEND": encoder_backend,
           "LOOKALIKE_ENCODER_EXPORT_DIR": str(workdir / "encoder-exports")}
    images = photo_files(20)
    out: dict[str, Any] = {"backend": backend, "gallery": gallery, "model": VIT_S14,
                           "encoder_backend": encoder_backend}
    # Latency: one worker, all cores for the model, requests one at a time.
    server = serve(env, workers=1, threads=4, torch_threads=cores,
                   log=workdir / "gunicorn-latency.log")
    try:
        out["startup"] = {"ready_s": server.ready_s, "worker_rss_mb": server.worker_rss_mb()}
        with behind_nginx(server, workdir / "nginx") as nginx:
            paths = {"gunicorn": server.port}
            if isinstance(nginx, int):
                paths["nginx"] = nginx
            measured = latency(paths, images, 5 if quick else 100)
        out["latency"] = measured["gunicorn"]
        out["latency_nginx"] = measured.get("nginx", {"skipped": nginx})
    finally:
        server.stop()
    # Concurrency: one worker per core, one torch thread each.
    server = serve(env, workers=cores, threads=4, torch_threads=1,
                   log=workdir / "gunicorn-conc.log")
    try:
        out["concurrency_setup"] = {"workers": cores, "threads": 4, "torch_threads": 1,
                                    "ready_s": server.ready_s,
                                    "worker_rss_mb": server.worker_rss_mb()}
        out["concurrency"] = {
            clients: concurrency(server, images, clients, 2 if quick else 50)
            for clients in (1, 2, 4, 8)
        }
    finally:
        server.stop()
    single_s = single_image_encode_s(model_dir, images, encoder_backend,
                                     workdir / "encoder-exports")
    out["single_image_encode_ms"] = single_s * 1000
    out["concurrency_target"] = 0.9 * cores / single_s
    out["concurrency_ratio"] = out["concurrency"][8]["requests_per_s"] / (cores / single_s)
    return out


def single_image_encode_s(model_dir: Path, images: list[bytes], backend: str = "torch",
                          export_dir: Path | None = None, reps: int = 40) -> float:
    """Median time to encode one photo (preprocess + model) with one thread, on the
    encoder backend the server ran (its export and ``auto`` decision reused).

    Measured here, on this process's main thread, not from a server's timings:
    ``cores / this`` is what a perfect server would sustain with every core busy
    encoding, so the server's own overheads count against it.
    """
    from app.gallery.imaging import decode

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder = Encoder.from_pretrained(str(model_dir), backend=backend,
                                          export_dir=export_dir)
        photos = [decode(data).image for data in images]
        for photo in photos[:5]:
            encoder.embed([photo])
        samples = []
        for i in range(reps):
            start = time.perf_counter()
            encoder.embed([photos[i % len(photos)]])
            samples.append(time.perf_counter() - start)
        return percentile(samples, 50)
    finally:
        torch.set_num_threads(threads)


def latency(paths: dict[str, int], images: list[bytes], count: int) -> dict[str, dict[str, Any]]:
    """Uploads one at a time to each port in turn (gunicorn, nginx), so every path is
    measured in the same minutes; the server's own timings split each answer."""
    timed = ("decode", "embed", "search")  # the server's own timings
    parts = {name: {part: list[float]() for part in (*timed, "rest", "total")} for name in paths}
    for port in paths.values():
        search(port, images[0])  # warm
    for i in range(count):
        for name, port in paths.items():
            status, wall, body = search(port, images[i % len(images)])
            if status != 200:
                raise RuntimeError(f"search through {name} answered {status}: {body}")
            timings = body["timings_ms"]
            for part in timed:
                parts[name][part].append(timings[part])
            parts[name]["rest"].append(wall - sum(timings[part] for part in timed))
            parts[name]["total"].append(wall)
    return {name: _latency_summary(path) for name, path in parts.items()}


def _latency_summary(parts: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {f"{k}_ms": {"p50": percentile(v, 50), "p95": percentile(v, 95)}
                           for k, v in parts.items()}
    total = sum(parts["total"])
    out["non_model_fraction"] = (total - sum(parts["embed"])) / total
    return out


def concurrency(server: Server, images: list[bytes], clients: int,
                per_client: int) -> dict[str, Any]:
    latencies: list[float] = []
    embeds: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        for i in range(per_client):
            status, wall, body = search(server.port, images[(offset + i) % len(images)])
            with lock:
                latencies.append(wall)
                if status != 200:
                    errors.append(status)
                else:
                    embeds.append(body["timings_ms"]["embed"])

    threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(clients)]
    workers = server.workers()
    cpu_before = (sum(cpu_s(pid) for pid in workers), time.process_time(), *machine_cpu_s())
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu_after = (sum(cpu_s(pid) for pid in workers), time.process_time(), *machine_cpu_s())
    worker_s, client_s, busy_s, idle_s = (b - a for a, b in zip(cpu_before, cpu_after, strict=True))
    per_request = 1000 / max(1, len(latencies))
    return {"requests": len(latencies), "errors": len(errors),
            "requests_per_s": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "embed_p50_ms": percentile(embeds, 50),
            # Where the machine's CPU went, per request: the gunicorn workers, this
            # load client, everything else (the Milvus server), and cores left idle.
            "cpu_ms_per_request": {"workers": worker_s * per_request,
                                   "client": client_s * per_request,
                                   "other": max(0.0, busy_s - worker_s - client_s) * per_request,
                                   "idle": idle_s * per_request}}
