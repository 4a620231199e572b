"""Checkpoints of a run: ``last.pt`` to resume from, ``best.pt`` to export.

A checkpoint holds the head and only the backbone weights that learn (none in
the head regime, the last blocks in the partial one), so it stays small for
large backbones; the rest is reloaded from the base model named in the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainer.model import EmbeddingModel

LAST = "last.pt"
BEST = "best.pt"


def model_state(model: EmbeddingModel, trainable: list[str]) -> dict[str, Any]:
    backbone = model.backbone.state_dict()
    return {
        "head": {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()},
        "backbone": {k: backbone[k].detach().cpu().clone() for k in trainable},
    }


def load_model_state(model: EmbeddingModel, state: dict[str, Any]) -> None:
    model.head.load_state_dict(state["head"])
    if state["backbone"]:
        missing = set(state["backbone"]) - set(model.backbone.state_dict())
        if missing:
            raise ValueError(f"Checkpoint weights the backbone lacks: {sorted(missing)[:3]}")
        model.backbone.load_state_dict(state["backbone"], strict=False)


def save(path: Path, **payload: Any) -> None:
    """Write atomically: a run killed while saving keeps its previous checkpoint."""
    partial = path.with_suffix(".tmp")
    torch.save(payload, partial)
    partial.replace(path)


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def find(path: str | Path, name: str = LAST) -> Path:
    """A checkpoint file, given itself or the run folder that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: give a run folder or a .pt file.")
    return path
