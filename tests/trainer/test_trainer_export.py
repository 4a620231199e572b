"""A run exports to a model directory that the app's encoder loads with identical embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from app.model.encoder import Encoder, load_backbone
from app.model.projection import read_manifest
from trainer import checkpoint
from trainer.config import TrainConfig
from trainer.data import load_dataset, load_image
from trainer.export import export_run
from trainer.model import EmbeddingModel, build_head, feature_dim


def trained_model(run: Path) -> tuple[EmbeddingModel, object]:
    """The best checkpoint, rebuilt by hand (not through the export code)."""
    config = TrainConfig.load(run / "config.json")
    backbone, preprocess = load_backbone(config.backbone)
    model = EmbeddingModel(backbone, build_head(feature_dim(backbone, preprocess), config.dim))
    checkpoint.load_model_state(model, checkpoint.load(run / checkpoint.BEST)["model"])
    return model.eval(), preprocess


def test_the_export_reloads_into_the_app_encoder_with_identical_embeddings(
    tiny_run: Path, colour_folders: Path, tmp_path: Path
) -> None:
    out = export_run(tiny_run, tmp_path / "model")
    encoder = Encoder.from_pretrained(str(out), precision="fp32")
    images = [load_image(s.path) for s in load_dataset(colour_folders).query]
    model, preprocess = trained_model(tiny_run)
    with torch.no_grad():
        expected = model(preprocess(images)).numpy()
    got = encoder.embed(images)
    assert got.shape == (len(images), 16)
    assert np.allclose(got, expected, atol=1e-5)


def test_the_export_differs_from_the_base_model(tiny_run: Path, tiny_model_dir: Path,
                                                tmp_path: Path) -> None:
    out = export_run(tiny_run, tmp_path / "model")
    assert Encoder.from_pretrained(str(out)).fingerprint != \
        Encoder.from_pretrained(str(tiny_model_dir)).fingerprint


def test_the_manifest_names_base_model_dimension_metric_data_and_metrics(
    tiny_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = export_run(tiny_run, tmp_path / "model")
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest["base_model"] == str(tiny_model_dir)
    assert manifest["dim"] == 16 and manifest["metric"] == "cosine"
    assert manifest["training_data"]["layout"] == "folders"
    assert "val_R@1" in manifest["metrics"]
    assert manifest["head"]["out_dim"] == 16
    assert json.loads((out / "preprocessor_config.json").read_text())["crop_size"]["height"] == 56


def test_lora_adapters_are_merged_into_the_exported_backbone(
    colour_folders: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from trainer.engine import train
    from trainer.model import add_lora

    run = tmp_path / "run"
    train(TrainConfig(data=str(colour_folders), out=str(run), backbone=str(tiny_model_dir),
                      regime="full", lora=2, epochs=1, classes_per_batch=4, images_per_class=4,
                      bf16=False, threads=2, dim=16, lr=1e-2))
    state = checkpoint.load(run / checkpoint.BEST)["model"]
    assert state["backbone"] and all("lora_" in name for name in state["backbone"])
    backbone, preprocess = load_backbone(str(tiny_model_dir))
    model = EmbeddingModel(add_lora(backbone, 2), build_head(64, 16))
    checkpoint.load_model_state(model, state)
    images = [load_image(s.path) for s in load_dataset(colour_folders).query]
    with torch.no_grad():
        expected = model.eval()(preprocess(images)).numpy()
    encoder = Encoder.from_pretrained(str(export_run(run, tmp_path / "model")), precision="fp32")
    assert np.allclose(encoder.embed(images), expected, atol=1e-5)
    assert encoder.fingerprint != Encoder.from_pretrained(str(tiny_model_dir)).fingerprint
