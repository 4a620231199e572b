"""Run the benchmarks and write the report: ``python -m bench [--quick] [--only ...]``.

Full run (the figures in BENCHMARKS.md): ``python -m bench --milvus-server URI``.
CI runs ``python -m bench --quick`` only to prove the code works; it asserts no timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import ROOT, machine


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the code runs")
    parser.add_argument("--only", default=",".join(SUITES),
                        help=f"comma list of {', '.join(SUITES)}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per measure (default 3, quick 1)")
    parser.add_argument("--milvus-server", default="",
                        help="a Milvus server URI to measure besides Lite")
    parser.add_argument("--sizes", default="", help="gallery sizes for the search suite")
    parser.add_argument("--gallery", type=int, default=0, help="gallery size for the latency suite")
    parser.add_argument("--ingest-photos", type=int, default=0,
                        help="photos for the ingest and bucket suites")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile modes")
    parser.add_argument("--max-autotune", action="store_true",
                        help="encoder-backends suite: also torch.compile max-autotune (slow)")
    parser.add_argument("--backends", default="lite,embedded,server",
                        help="Milvus backends for the search and latency suites: lite, embedded "
                             "(the default install's local Milvus server), server (needs "
                             "--milvus-server)")
    parser.add_argument("--encoder-backends", default="torch",
                        help="latency suite: LOOKALIKE_ENCODER_BACKEND values to serve with, "
                             "each beside the others (e.g. torch,auto)")
    parser.add_argument("--update", action="store_true",
                        help="merge into the existing report.json instead of starting a new one "
                             "(to re-measure one suite or backend; the report lists every command)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--report", type=Path, default=None,
                        help="also write the Markdown report here (e.g. BENCHMARKS.md)")
    return parser


@dataclass(frozen=True)
class Context:
    """What every suite needs: the options, a work folder, the Milvus backends, the report."""

    args: argparse.Namespace
    workdir: Path
    repeats: int
    command: str
    cores: int
    lite_uri: str
    backends: dict[str, str]  # name -> Milvus URI
    report: dict[str, Any]  # as measured so far (with --update: the earlier report too)

    def stamp(self) -> dict[str, Any]:
        """How, when and on how loaded a machine a suite was measured."""
        return {"command": self.command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "load_average": list(os.getloadavg())}


def run_encoder(ctx: Context) -> dict[str, Any]:
    from bench import encoder_speed

    run = ctx.stamp()
    result = encoder_speed.run(ctx.workdir, quick=ctx.args.quick, repeats=ctx.repeats,
                               compile_modes=not ctx.args.no_compile)
    return {**result, "run": run}


def run_encoder_backends(ctx: Context) -> dict[str, Any]:
    from bench import backend_speed

    run = ctx.stamp()
    result = backend_speed.run(ctx.workdir, quick=ctx.args.quick, repeats=ctx.repeats,
                               max_autotune=ctx.args.max_autotune,
                               compile_modes=not ctx.args.no_compile)
    return {**result, "run": run}


def run_search(ctx: Context) -> dict[str, Any]:
    from app.vectors.connect import open_client
    from bench import search_scale

    quick = ctx.args.quick
    sizes = [int(s) for s in ctx.args.sizes.split(",") if s] or (
        [500, 1_000] if quick else [10_000, 100_000, 1_000_000])
    clients = {name: (open_client(uri, timeout=600)[0], name == "lite")
               for name, uri in ctx.backends.items()}
    run = ctx.stamp()
    search = search_scale.run(ctx.workdir, sizes=sizes, backends=clients,
                              efs=[64] if quick else [64, 128, 256], quick=quick)
    # Keyed by backend and sizes, so that a later --update at other sizes
    # keeps saying how the earlier figures were measured.
    rows = ", ".join(f"{size:,}" for size in sizes)
    search["runs"] = {f"{name}, {rows} rows": run for name in ctx.backends}
    earlier = ctx.report.get("search") if ctx.args.update else None
    if earlier:
        search["results"] = {**earlier["results"], **search["results"]}
        search["runs"] = {**earlier.get("runs", {}), **search["runs"]}
    return search


def run_latency(ctx: Context) -> dict[str, Any]:
    from bench import http_speed

    gallery = ctx.args.gallery or (500 if ctx.args.quick else 100_000)
    latency = dict(ctx.report.get("latency", {})) if ctx.args.update else {}
    encoder_backends = [b.strip() for b in ctx.args.encoder_backends.split(",") if b.strip()]
    for name, uri in ctx.backends.items():
        for encoder_backend in encoder_backends:
            key = name if encoder_backend == "torch" else f"{name}, encoder {encoder_backend}"
            run = ctx.stamp()
            latency[key] = http_speed.run(ctx.workdir, uri=uri, backend=name, gallery=gallery,
                                          quick=ctx.args.quick, cores=ctx.cores,
                                          encoder_backend=encoder_backend)
            latency[key]["run"] = run
    return latency


def run_ingest(ctx: Context) -> dict[str, Any]:
    from bench import ingest_speed

    run = ctx.stamp()
    count = ctx.args.ingest_photos or (16 if ctx.args.quick else 512)
    result = ingest_speed.run(ctx.workdir, uri=ctx.lite_uri, count=count, repeats=ctx.repeats)
    return {**result, "run": run}


def run_bucket(ctx: Context) -> dict[str, Any]:
    from bench import bucket_speed

    run = ctx.stamp()
    count = ctx.args.ingest_photos or (16 if ctx.args.quick else 256)
    result = bucket_speed.run(ctx.workdir, uri=ctx.lite_uri, count=count, repeats=ctx.repeats)
    return {**result, "run": run}


def run_ray(ctx: Context) -> dict[str, Any]:
    from bench import ray_speed

    try:
        import ray  # noqa: F401
    except ImportError:
        return {"skipped": "Ray is not installed (pip install -r requirements-ray.txt)"}
    run = ctx.stamp()
    count = ctx.args.ingest_photos or (16 if ctx.args.quick else 256)
    result: dict[str, Any] = {"encoding": ray_speed.encoding(
        ctx.workdir, uri=ctx.lite_uri, count=count, repeats=ctx.repeats), "run": run}
    server = ctx.backends.get("server") or ctx.backends.get("embedded")  # a Milvus server
    if server:
        result["writing"] = ray_speed.writing(server, repeats=ctx.repeats,
                                              rows=500 if ctx.args.quick else 50_000)
    return result


def run_box(ctx: Context) -> dict[str, Any]:
    from bench import box_search
    from bench.common import MOBILENET

    if not (MOBILENET / "config.json").is_file():
        return {"skipped": f"the MobileNetV2 is not at {MOBILENET}"}
    run = ctx.stamp()
    quick = ctx.args.quick
    result = box_search.run(MOBILENET, uri=ctx.lite_uri, cases=4 if quick else 60,
                            gallery_size=20 if quick else 500)
    return {**result, "run": run}


def run_filtered(ctx: Context) -> dict[str, Any]:
    from app.vectors.connect import open_client
    from bench import filtered_search

    sizes = [int(s) for s in ctx.args.sizes.split(",") if s] or (
        [2_000] if ctx.args.quick else [100_000, 1_000_000])
    clients = {name: (open_client(uri, timeout=600)[0], name == "lite")
               for name, uri in ctx.backends.items()}
    run = ctx.stamp()
    result = filtered_search.run(ctx.workdir, sizes=sizes, backends=clients, quick=ctx.args.quick)
    return {**result, "run": run}


def run_duplicates(ctx: Context) -> dict[str, Any]:
    from app.vectors.connect import open_client
    from bench import duplicate_scale

    sizes = [int(s) for s in ctx.args.sizes.split(",") if s] or (
        [2_000, 4_000] if ctx.args.quick else [10_000, 100_000, 1_000_000])
    clients = {name: (open_client(uri, timeout=600)[0], name == "lite")
               for name, uri in ctx.backends.items()}
    run = ctx.stamp()
    return {**duplicate_scale.run(sizes=sizes, backends=clients), "run": run}


def run_copies(ctx: Context) -> dict[str, Any]:
    from bench import copy_detection

    run = ctx.stamp()
    return {**copy_detection.run(quick=ctx.args.quick), "run": run}


def run_overload(ctx: Context) -> dict[str, Any]:
    from bench import overload
    from bench.common import MOBILENET
    from bench.data import photo_files

    if not (MOBILENET / "config.json").is_file():
        return {"skipped": f"the MobileNetV2 is not at {MOBILENET}"}
    run = ctx.stamp()
    result = overload.run(ctx.workdir, quick=ctx.args.quick, model_dir=MOBILENET,
                          images=photo_files(20))
    return {**result, "run": run}


# Suite name -> what measures it; they run in this order.
SUITES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "encoder": run_encoder, "encoder-backends": run_encoder_backends,
    "search": run_search, "latency": run_latency, "ingest": run_ingest,
    "box": run_box, "filtered": run_filtered, "bucket": run_bucket,
    "duplicates": run_duplicates, "copies": run_copies, "overload": run_overload, "ray": run_ray,
}


def main(args: argparse.Namespace) -> dict[str, Any]:
    from app.vectors.lite_server import ensure_server, stop_server

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SUITES)
    if unknown:
        raise SystemExit(f"unknown suites: {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "work"
    workdir.mkdir(exist_ok=True)
    repeats = args.repeats or (1 if args.quick else 3)
    command = " ".join(["python -m bench", *sys.argv[1:]])
    results = _report(args, command, repeats)
    lite_dir = workdir / "milvus.db"
    lite_uri = ensure_server(lite_dir).uri
    embedded_dir = workdir / "milvus"
    backends = _backends(args, lite_uri, embedded_dir, results)
    ctx = Context(args, workdir, repeats, command, cores=torch.get_num_threads(),
                  lite_uri=lite_uri, backends=backends, report=results)
    try:
        for name, suite in SUITES.items():
            if name in only:
                results[name] = suite(ctx)
                save(args, results)
        if "embedded" in backends:
            results["embedded_server"]["rss_mb_after"] = group_rss_mb(embedded_dir)
    finally:
        stop_server(lite_dir)
        stop_embedded(embedded_dir)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(args, results)
    return results


def _backends(args: argparse.Namespace, lite_uri: str, embedded_dir: Path,
              results: dict[str, Any]) -> dict[str, str]:
    """Milvus URIs by backend name; the embedded one is started here (and timed)."""
    wanted = {b.strip() for b in args.backends.split(",")}
    backends = {"lite": lite_uri} if "lite" in wanted else {}
    if "embedded" in wanted:
        started = start_embedded(embedded_dir)
        if started is not None:
            backends["embedded"], results["embedded_server"] = started
    if args.milvus_server and "server" in wanted:
        backends["server"] = args.milvus_server
    return backends


def _report(args: argparse.Namespace, command: str, repeats: int) -> dict[str, Any]:
    """A new report's header, or with --update the existing report to merge into.

    The header keeps the first run's command; what an update re-measures says
    under its own heading how, when, and on how loaded a machine.
    """
    previous = args.out / "report.json"
    if args.update and previous.is_file():
        return json.loads(previous.read_text())
    return {"machine": machine(), "command": command, "quick": args.quick,
            "repeats": repeats, "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def start_embedded(data_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """The default install's local Milvus server (app.vectors.standalone), timed; None
    (and a note) where it cannot run here."""
    from app.vectors import standalone

    executable = standalone.find_executable()
    if executable is None or not standalone.can_isolate():
        print("bench: no embedded backend (milvus-server not installed, or no user "
              "namespaces)", file=sys.stderr)
        return None
    stop_embedded(data_dir)
    started = time.perf_counter()
    server = standalone.ensure_server(data_dir, executable)
    return server.uri, {"startup_s": time.perf_counter() - started,
                        "rss_mb_idle": group_rss_mb(data_dir), "executable": str(executable)}


def stop_embedded(data_dir: Path) -> None:
    from app.vectors import standalone

    standalone.stop_server(data_dir)


def group_rss_mb(data_dir: Path) -> float:
    """Resident memory of the local server's processes (the sandbox's process group)."""
    from app.vectors import standalone

    server = standalone.running_server(data_dir)
    if server is None:
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != server.pid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total / 1024


def save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from bench.report import render

    (args.out / "report.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = render(results)
    (args.out / "report.md").write_text(markdown)
    if args.report:
        args.report.write_text(markdown)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
