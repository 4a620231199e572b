"""PNG plots: training curves, Recall@K before vs after, a retrieval grid.

matplotlib is imported inside each function with the non-interactive Agg
backend, so importing the trainer never touches a display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

GREEN = (46, 160, 67)
RED = (215, 58, 73)


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss per epoch on the left, validation Recall@K and mAP@R on the right."""
    if not history:
        return
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="Loss")
    for key in ("val_R@1", "val_R@5", "val_R@10", "val_mAP@R"):
        if any(key in row for row in history):
            right.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o",
                       label=key[4:])
    right.set(xlabel="epoch", ylabel="validation score", title="Validation", ylim=(0, 1.02))
    if right.get_lines():
        right.legend(loc="lower right")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def recall_curves(curves: dict[str, Sequence[float]], path: Path) -> None:
    """Recall@K for K = 1..len(curve), one line per model (before vs after fine-tuning)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ks = range(1, len(curve) + 1)
        axis.plot(ks, curve, marker="o", markersize=3, label=f"{name} (R@1 {curve[0]:.3f})")
    axis.set(xlabel="K", ylabel="Recall@K", title="Recall@K", ylim=(0, 1.02))
    axis.set_xscale("log")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def retrieval_grid(
    rows: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
    load: Callable[[str], Image.Image],
    path: Path,
    *,
    tile: int = 128,
    border: int = 6,
) -> None:
    """One row per query: the query, then its top results framed green (same label) or red.

    Args:
        rows: ``(query_path, query_label, [(result_path, result_label), ...])``.
        load: reads an image by path (the trainer's decode path).
    """
    if not rows:
        return
    columns = 1 + max(len(results) for _, _, results in rows)
    gap = tile // 4
    sheet = Image.new("RGB", (columns * (tile + 4) + gap, len(rows) * (tile + 4)), "white")
    for r, (query, label, results) in enumerate(rows):
        y = r * (tile + 4)
        sheet.paste(_tile(load(query), tile, border, (90, 90, 90)), (0, y))
        for c, (found, found_label) in enumerate(results):
            colour = GREEN if found_label == label else RED
            sheet.paste(_tile(load(found), tile, border, colour), (gap + (c + 1) * (tile + 4), y))
    sheet.save(path)


def _tile(image: Image.Image, size: int, border: int, colour: tuple[int, int, int]) -> Image.Image:
    inner = ImageOps.fit(image, (size - 2 * border, size - 2 * border))
    return ImageOps.expand(inner, border=border, fill=colour)
