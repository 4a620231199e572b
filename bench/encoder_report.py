"""Markdown for suites 1 and 1b (the encoder and its backends), for bench/report.py."""

from __future__ import annotations

from typing import Any

from bench.models import VIT_S14
from bench.report_format import TARGETS, fmt, measured_by, verdict


def encoder(e: dict[str, Any]) -> list[str]:
    out = ["## 1. Encoder throughput", "", *measured_by(e.get("run")),
           "Model-only images/s on preprocessed batches, at each batch size; the roofline is the best "
           "dense 2048³ matmul rate (fp32 or bf16, as the mode computes) measured around the model's "
           "runs, divided by the model's FLOPs per image (counted by `torch.utils.flop_counter`). "
           "*Pipeline* is `Encoder.embed` on decoded photos (preprocessing included) at the encoder's default batch size; "
           "*naive* is the HF processor + model in fp32, one image at a time, as reference systems run it.",
           ""]
    for name, model in e["models"].items():
        peaks = model["peak_gflops"]
        out += [f"### {name} ({model['gflop_per_image']:.2f} GFLOP/image)", "",
                f"Matmul peak this run: fp32 {fmt(peaks['fp32'], 0)} GFLOP/s, "
                + (f"bf16 {fmt(peaks['bf16'], 0)} GFLOP/s. " if "bf16" in peaks else
                   "bf16 not measured (no bf16 matrix hardware: torch emulates it). ")
                + f"Naive pipeline: {fmt(model['naive'])} images/s.", ""]
        sizes = e["batch_sizes"]
        out.append("| mode | " + " | ".join(f"batch {s}" for s in sizes)
                   + " | roofline (img/s) | fraction @1 | fraction best | pipeline img/s | × naive | min cos to fp32 |")
        out.append("|---" * (len(sizes) + 7) + "|")
        for mode, entry in model["modes"].items():
            cells = [fmt(entry["model_only"][str(s)] if str(s) in entry["model_only"] else entry["model_only"][s])
                     for s in sizes]
            out.append(f"| {mode} | " + " | ".join(cells)
                       + f" | {entry['roofline_images_per_s']:.1f} | {entry['roofline_fraction_batch1']:.2f}"
                       f" | {entry['roofline_fraction_best']:.2f} (batch {entry['best_batch']})"
                       f" | {fmt(entry['pipeline'])} | {entry['speedup_vs_naive']:.2f}"
                       f" | {entry['min_cosine_to_fp32']:.5f} |")
        out.append("")
        bf16_modes = {k: v for k, v in model["modes"].items() if k.startswith("bf16")}
        if name != VIT_S14:
            out += ["- The roofline and naive-pipeline targets are set for ViT-S/14; for this convolutional "
                    "model (depthwise convolutions, memory-bound) the figures are for information."]
        elif bf16_modes:
            best_mode, best = max(bf16_modes.items(), key=lambda kv: kv[1]["roofline_fraction_best"])
            fastest = max(model["modes"].values(), key=lambda v: v["speedup_vs_naive"])
            out += [f"- Target ≥ {TARGETS['roofline']} of the bf16 roofline: best {best['roofline_fraction_best']:.2f} "
                    f"({best_mode}) → {verdict(best['roofline_fraction_best'] >= TARGETS['roofline'])}.",
                    f"- Target ≥ {TARGETS['naive_speedup']}× the naive pipeline: {fastest['speedup_vs_naive']:.2f}× "
                    f"→ {verdict(fastest['speedup_vs_naive'] >= TARGETS['naive_speedup'])}."]
        check = model.get("recall_check")
        if check and "skipped" not in check:
            out.append(f"- Recall@1, Grocery test → train ({check['queries']} queries, {check['gallery']} gallery, "
                       f"exact search): fp32 {check['fp32']['recall_at_1']:.4f}; " + "; ".join(
                           f"{k} {v['recall_at_1']:.4f} ({v['points_vs_fp32']:+.2f} points, "
                           f"{verdict(abs(v['points_vs_fp32']) <= TARGETS['recall_points'])})"
                           for k, v in check.items() if isinstance(v, dict) and k != "fp32") + ".")
        out.append("")
    return out


