"""The cost of running the model off the main thread: ``python -m bench.thread_penalty``.

gunicorn's gthread workers run each request on a pool thread. Measured here:
the same ViT-S/14 embed (batch 1, all cores) from the main thread, from one
long-lived other thread, and 100 GELUs of 257x1536 bf16 (one OpenMP region each).
Prints medians in ms; the ratio is what a request thread pays.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from app.encoder import Encoder
from bench.common import ROOT
from bench.models import VIT_S14, model_dirs


def median_ms(run: Callable[[], object], reps: int = 30) -> float:
    for _ in range(5):
        run()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def on_other_thread(measure: Callable[[], float]) -> float:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(measure()))
    thread.start()
    thread.join()
    return result[0]


def main(workdir: Path = ROOT / "bench" / "out" / "work") -> None:
    encoder = Encoder.from_pretrained(str(model_dirs(workdir)[VIT_S14]))
    image = Image.new("RGB", (348, 348), (120, 30, 200))
    hidden = torch.randn(257, 1536).bfloat16()
    cases = {
        "embed, batch 1": lambda: median_ms(lambda: encoder.embed([image])),
        "100 x GELU 257x1536 bf16": lambda: median_ms(
            lambda: [torch.nn.functional.gelu(hidden) for _ in range(100)]),
    }
    print(f"torch threads {torch.get_num_threads()}; precision {encoder.precision}")
    for name, measure in cases.items():
        main_ms = measure()
        other_ms = on_other_thread(measure)
        print(f"{name}: main thread {main_ms:.1f} ms, other thread {other_ms:.1f} ms, "
              f"ratio {other_ms / main_ms:.2f}")


if __name__ == "__main__":
    main()
