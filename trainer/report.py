"""The evaluation report: results.json, PNG plots, and a short Markdown page embedding them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trainer import plots

COLUMNS = ("R@1", "R@5", "R@10", "mAP@R")


def write_report(out: Path, results: dict[str, Any], baseline: dict[str, Any] | None,
                 run: Path | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    if baseline is not None:
        curves[f"before: {Path(baseline['model']).name}"] = baseline["recall_curve"]
    curves[f"{'after' if baseline else 'model'}: {Path(results['model']).name}"] = \
        results["recall_curve"]
    plots.recall_curves(curves, out / "recall_curve.png")
    if run is not None and (run / "training_curves.png").is_file():
        shutil.copy(run / "training_curves.png", out / "training_curves.png")
    path = out / "report.md"
    path.write_text(markdown(results, baseline, out))
    return path


def markdown(results: dict[str, Any], baseline: dict[str, Any] | None, out: Path) -> str:
    data = results["data"]
    lines = [
        f"# Retrieval report: {Path(results['model']).name}",
        "",
        f"Data: `{data['source']}` ({data['layout']}): {results['queries']} queries against a "
        f"gallery of {results['gallery']}; relevant = same label. Embedded by the app's encoder "
        f"({results.get('precision', '')}) at {results['images_per_s']} images/s; HNSW = the "
        "app's Milvus collection and search.",
        "",
        "| model | search | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, res in ([("before", baseline)] if baseline else []) + [("after" if baseline
                                                                       else "model", results)]:
        for search in ("hnsw", "exact"):
            if search in res:
                row = " | ".join(f"{res[search][c]:.4f}" for c in COLUMNS)
                lines.append(f"| {name}: `{Path(res['model']).name}` | {search} | {row} |")
    lines += ["", "![Recall@K](recall_curve.png)", ""]
    if (out / "retrieval_grid.png").is_file():
        lines += ["Queries (grey frame) and their top 5: green = same label, red = another.",
                  "", "![Retrieval grid](retrieval_grid.png)", ""]
    if (out / "training_curves.png").is_file():
        lines += ["## Training", "", "![Training curves](training_curves.png)", ""]
    return "\n".join(lines)