def backends(b: dict[str, Any]) -> list[str]:
    cpu = b["cpu"]
    matrix = "AMX" if cpu["amx_bf16"] else "AVX512-BF16, no AMX" if cpu["avx512_bf16"] else \
        "no bf16 matrix hardware"
    out = ["## 1b. Encoder backends", "", *measured_by(b.get("run")),
           f"CPU vendor {cpu['vendor']} ({matrix}). Model-only images/s through `Encoder` "
           "(`LOOKALIKE_ENCODER_BACKEND`, `LOOKALIKE_PRECISION`); the fraction is of the "
           "roofline (best 2048³ matmul around the runs / FLOPs per image, in bf16 where the CPU "
           "has bf16 hardware, else in fp32) for every variant. *auto* is what "
           "`LOOKALIKE_ENCODER_BACKEND=auto` picks "
           "on this machine (faster than torch eager at batch 1 and at the ingest batch, or torch).",
           ""]
    for name, model in b["models"].items():
        sizes = b["batch_sizes"]
        peak, precision = _roofline(model)
        out += [f"### {name} ({model['gflop_per_image']:.2f} GFLOP/image; {precision} peak "
                f"{fmt(peak, 0)} GFLOP/s, roofline "
                f"{model['roofline_images_per_s']:.1f} img/s)", "",
                "| variant | runs as | " + " | ".join(f"batch {s}" for s in sizes)
                + " | fraction @1 | fraction best | min cos to fp32 | Recall@1 (points vs fp32) |",
                "|---" * (len(sizes) + 6) + "|"]
        recall = model.get("recall", {})
        for variant, entry in model["variants"].items():
            if "error" in entry:
                out.append(f"| {variant} | failed: {entry['error']} |" + " |" * (len(sizes) + 4))
                continue
            cells = [fmt(entry["model_only"][k]) if (k := str(s)) in entry["model_only"]
                     else fmt(entry["model_only"][s]) if s in entry["model_only"] else "—"
                     for s in sizes]
            r = recall.get(variant, {})
            rec = (f"{r['recall_at_1']:.3f} ({r.get('points_vs_fp32', 0):+.1f})"
                   if "recall_at_1" in r else "—")
            out.append(f"| {variant} | {entry['backend']} {entry['precision']} | "
                       + " | ".join(cells)
                       + f" | {entry['roofline_fraction_batch1']:.2f}"
                       f" | {entry['roofline_fraction_best']:.2f} (batch {entry['best_batch']})"
                       f" | {entry['min_cosine_to_fp32']:.5f} | {rec} |")
        if "queries" in recall:
            out += ["", f"Recall@1: Grocery test → train, {recall['queries']} queries, "
                    f"{recall['gallery']} gallery images, exact search."]
        out += ["", *_auto_verdict(name, model["variants"], model.get("auto_vs_torch"),
                                   precision), ""]
    return out


def _roofline(model: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The peak and its precision (reports before fp32 rooflines had only a bf16 one)."""
    if "peak_gflops" in model:
        return model["peak_gflops"], model.get("roofline_precision", "bf16")
    return model["peak_bf16_gflops"], "bf16"


def _auto_verdict(name: str, variants: dict[str, Any],
                  turns: dict[str, Any] | None = None, precision: str = "bf16") -> list[str]:
    """Issue 23's goals for what auto picks: roofline fractions, never slower than torch
    (from the head-to-head timed in turns where the run has one)."""
    auto = variants.get("auto", {})
    # torch eager in the precision it would serve this model with (what auto replaced)
    eager = variants.get(f"torch {auto.get('precision')}") or variants.get("torch fp32") or {}
    if "model_only" not in auto or "model_only" not in eager:
        return []

    def rate(entry: dict[str, Any], size: Any) -> float:
        return entry["model_only"][size]["median"]

    if turns:
        sizes = [s for s in turns if s != "served_by"]
        slowest = min(turns[s]["ratio"]["median"] for s in sizes)
        pairs = "; ".join(f"batch {s}: auto {fmt(turns[s]['auto'])}, torch "
                          f"{fmt(turns[s]['torch'])} img/s, {fmt(turns[s]['ratio'], 2)}×"
                          for s in sizes)
        lines = [f"- auto serves on {turns['served_by']}. Against torch eager, timed in "
                 f"turns: {pairs} → {verdict(slowest >= 1)}: never slower than torch eager."]
    else:
        sizes = [s for s in auto["model_only"] if s in eager["model_only"]]
        slowest = min(rate(auto, s) / rate(eager, s) for s in sizes)
        lines = [f"- auto serves on {auto['backend']} {auto['precision']}: "
                 f"{slowest:.2f}× torch eager at its worst batch size "
                 f"({verdict(slowest >= 1)}: never slower than torch eager)."]
    if name == VIT_S14:
        lines.append(
            f"- Goal: ≥ 0.4 of the {precision} roofline at batch 1 and ≥ 0.6 at the best batch: "
            f"{auto['roofline_fraction_batch1']:.2f} and {auto['roofline_fraction_best']:.2f} "
            f"→ {verdict(auto['roofline_fraction_batch1'] >= 0.4)} and "
            f"{verdict(auto['roofline_fraction_best'] >= 0.6)}.")
    return lines
