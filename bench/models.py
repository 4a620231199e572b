"""The models benchmarked: a full-size random DINOv2-S/14 and the real MobileNetV2.

Random weights have exactly the real model's cost; the ViT-S/14 is saved with
DINOv2's own preprocessing (resize 256, centre crop 224) so every code path,
from_pretrained included, is the product's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.common import MOBILENET

VIT_S14 = "dinov2-s14-random"
MOBILENET_V2 = "mobilenet-v2"


def make_vit_s14(directory: Path) -> Path:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    if (directory / "config.json").is_file():
        return directory
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                          intermediate_size=1536, patch_size=14, image_size=518)
    Dinov2Model(config).save_pretrained(directory)
    BitImageProcessor(
        size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], resample=3,
    ).save_pretrained(directory)
    return directory


def model_dirs(workdir: Path) -> dict[str, Path]:
    """Available models by name (MobileNetV2 only where ../shared is present)."""
    found = {VIT_S14: make_vit_s14(workdir / VIT_S14)}
    if (MOBILENET / "config.json").is_file():
        found[MOBILENET_V2] = MOBILENET
    return found


def flops_per_image(model_dir: Path) -> float:
    """Forward FLOPs for one 224 px image, counted by torch (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    from app.model.attention import use_matmul_attention
    from app.model.encoder import load_backbone

    backbone, preprocess = load_backbone(str(model_dir))
    # Attention as plain matmuls, which the counter sees (it skips the fused SDPA kernel).
    use_matmul_attention(backbone)
    height, width = preprocess.input_size
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        backbone(pixel_values=torch.zeros(1, 3, height, width))
    return float(counter.get_total_flops())
