"""Everything a run needs, built from its config: runtime, data, model, loss, sampler."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.model.encoder import bf16_supported, load_backbone
from app.model.preprocess import Preprocess
from trainer import checkpoint
from trainer.augment import ImageCache, make_train_transform
from trainer.config import TrainConfig
from trainer.data import Dataset, label_ids, load_dataset
from trainer.losses import Criterion, build_criterion
from trainer.model import (
    EmbeddingModel,
    add_lora,
    apply_regime,
    blocks_of,
    build_head,
    feature_dim,
)
from trainer.sampler import PKSampler
from trainer.trunk import Trunk

log = logging.getLogger(__name__)


@dataclass
class Setup:
    config: TrainConfig
    dataset: Dataset
    model: EmbeddingModel
    preprocess: Preprocess
    criterion: Criterion
    sampler: PKSampler
    labels: list[int]
    label_names: list[str]
    trainable: list[str]  # backbone weights that learn
    train_transform: Callable[[Image.Image], torch.Tensor]
    cache: ImageCache
    device: str
    bf16: bool
    trunk: Trunk | None = None  # the partial regime's frozen/trainable split, when cached
    trunk_views: int = 0

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Backbone features (no head) of a preprocessed batch, for the head regime's cache."""
        self.model.backbone.eval()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model.features(pixels.to(self.device))

    def trunk_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the frozen blocks make of a batch: the input of the first trainable block."""
        assert self.trunk is not None
        self.model.backbone.eval()
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.trunk.capture(pixels.to(self.device))

    def state(self) -> dict[str, Any]:
        return checkpoint.model_state(self.model, self.trainable)

    def load_state(self, state: dict[str, Any]) -> None:
        checkpoint.load_model_state(self.model, state)


def prepare(config: TrainConfig) -> Setup:
    device, bf16 = runtime(config)
    dataset = load_dataset(config.data, val_ratio=config.val_ratio, seed=config.seed)
    if not dataset.train:
        raise ValueError(f"{config.data} has no training images (no 'train' split).")
    backbone, preprocess = load_backbone(config.backbone)
    head = build_head(feature_dim(backbone, preprocess), config.dim, config.head, seed=config.seed)
    if config.lora:
        backbone = add_lora(backbone, config.lora)
    model = EmbeddingModel(backbone, head)
    trainable = apply_regime(model, config.regime, config.blocks)
    model.to(device)
    labels, mapping = label_ids(dataset.train)
    criterion = build_criterion(config.loss, margin=config.margin, mining=config.mining,
                                num_classes=len(mapping), dim=config.dim)
    criterion.loss.to(device)
    sampler = PKSampler(labels, p=config.classes_per_batch, k=config.images_per_class,
                        seed=config.seed)
    size = (config.train_size, config.train_size) if config.train_size else None
    transform = make_train_transform(preprocess, size=size,
                                     scale=(config.crop_scale, 1.0), jitter=config.jitter)
    side = round(max(preprocess.input_size) * 8 / 7)  # 256 for a 224 model: RRC's usual source
    config.extra.update(
        dataset=dataset.summary(), device=device, bf16=bf16, threads=torch.get_num_threads(),
        torch=torch.__version__, trainable_backbone_tensors=len(trainable),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        input_size=list(preprocess.input_size), batch_size=sampler.batch_size,
        batches_per_epoch=len(sampler),
    )
    log.info("data: %s", dataset.summary())
    setup = Setup(config, dataset, model, preprocess, criterion, sampler, labels,
                  sorted(mapping, key=mapping.__getitem__), trainable, transform,
                  ImageCache(side, config.cache_mb), device, bf16)
    setup.trunk, setup.trunk_views = make_trunk(setup)
    config.extra["trunk_cache_views"] = setup.trunk_views
    return setup


def make_trunk(setup: Setup) -> tuple[Trunk | None, int]:
    """The partial regime's split at the first trainable block, if it holds and fits.

    Returns the trunk and how many views per image fit in ``trunk_cache_mb``;
    (None, 0) means training runs the whole backbone at every step instead.
    """
    config = setup.config
    if config.regime != "partial" or not config.trunk_cache or config.lora:
        return None, 0
    _, stack = blocks_of(setup.model.backbone)
    if config.blocks >= len(stack):
        return None, 0
    trunk = Trunk(setup.model.backbone, len(stack) - config.blocks)
    setup.model.backbone.eval()
    pixels = setup.preprocess([setup.cache.get(s.path) for s in setup.dataset.train[:2]])
    if not trunk.check(pixels.to(setup.device)):
        log.warning("this backbone cannot be split at a block; training runs all of it")
        return None, 0
    width = 2 if setup.bf16 else 4  # bytes per cached value
    per_view = trunk.capture(pixels[:1].to(setup.device)).numel() * width * len(setup.dataset.train)
    views = min(config.views, config.trunk_cache_mb * 1024 * 1024 // per_view)
    if views < 2:
        log.info("the frozen blocks' output does not fit in --trunk-cache-mb for 2 views; "
                 "training runs all of the backbone")
        return None, 0
    log.info("caching the frozen blocks' output for %d views of each image (%.0f MB)",
             views, views * per_view / 2**20)
    return trunk, int(views)


def runtime(config: TrainConfig) -> tuple[str, bool]:
    """Seeds, threads, device, and whether to autocast in bf16."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = bf16_supported(device) if config.bf16 is None else bool(config.bf16)
    return device, bf16
