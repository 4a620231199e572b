"""Suite 1: encoder throughput against the machine's matmul roofline and the naive pipeline.

For each model: FLOPs per image (counted by torch), the machine's fp32 matmul
peak (and bf16, where the CPU has bf16 hardware) measured around the model's runs,
images/s of the model alone at each batch size and of the whole embed path
(preprocess + model), for each precision mode, and the naive pipeline of reference
systems (HF processor + model, fp32, one image at a time). Faster modes are checked
for embedding cosine to fp32 and for Recall@1 on the real Grocery split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.gallery import imaging
from app.model.encoder import Encoder, bf16_supported
from bench.common import Stat, images_per_second, matmul_gflops
from bench.data import grocery_split, photo_files
from bench.models import MOBILENET_V2, flops_per_image, model_dirs


def run(workdir: Path, *, quick: bool, repeats: int, compile_modes: bool) -> dict[str, Any]:
    images = [imaging.decode(data).image for data in photo_files(4 if quick else 64)]
    batch_sizes = [1, 4] if quick else [1, 4, 8, 16, 32]
    modes = ["fp32"] + (["bf16", "bf16-autocast"] if bf16_supported("cpu") else [])
    if compile_modes and not quick:
        modes += [m + "+compile" for m in modes if m != "bf16-autocast"]
    out: dict[str, Any] = {"batch_sizes": batch_sizes, "models": {}}
    for name, path in model_dirs(workdir).items():
        out["models"][name] = measure_model(name, path, images, batch_sizes, modes, quick, repeats)
    return out


def measure_model(name: str, path: Path, images: list, batch_sizes: list[int], modes: list[str],
                  quick: bool, repeats: int) -> dict[str, Any]:
    flops = flops_per_image(path)
    # bf16 peaks only where the CPU has bf16 hardware: emulated, one 2048³ product takes
    # seconds, and no bf16 mode is measured there anyway.
    dtypes = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if bf16_supported("cpu") else {})}
    peaks = {name: [matmul_gflops(dtype)] for name, dtype in dtypes.items()}
    result: dict[str, Any] = {"gflop_per_image": flops / 1e9, "modes": {}}
    naive_count = 2 if quick else 16
    result["naive"] = naive_pipeline(path, images[:naive_count], repeats).as_dict()
    reference = None
    for mode in modes:
        precision, _, compiled = mode.partition("+")
        started = time.perf_counter()
        # The product's own batch size for the pipeline (model-only runs take any size).
        encoder = Encoder.from_pretrained(str(path), precision=precision, compile=bool(compiled))
        vectors = encoder.embed(images)  # also warms up (and compiles) the model
        setup = time.perf_counter() - started
        if reference is None:
            reference = vectors
        entry: dict[str, Any] = {
            "setup_s": setup,
            "min_cosine_to_fp32": float(np.min(np.sum(vectors * reference, axis=1))),
            "model_only": {},
        }
        for size in batch_sizes:
            pixels = encoder.preprocess(images[:size])
            entry["model_only"][size] = images_per_second(
                lambda p=pixels, e=encoder: e.embed_pixels(p), size, reps=repeats).as_dict()
        entry["pipeline"] = images_per_second(lambda e=encoder: e.embed(images), len(images),
                                              reps=repeats).as_dict()
        result["modes"][mode] = entry
        for precision_name, dtype in dtypes.items():
            peaks[precision_name].append(matmul_gflops(dtype))
    result["peak_gflops"] = {k: Stat.of(v).as_dict() for k, v in peaks.items()}
    add_ratios(result, flops)
    if name == MOBILENET_V2:
        result["recall_check"] = recall_check(path, [m for m in modes if m != "fp32"], quick)
    return result


def add_ratios(result: dict[str, Any], flops: float) -> None:
    """Roofline fraction (against the best peak seen in this run) and speed-up vs naive."""
    naive = result["naive"]["median"]
    for mode, entry in result["modes"].items():
        peak = result["peak_gflops"]["fp32" if mode.startswith("fp32") else "bf16"]["high"] * 1e9
        best_size, best = max(entry["model_only"].items(), key=lambda kv: kv[1]["median"])
        entry["best_batch"] = best_size
        entry["roofline_images_per_s"] = peak / flops
        entry["roofline_fraction_batch1"] = entry["model_only"][1]["median"] * flops / peak
        entry["roofline_fraction_best"] = best["median"] * flops / peak
        entry["speedup_vs_naive"] = entry["pipeline"]["median"] / naive


def naive_pipeline(path: Path, images: list, repeats: int) -> Stat:
    """What reference systems run: HF processor + model, fp32, one image at a time."""
    from transformers import AutoImageProcessor, AutoModel

    try:
        processor = AutoImageProcessor.from_pretrained(path)
    except OSError:
        processor = None
    model = AutoModel.from_pretrained(path).eval()

    def run() -> None:
        with torch.no_grad():
            for image in images:
                pixels = processor(images=image, return_tensors="pt")["pixel_values"]
                _ = model(pixel_values=pixels).pooler_output

    return images_per_second(run, len(images), reps=repeats)


def recall_check(path: Path, modes: list[str], quick: bool) -> dict[str, Any]:
    """Grocery test -> train Recall@1 (fine labels) per mode, exact search."""
    queries = grocery_split("test", 40 if quick else None)
    gallery = grocery_split("train", 80 if quick else None)
    if not queries:
        return {"skipped": "the Grocery dataset is not in ../shared"}
    out: dict[str, Any] = {"queries": len(queries), "gallery": len(gallery)}
    for mode in ["fp32", *modes]:
        precision, _, compiled = mode.partition("+")
        encoder = Encoder.from_pretrained(str(path), precision=precision, compile=bool(compiled))
        q = embed_files(encoder, [p for p, _ in queries])
        g = embed_files(encoder, [p for p, _ in gallery])
        top = np.argmax(q @ g.T, axis=1)
        labels = np.array([label for _, label in gallery])
        hits = labels[top] == np.array([label for _, label in queries])
        out[mode] = {"recall_at_1": float(hits.mean())}
    for mode in modes:
        out[mode]["points_vs_fp32"] = 100 * (out[mode]["recall_at_1"] - out["fp32"]["recall_at_1"])
    return out


def embed_files(encoder: Encoder, paths: list[Path], chunk: int = 64) -> np.ndarray:
    parts = []
    for i in range(0, len(paths), chunk):
        images = [imaging.decode(p.read_bytes()).image for p in paths[i : i + chunk]]
        parts.append(encoder.embed(images))
    return np.concatenate(parts)
