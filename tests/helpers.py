"""Small helpers shared by test modules: tiny real models, zip archives, condition waits."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def tiny_model(directory: Path, *, hidden: int = 32, layers: int = 1, seed: int = 1) -> Path:
    """A tiny random DINOv2 with its image processor, saved like a hub model."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                          intermediate_size=hidden * 2, patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(directory)
    BitImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample=3,
    ).save_pretrained(directory)
    return directory


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Tests wait for the condition they need, never for a fixed time: a busy machine
    then makes them slower, not flaky. Fails with ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # the poll interval, not a synchronisation
