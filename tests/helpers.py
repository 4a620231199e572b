"""Small builders shared by test modules: tiny real models and zip archives."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


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
