"""Why OpenVINO's threads are not pinned: pinned workers of one server share a core.

Run: ``python -m bench.openvino_pinning [--seconds 15] [--threads 1]``.

Exports the bench's ViT-S/14 to OpenVINO (fp32 weights, the product's export,
cached in the bench's work folder) and runs it at batch 1 with the product's
compile settings (``compile_config``), pinning on (OpenVINO's default) and off:
one process alone, then as many processes at once as there are cores, each with
``--threads`` inference threads, as gunicorn's workers run. Prints images/s per
process and together.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT
from bench.models import VIT_S14, model_dirs


def exported(workdir: Path) -> Path:
    """The product's OpenVINO export of the bench ViT-S/14 (built once, then cached)."""
    from app.model.encoder import Encoder

    exports = workdir / "encoder-exports"
    Encoder.from_pretrained(str(model_dirs(workdir)[VIT_S14]), precision="fp32",
                            backend="openvino", export_dir=exports)
    return max(exports.glob("*-openvino-fp32-*/model.xml"), key=lambda p: p.stat().st_mtime)


def _child(xml: str, threads: int, pinning: bool, seconds: float, start: Any,
           results: Any) -> None:
    import openvino as ov

    from app.model.backends.openvino_backend import compile_config

    compiled = ov.Core().compile_model(xml, "CPU", compile_config("fp32", threads,
                                                                  pinning=pinning))
    request = compiled.create_infer_request()
    pixels = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    request.infer({0: pixels})
    start.wait()  # every process compiled: the timing starts together
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        request.infer({0: pixels})
        runs += 1
    results.put(runs / (time.perf_counter() - began))


def rates(xml: Path, processes: int, threads: int, pinning: bool, seconds: float) -> list[float]:
    """Images/s of each of ``processes`` running at once."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_child, args=(str(xml), threads, pinning, seconds, start,
                                                     results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    measured = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1, help="inference threads per process")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "work")
    args = parser.parse_args()
    xml = exported(args.workdir)
    cores = os.cpu_count() or 1
    print(f"ViT-S/14, OpenVINO fp32, batch 1, {args.threads} inference thread(s) per process, "
          f"{cores} cores, {args.seconds:.0f} s per measure")
    for pinning in (True, False):
        alone = rates(xml, 1, args.threads, pinning, args.seconds)[0]
        together = rates(xml, cores, args.threads, pinning, args.seconds)
        print(f"pinning {'on ' if pinning else 'off'}: one process alone {alone:.2f} img/s; "
              f"{cores} at once {', '.join(f'{r:.2f}' for r in together)}, "
              f"together {sum(together):.2f} img/s ({sum(together) / alone:.2f}x alone)")


if __name__ == "__main__":
    main()
