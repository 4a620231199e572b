"""Why the model runs on the main thread and no other thread touches torch.

Run: ``python -m bench.thread_penalty``.

libgomp (torch's OpenMP runtime) keeps a pool of threads for every thread that
starts a parallel region, for as long as that thread lives. While a process
holds more such threads than it has CPUs, libgomp stops spinning between
regions and every region pays a futex wake-up. Measured here, with all cores as
torch threads: ViT-S/14 embed at batch 1 and 100 GELUs of 257x1536 bf16 (one
parallel region each),

- on the main thread, with no other pool alive (the product: app/model/main_thread.py);
- on the main thread while another live thread holds a pool (it once ran one
  parallel torch op, as a request thread normalising its upload did);
- on another thread (gunicorn's gthread runs requests on pool threads).

Prints medians in ms and each ratio to the first.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from app.model.encoder import Encoder
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


@contextmanager
def another_live_pool() -> Iterator[None]:
    """A thread that ran one parallel torch op and stays alive meanwhile."""
    done, ready = threading.Event(), threading.Event()

    def hold() -> None:
        (torch.zeros(8, 3, 224, 224) - 1.0) / 2.0  # noqa: B018 - starts this thread's pool
        ready.set()
        done.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
        alone = measure()
        with another_live_pool():
            beside = measure()
        other = on_other_thread(measure)
        print(f"{name}: main thread {alone:.1f} ms; main thread beside another live pool "
              f"{beside:.1f} ms ({beside / alone:.2f}x); other thread {other:.1f} ms "
              f"({other / alone:.2f}x)")


if __name__ == "__main__":
    main()
