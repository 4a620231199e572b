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
from pathlib import Path
from typing import Any

import torch

from bench.common import ROOT, machine

SUITES = ("encoder", "encoder-backends", "search", "latency", "ingest")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the code runs")
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma list of {', '.join(SUITES)}")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measure (default 3, quick 1)")
    parser.add_argument("--milvus-server", default="", help="a Milvus server URI to measure besides Lite")
    parser.add_argument("--sizes", default="", help="gallery sizes for the search suite")
    parser.add_argument("--gallery", type=int, default=0, help="gallery size for the latency suite")
    parser.add_argument("--ingest-photos", type=int, default=0, help="photos for the ingest suite")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile modes")
    parser.add_argument("--max-autotune", action="store_true",
                        help="encoder-backends suite: also torch.compile max-autotune (slow)")
    parser.add_argument("--backends", default="lite,server",
                        help="Milvus backends for the search and latency suites (server needs --milvus-server)")
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


def main(args: argparse.Namespace) -> dict[str, Any]:
    from app.vectors.lite_server import ensure_server, stop_server

    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "work"
    workdir.mkdir(exist_ok=True)
    repeats = args.repeats or (1 if args.quick else 3)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SUITES)
    if unknown:
        raise SystemExit(f"unknown suites: {', '.join(sorted(unknown))}")
    cores = torch.get_num_threads()
    command = " ".join(["python -m bench", *sys.argv[1:]])
    results: dict[str, Any] = {"machine": machine(), "command": command,
                               "quick": args.quick, "repeats": repeats, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    previous = args.out / "report.json"
    if args.update and previous.is_file():
        # The header keeps the first run's command; what this one re-measures says
        # under its own heading how, when, and on how loaded a machine.
        results = json.loads(previous.read_text())

    def stamp() -> dict[str, Any]:
        return {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "load_average": list(os.getloadavg())}
    lite_dir = workdir / "milvus.db"
    lite_uri = ensure_server(lite_dir).uri
    wanted = {b.strip() for b in args.backends.split(",")}
    backends = {"lite": lite_uri} if "lite" in wanted else {}
    if args.milvus_server and "server" in wanted:
        backends["server"] = args.milvus_server
    try:
        if "encoder" in only:
            from bench import encoder_speed

            run = stamp()
            results["encoder"] = encoder_speed.run(workdir, quick=args.quick, repeats=repeats,
                                                   compile_modes=not args.no_compile)
            results["encoder"]["run"] = run
            save(args, results)
        if "encoder-backends" in only:
            from bench import backend_speed

            run = stamp()
            results["encoder-backends"] = backend_speed.run(
                workdir, quick=args.quick, repeats=repeats, max_autotune=args.max_autotune,
                compile_modes=not args.no_compile)
            results["encoder-backends"]["run"] = run
            save(args, results)
        if "search" in only:
            from pymilvus import MilvusClient

            from bench import search_scale

            sizes = [int(s) for s in args.sizes.split(",") if s] or (
                [500, 1_000] if args.quick else [10_000, 100_000, 1_000_000])
            clients = {name: (MilvusClient(uri, timeout=600), name == "lite") for name, uri in backends.items()}
            run = stamp()
            search = search_scale.run(workdir, sizes=sizes, backends=clients,
                                      efs=[64] if args.quick else [64, 128, 256], quick=args.quick)
            search["runs"] = dict.fromkeys(backends, run)
            if args.update and "search" in results:
                search["results"] = {**results["search"]["results"], **search["results"]}
                search["runs"] = {**results["search"].get("runs", {}), **search["runs"]}
            results["search"] = search
            save(args, results)
        if "latency" in only:
            from bench import http_speed

            gallery = args.gallery or (500 if args.quick else 100_000)
            latency = results.get("latency", {}) if args.update else {}
            encoder_backends = [b.strip() for b in args.encoder_backends.split(",") if b.strip()]
            for name, uri in backends.items():
                for encoder_backend in encoder_backends:
                    key = name if encoder_backend == "torch" else f"{name}, encoder {encoder_backend}"
                    run = stamp()
                    latency[key] = http_speed.run(workdir, uri=uri, backend=name, gallery=gallery,
                                                  quick=args.quick, cores=cores,
                                                  encoder_backend=encoder_backend)
                    latency[key]["run"] = run
            results["latency"] = latency
            save(args, results)
        if "ingest" in only:
            from bench import ingest_speed

            run = stamp()
            results["ingest"] = ingest_speed.run(workdir, uri=lite_uri,
                                                 count=args.ingest_photos or (16 if args.quick else 512),
                                                 repeats=repeats)
            results["ingest"]["run"] = run
            save(args, results)
    finally:
        stop_server(lite_dir)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(args, results)
    return results


def save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    from bench.report import render

    (args.out / "report.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown = render(results)
    (args.out / "report.md").write_text(markdown)
    if args.report:
        args.report.write_text(markdown)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
