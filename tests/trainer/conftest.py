"""Fixtures for the trainer: tiny labelled image sets made here, a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220),
           "yellow": (230, 220, 40)}


def colour_image(rgb: tuple[int, int, int], seed: int, size: int = 64) -> Image.Image:
    """A noisy patch of one colour with a random darker square: same label, different image."""
    rng = np.random.default_rng(seed)
    pixels = np.array(rgb, dtype=float)[None, None, :] + rng.normal(0, 20, (size, size, 3))
    x, y = rng.integers(0, size // 2, 2)
    pixels[y : y + size // 3, x : x + size // 3] *= 0.6
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def colour_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/<colour>/<n>.jpg``: 4 labels x 8 images, separable by colour."""
    root = tmp_path_factory.mktemp("colours")
    for c, (name, rgb) in enumerate(COLOURS.items()):
        (root / name).mkdir()
        for i in range(8):
            colour_image(rgb, seed=100 * c + i).save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, colour_folders: Path,
             tiny_model_dir: Path) -> Path:
    """A finished two-epoch run of the partial regime on the tiny DINOv2."""
    from trainer.config import TrainConfig
    from trainer.engine import train

    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(data=str(colour_folders), out=str(out), backbone=str(tiny_model_dir),
                      regime="partial", blocks=1, epochs=2, classes_per_batch=4,
                      images_per_class=4, bf16=False, threads=2, dim=16))
    return out
