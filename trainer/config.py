"""The resolved configuration of a training run, written beside its outputs.

Defaults are the recipe that reached the Grocery goal on a 2-core CPU (see
docs/trainer.md); every field can be overridden from the command line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.config import DEFAULT_MODEL


@dataclass
class TrainConfig:
    data: str
    out: str
    backbone: str = DEFAULT_MODEL
    regime: str = "partial"
    blocks: int = 6  # unfrozen blocks in the partial regime
    lora: int = 0  # rank of LoRA adapters on the backbone's linear layers; 0 = none
    dim: int = 128
    head: str = "linear"
    loss: str = "triplet"
    margin: float = 0.2
    mining: str = "semihard"
    epochs: int = 30
    classes_per_batch: int = 16  # P
    images_per_class: int = 4  # K
    lr: float = 3e-4  # backbone; the head learns 10x faster
    head_lr_factor: float = 10.0
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    clip_grad: float = 1.0
    train_size: int = 0  # training resolution; 0 = the model's input size
    crop_scale: float = 0.25  # smallest crop, as a share of the image area
    jitter: float = 0.3
    views: int = 8  # augmented views cached per image (head regime; partial with trunk_cache)
    trunk_cache: bool = True  # partial regime: cache the frozen blocks' output per view
    trunk_cache_mb: int = 4096
    val_ratio: float = 0.1
    patience: int = 8  # epochs without a better validation score before stopping
    seed: int = 0
    device: str = ""  # "" = CUDA when available, else CPU
    bf16: bool | None = None  # None = where the hardware runs bf16 fast
    threads: int = 0  # torch CPU threads; 0 = torch's default
    cache_mb: int = 3072  # decoded training images kept in memory
    resume: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # facts recorded at run time

    @classmethod
    def from_args(cls, args: Any) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names and v is not None})

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
