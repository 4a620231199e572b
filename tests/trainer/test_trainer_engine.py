"""A run folder's contents, best checkpoint, early stopping and resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from trainer.config import TrainConfig
from trainer.engine import train


def tiny_config(data: Path, out: Path, model: Path, **overrides) -> TrainConfig:  # type: ignore[no-untyped-def]
    values = dict(data=str(data), out=str(out), backbone=str(model), classes_per_batch=4,
                  images_per_class=4, bf16=False, threads=2, dim=16, epochs=2)
    values.update(overrides)
    return TrainConfig(**values)


def test_a_run_writes_config_metrics_checkpoints_and_curves(tiny_run: Path) -> None:
    for name in ("config.json", "metrics.csv", "metrics.json", "best.pt", "last.pt",
                 "training_curves.png"):
        assert (tiny_run / name).is_file(), name
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["regime"] == "partial" and config["extra"]["dataset"]["train"] == 20
    rows = list(csv.DictReader((tiny_run / "metrics.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "images_per_s", "val_R@1", "val_R@5", "val_R@10", "val_mAP@R"} <= set(rows[0])


def test_the_head_regime_trains_from_cached_features(colour_folders: Path, tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    best = train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="head", views=2,
                             epochs=3))
    assert best["val_R@1"] >= 0.5
    assert json.loads((tmp_path / "metrics.json").read_text())[-1]["epoch"] == 3


def test_resuming_continues_after_the_last_epoch(colour_folders: Path, tiny_model_dir: Path,
                                                 tmp_path: Path) -> None:
    train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="head", views=1, epochs=1))
    train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="head", views=1, epochs=3,
                      resume=str(tmp_path)))
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_training_stops_early_when_validation_stalls(colour_folders: Path, tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    # Colours are separated from the first epoch on: nothing can beat it.
    train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="head", views=1,
                      epochs=10, patience=2))
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert len(history) < 10


def test_data_without_training_images_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "m.csv").write_text("a.jpg,x,query\nb.jpg,x,gallery\n")
    with pytest.raises(ValueError, match="no training images"):
        train(tiny_config(tmp_path / "m.csv", tmp_path / "run", tiny_model_dir))


def test_bf16_autocast_training_keeps_float32_weights(colour_folders: Path, tiny_model_dir: Path,
                                                      tmp_path: Path) -> None:
    """Validation wraps the model in the app's Encoder; that must not cast it to bf16."""
    import torch

    from trainer import checkpoint

    train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="full", bf16=True,
                      epochs=2))
    state = checkpoint.load(tmp_path / checkpoint.LAST)["model"]
    assert {t.dtype for t in state["backbone"].values()} == {torch.float32}


def test_the_partial_regime_caches_the_frozen_blocks(colour_folders: Path, tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    best = train(tiny_config(colour_folders, tmp_path, tiny_model_dir, regime="partial",
                             blocks=1, views=2, epochs=2))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["extra"]["trunk_cache_views"] == 2
    assert best["val_R@1"] >= 0.5
