"""Suite ``backends``: every encoder backend and precision side by side, on this CPU.

For ViT-S/14 (random weights, DINOv2-small architecture) and the real MobileNetV2:
images/s of the model alone at batch 1 and at each batch size, as a fraction of the
matmul roofline measured around the same runs (bf16 where the CPU has bf16 hardware,
else fp32); the worst cosine to torch fp32
on real photos; Grocery Recall@1 (MobileNetV2, whose weights are real; a few hundred
images, exact search); and what ``auto`` picks here. All through ``Encoder``, so the
figures are those of the product's own code path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.gallery import imaging
from app.model.encoder import Encoder, bf16_supported
from bench.common import Stat, images_per_second, roofline_gflops, roofline_precision
from bench.data import grocery_split, photo_files
from bench.encoder_speed import embed_files
from bench.models import MOBILENET_V2, flops_per_image, model_dirs


def variants(*, quick: bool, max_autotune: bool,
             compile_modes: bool = True) -> dict[str, dict[str, Any]]:
    """Name -> Encoder settings (plus the bench-only int8 and autotune variants)."""
    bf16 = bf16_supported("cpu")
    out: dict[str, dict[str, Any]] = {"torch fp32": {"precision": "fp32"}}
    if bf16:
        out["torch bf16"] = {"precision": "bf16"}
        if compile_modes and not quick:
            out["torch.compile bf16 (freezing)"] = {"precision": "bf16", "compile": True}
            if max_autotune:
                out["torch.compile bf16 (freezing, max-autotune)"] = {
                    "precision": "bf16", "autotune": True}
    if not quick or not bf16:
        out["openvino fp32"] = {"precision": "fp32", "backend": "openvino"}
    if bf16:
        out["openvino bf16"] = {"precision": "bf16", "backend": "openvino"}
    if not quick:  # every export of the full-size ViT takes a minute on 2 cores
        out["openvino int8 weights"] = {"precision": "bf16" if bf16 else "fp32",
                                        "backend": "openvino", "int8": True}
    out["onnxruntime fp32"] = {"precision": "fp32", "backend": "onnxruntime"}
    out["auto"] = {"backend": "auto"}
    return out


def cpu_flags() -> dict[str, Any]:
    """The CPU's vendor and its bf16 matrix hardware (AMX or AVX512-BF16)."""
    flags: set[str] = set()
    vendor = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("vendor_id") and not vendor:
            vendor = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    return {"vendor": vendor, "amx_bf16": "amx_bf16" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx_int8": "amx_int8" in flags}


def run(workdir: Path, *, quick: bool, repeats: int, max_autotune: bool,
        compile_modes: bool = True) -> dict[str, Any]:
    images = [imaging.decode(data).image for data in photo_files(4 if quick else 16)]
    sizes = [1, 4] if quick else [1, 4, 8, 16]
    out: dict[str, Any] = {"cpu": cpu_flags(), "batch_sizes": sizes, "models": {}}
    exports = workdir / "encoder-exports"
    for name, path in model_dirs(workdir).items():
        out["models"][name] = measure_model(
            name, path, images, sizes,
            variants(quick=quick, max_autotune=max_autotune, compile_modes=compile_modes),
            exports, quick=quick, repeats=repeats)
    return out


def measure_model(name: str, path: Path, images: list, sizes: list[int],
                  wanted: dict[str, dict[str, Any]], exports: Path, *, quick: bool,
                  repeats: int) -> dict[str, Any]:
    flops = flops_per_image(path)
    peaks = [roofline_gflops()]
    result: dict[str, Any] = {"gflop_per_image": flops / 1e9, "variants": {},
                              "roofline_precision": roofline_precision()}
    reference = None
    for variant, settings in wanted.items():
        started = time.perf_counter()
        try:
            encoder = load(path, settings, exports)
            vectors = encoder.embed(images)  # warms up (exports, compiles) too
        except Exception as error:  # noqa: BLE001  (a backend that fails is reported, not fatal)
            result["variants"][variant] = {"error": f"{type(error).__name__}: {error}"[:300]}
            continue
        reference = vectors if reference is None else reference
        entry: dict[str, Any] = {
            "backend": encoder.backend, "precision": encoder.backend_precision,
            "setup_s": time.perf_counter() - started,
            "min_cosine_to_fp32": float(np.min(np.sum(vectors * reference, axis=1))),
            "model_only": {}}
        run_sizes = [1, 8] if settings.get("compile") or settings.get("autotune") else sizes
        for size in run_sizes:
            pixels = encoder.preprocess(batch_of(images, size))
            entry["model_only"][size] = images_per_second(
                lambda p=pixels, e=encoder: e.embed_pixels(p), size, reps=repeats).as_dict()
        result["variants"][variant] = entry
        peaks.append(roofline_gflops())
    result["peak_gflops"] = Stat.of(peaks).as_dict()
    peak = result["peak_gflops"]["high"] * 1e9
    for entry in result["variants"].values():
        if "model_only" in entry:
            best_size, best = max(entry["model_only"].items(), key=lambda kv: kv[1]["median"])
            entry["best_batch"] = best_size
            entry["roofline_fraction_batch1"] = entry["model_only"][1]["median"] * flops / peak
            entry["roofline_fraction_best"] = best["median"] * flops / peak
    result["roofline_images_per_s"] = peak / flops
    if "model_only" in result["variants"].get("auto", {}):
        result["auto_vs_torch"] = head_to_head(path, images, exports, quick=quick,
                                               rounds=repeats + 2)
    if name == MOBILENET_V2:
        result["recall"] = recall(path, wanted, exports, quick)
    return result


def batch_of(images: list, size: int) -> list:
    """``size`` images, the photos repeated as often as needed."""
    return (images * (size // len(images) + 1))[:size]


def head_to_head(path: Path, images: list, exports: Path, *, quick: bool,
                 rounds: int) -> dict[str, Any]:
    """auto against torch eager (the precision torch would serve), timed in turns.

    The table's rows are measured minutes apart, and on a shared machine that drift
    can exceed the gap between two backends; alternating them round by round puts
    both under the same load, which is what "never slower than torch" needs.
    """
    encoders = {name: load(path, {"backend": name}, exports) for name in ("torch", "auto")}
    out: dict[str, Any] = {"served_by": f"{encoders['auto'].backend} "
                                        f"{encoders['auto'].backend_precision}"}
    for size in [1, 4] if quick else [1, 8]:
        pixels = encoders["torch"].preprocess(batch_of(images, size))
        rates: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(rounds):
            for name, encoder in encoders.items():
                rates[name].append(images_per_second(
                    lambda p=pixels, e=encoder: e.embed_pixels(p), size, reps=1).median)
        ratios = [a / t for a, t in zip(rates["auto"], rates["torch"], strict=True)]
        out[str(size)] = {"auto": Stat.of(rates["auto"]).as_dict(),
                          "torch": Stat.of(rates["torch"]).as_dict(),
                          "ratio": Stat.of(ratios).as_dict()}
    return out


def load(path: Path, settings: dict[str, Any], exports: Path) -> Encoder:
    """An Encoder for one variant; int8 and max-autotune are bench-only swaps."""
    encoder = Encoder.from_pretrained(
        str(path), precision=settings.get("precision", "auto"),
        compile=bool(settings.get("compile")), backend=settings.get("backend", "torch"),
        export_dir=exports)
    if settings.get("int8"):
        from app.model.backends.choose import load as load_runtime

        encoder.runtime = load_runtime("openvino", encoder._spec(exports), "int8")
    if settings.get("autotune"):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        encoder._forward = torch.compile(encoder._features, mode="max-autotune", dynamic=False)
    return encoder


def recall(path: Path, wanted: dict[str, dict[str, Any]], exports: Path,
           quick: bool) -> dict[str, Any]:
    """Grocery test -> train Recall@1 (fine labels, exact search) for each eager variant."""
    queries = grocery_split("test", 20 if quick else 150)
    gallery = grocery_split("train", 40 if quick else 450)
    if not queries:
        return {"skipped": "the Grocery dataset is not in ../shared"}
    out: dict[str, Any] = {"queries": len(queries), "gallery": len(gallery)}
    labels = np.array([label for _, label in gallery])
    truth = np.array([label for _, label in queries])
    for variant, settings in wanted.items():
        if settings.get("compile") or settings.get("autotune"):
            continue  # same graph as eager; compiling for every chunk size costs minutes
        try:
            encoder = load(path, settings, exports)
        except Exception as error:  # noqa: BLE001
            out[variant] = {"error": str(error)[:300]}
            continue
        q = embed_files(encoder, [p for p, _ in queries])
        g = embed_files(encoder, [p for p, _ in gallery])
        out[variant] = {"recall_at_1": float((labels[np.argmax(q @ g.T, axis=1)] == truth).mean())}
    base = out.get("torch fp32", {}).get("recall_at_1")
    for value in out.values():
        if isinstance(value, dict) and "recall_at_1" in value and base is not None:
            value["points_vs_fp32"] = 100 * (value["recall_at_1"] - base)
    return out
