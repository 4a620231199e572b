"""Regimes: what learns, and batch norm staying in eval mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.model.encoder import load_backbone
from trainer.model import EmbeddingModel, apply_regime, blocks_of, build_head, set_train_mode


@pytest.fixture
def model(tiny_model_dir: Path) -> EmbeddingModel:
    backbone, _ = load_backbone(str(tiny_model_dir))
    return EmbeddingModel(backbone, build_head(64, 8))


def test_the_head_regime_freezes_the_whole_backbone(model: EmbeddingModel) -> None:
    assert apply_regime(model, "head") == []
    assert all(p.requires_grad for p in model.head.parameters())
    set_train_mode(model, "head")
    assert not model.backbone.training and model.head.training


def test_the_partial_regime_trains_the_last_blocks_and_what_follows(model: EmbeddingModel) -> None:
    names = apply_regime(model, "partial", blocks=1)
    prefix, stack = blocks_of(model.backbone)
    assert prefix == "encoder.layer" and len(stack) == 2
    assert any(n.startswith("encoder.layer.1.") for n in names)
    assert not any(n.startswith(("encoder.layer.0.", "embeddings.")) for n in names)
    assert "layernorm.weight" in names  # the final norm, after the blocks


def test_the_full_regime_trains_everything(model: EmbeddingModel) -> None:
    apply_regime(model, "full")
    assert all(p.requires_grad for p in model.parameters())


def test_batch_norm_stays_in_eval_mode_on_the_real_mobilenet(mobilenet_dir: Path) -> None:
    from torch import nn

    backbone, _ = load_backbone(str(mobilenet_dir))
    model = EmbeddingModel(backbone, build_head(1280, 8))
    apply_regime(model, "full")
    set_train_mode(model, "full")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.head.training
    names = apply_regime(model, "partial", blocks=6)
    assert "conv_1x1.convolution.weight" in names
    assert "layer.10.expand_1x1.convolution.weight" in names
    assert not any(n.startswith(("conv_stem.", "layer.9.")) for n in names)
