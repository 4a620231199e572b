"""The training loop: P x K batches, mined loss, AdamW with warmup + cosine, checkpoints.

``train(config)`` runs a whole fine-tuning: it validates Recall@K after every
epoch, keeps the best checkpoint, stops early when validation stalls, and can
resume from ``last.pt``. Everything it writes lands in the run folder.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from app.model.encoder import pooled_features
from trainer import checkpoint
from trainer.batches import AugmentedBatches, CachedBatches, backbone_features
from trainer.config import TrainConfig
from trainer.losses import Criterion
from trainer.model import set_train_mode
from trainer.records import write_history
from trainer.setup import Setup, prepare
from trainer.validation import Validator

log = logging.getLogger(__name__)


def train(config: TrainConfig) -> dict[str, Any]:
    """Fine-tune as ``config`` says; returns the best epoch's row of metrics."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    setup = prepare(config)
    batches = make_batches(setup)
    config.extra["setup_s"] = round(time.monotonic() - started, 1)
    optimizer = make_optimizer(setup)
    steps = max(1, config.epochs * len(batches))
    scheduler = warmup_cosine(optimizer, int(config.warmup_epochs * len(batches)), steps)
    start, history = 0, []
    if config.resume:
        start, history = restore(checkpoint.find(config.resume), setup, optimizer, scheduler)
    config.save(out / "config.json")
    history = run_epochs(setup, batches, optimizer, scheduler, start, history)
    best = max(history, key=score) if history else {}
    summary = {"best": best, "epochs_run": len(history), "setup_s": config.extra["setup_s"],
               "total_s": round(time.monotonic() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return best


def run_epochs(setup: Setup, batches: AugmentedBatches | CachedBatches,
               optimizer: torch.optim.Optimizer, scheduler: Any, start: int,
               history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train, validate and checkpoint epoch after epoch, until the end or early stopping."""
    config, out = setup.config, Path(setup.config.out)
    validator = Validator(setup)
    best = max(history, key=score) if history else None
    began = time.monotonic() - (history[-1]["elapsed_s"] if history else 0.0)
    for epoch in range(start, config.epochs):
        row = {"epoch": epoch + 1, **train_epoch(setup, batches, optimizer, scheduler, epoch)}
        row.update(validator.run(setup.model))
        row["elapsed_s"] = round(time.monotonic() - began, 1)
        history.append(row)
        if best is None or score(row) > score(best):
            best = row
            checkpoint.save(out / checkpoint.BEST, model=setup.state(), epoch=epoch + 1,
                            metrics=row, labels=setup.label_names)
        checkpoint.save(out / checkpoint.LAST, model=setup.state(), epoch=epoch + 1,
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        history=history)
        write_history(out, history)
        log.info("epoch %d: %s", epoch + 1, _brief(row))
        if epoch + 1 - best["epoch"] >= config.patience:
            log.info("no better validation score for %d epochs: stopping", config.patience)
            break
    return history


def score(row: dict[str, Any]) -> tuple[float, float]:
    """The mean of validation R@1 and mAP@R (R@1 alone jumps by whole queries on a small
    validation set; mAP@R weighs every relevant image), then lower loss."""
    return ((row.get("val_R@1", 0.0) + row.get("val_mAP@R", 0.0)) / 2, -row.get("loss", 0.0))


def make_batches(setup: Setup) -> AugmentedBatches | CachedBatches:
    """Fresh augmentations each step, unless a frozen part's activations can be cached."""
    config = setup.config
    if config.regime == "head":
        views = cached_views(setup, setup.features, config.views, torch.float32, "features")
    elif setup.trunk is not None:
        dtype = torch.bfloat16 if setup.bf16 else torch.float32
        views = cached_views(setup, setup.trunk_input, setup.trunk_views, dtype, "frozen blocks")
    else:
        return AugmentedBatches(setup.dataset.train, setup.labels, setup.sampler,
                                setup.train_transform, setup.cache)
    return CachedBatches(views, setup.labels, setup.sampler, seed=config.seed)


def cached_views(setup: Setup, run: Any, count: int, dtype: torch.dtype, what: str
                 ) -> torch.Tensor:
    """(views, n, ...) outputs of ``run`` on ``count`` augmented views of every image."""
    samples = setup.dataset.train
    views = []
    for view in range(count):
        torch.manual_seed(setup.config.seed * 1000 + view)
        views.append(backbone_features(
            run, lambda i: setup.cache.get(samples[i].path), len(samples),
            lambda ims: torch.stack([setup.train_transform(im) for im in ims]),
            desc=f"{what}, view {view + 1}/{count}", dtype=dtype,
        ))
    return torch.stack(views)


def make_optimizer(setup: Setup) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms; the head learns faster than the backbone."""
    config = setup.config
    decay, no_decay = [], []
    for parameter in setup.model.backbone.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    fast = config.lr * config.head_lr_factor
    groups = [
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": list(setup.model.head.parameters()), "lr": fast,
         "weight_decay": config.weight_decay},
        {"params": list(setup.criterion.loss.parameters()), "lr": fast, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup`` steps, then a cosine decay to zero at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epoch(setup: Setup, batches: AugmentedBatches | CachedBatches,
                optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int) -> dict[str, Any]:
    config = setup.config
    set_train_mode(setup.model, config.regime)
    torch.manual_seed(config.seed + epoch)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    losses, mined, images = [], [], 0
    started = time.monotonic()
    bar = tqdm(batches.epoch(epoch), total=len(batches), unit="batch",
               desc=f"epoch {epoch + 1}/{config.epochs}", mininterval=2.0)
    for inputs, labels in bar:
        loss = step(setup, setup.criterion, inputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach().item())
        mined.append(setup.criterion.mined())
        images += len(labels)
        rate = images / max(1e-6, time.monotonic() - started)
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}", img_s=f"{rate:.1f}")
    seconds = time.monotonic() - started
    return {
        "loss": round(sum(losses) / max(1, len(losses)), 5),
        "mined": round(sum(mined) / max(1, len(mined)), 1),
        "lr": optimizer.param_groups[0]["lr"],
        "images_per_s": round(images / max(1e-6, seconds), 2),
        "train_s": round(seconds, 1),
    }


def step(setup: Setup, criterion: Criterion, inputs: torch.Tensor, labels: torch.Tensor
         ) -> torch.Tensor:
    """One forward pass and the loss; autocast in bf16 where the hardware is fast at it."""
    inputs = inputs.to(setup.device, non_blocking=True)
    with torch.autocast(setup.device_type, dtype=torch.bfloat16, enabled=setup.bf16):
        if setup.config.regime == "head":
            embeddings = setup.model.embed_features(inputs)
        elif setup.trunk is not None:
            # Stored in bf16 to halve the cache; fed as float32, which oneDNN runs
            # several times faster under autocast than bf16 inputs.
            outputs = setup.trunk.resume(inputs.float())
            embeddings = setup.model.embed_features(pooled_features(outputs))
        else:
            embeddings = setup.model(inputs)
    return criterion(embeddings.float(), labels.to(setup.device))


def restore(path: Path, setup: Setup, optimizer: torch.optim.Optimizer, scheduler: Any
            ) -> tuple[int, list[dict[str, Any]]]:
    state = checkpoint.load(path)
    setup.load_state(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log.info("resumed from %s after epoch %d", path, state["epoch"])
    return int(state["epoch"]), list(state["history"])


def _brief(row: dict[str, Any]) -> str:
    keys = ("loss", "images_per_s", "val_R@1", "val_R@5", "val_R@10", "val_mAP@R")
    return ", ".join(f"{k}={row[k]}" for k in keys if k in row)
