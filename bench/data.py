"""Benchmark inputs: real photos (Grocery where present, else scikit-image samples)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bench.common import GROCERY


def photo_files(limit: int) -> list[bytes]:
    """Up to ``limit`` real JPEG files: Grocery train photos, else scikit-image samples."""
    files: list[bytes] = []
    if (GROCERY / "train.txt").is_file():
        for line in (GROCERY / "train.txt").read_text().splitlines():
            if len(files) >= limit:
                break
            files.append((GROCERY / line.split(",")[0].strip()).read_bytes())
        return files
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
             "immunohistochemistry"]
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in names]
    while len(files) < limit:  # distinct files: each round is saved at another quality
        for photo in photos:
            buffer = io.BytesIO()
            photo.save(buffer, "JPEG", quality=95 - len(files) // len(photos) % 60)
            files.append(buffer.getvalue())
    return files[:limit]


def grocery_split(name: str, limit: int | None = None) -> list[tuple[Path, int]]:
    """(path, fine label) pairs of a Grocery split; empty when the data is absent."""
    listing = GROCERY / f"{name}.txt"
    if not listing.is_file():
        return []
    rows = []
    for line in listing.read_text().splitlines():
        path, fine, _ = (part.strip() for part in line.split(","))
        rows.append((GROCERY / path, int(fine)))
    if limit is not None and limit < len(rows):
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows
