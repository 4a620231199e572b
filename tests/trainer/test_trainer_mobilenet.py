"""The real MobileNetV2 on a few real Grocery photos (skipped without ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import GROCERY


@pytest.fixture(scope="module")
def grocery_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training photos of 3 products, and 6 queries: a CSV manifest with splits."""
    if not (GROCERY / "train.txt").is_file():
        pytest.skip(f"the Grocery Store dataset is not at {GROCERY} (../shared absent)")
    rows = []
    for split, name, count in (("train", "train.txt", 8), ("query", "test.txt", 2)):
        by_label: dict[str, list[str]] = {}
        for line in (GROCERY / name).read_text().splitlines():
            path, label = (p.strip() for p in line.split(",")[:2])
            by_label.setdefault(label, []).append(path)
        for label in ("0", "10", "40"):
            rows += [f"{GROCERY / p},{label},{split}" for p in by_label[label][:count]]
    rows += [r.replace(",train", ",gallery") for r in rows if r.endswith(",train")]
    manifest = tmp_path_factory.mktemp("grocery") / "small.csv"
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return manifest


def test_a_partial_mobilenet_run_keeps_its_folded_batch_norms_and_exports_exactly(
    mobilenet_dir: Path, grocery_csv: Path, tmp_path: Path
) -> None:
    from app.model.encoder import Encoder, load_backbone
    from trainer import checkpoint
    from trainer.config import TrainConfig
    from trainer.data import load_dataset, load_image
    from trainer.engine import train
    from trainer.export import export_run
    from trainer.model import EmbeddingModel, build_head

    run = tmp_path / "run"
    train(TrainConfig(data=str(grocery_csv), out=str(run), backbone=str(mobilenet_dir),
                      epochs=1, views=2, classes_per_batch=3, images_per_class=4, threads=2))
    config = checkpoint.load(run / checkpoint.BEST)
    assert any(name.startswith("layer.15.") for name in config["model"]["backbone"])
    export = export_run(run, tmp_path / "model")
    encoder = Encoder.from_pretrained(str(export), precision="fp32")
    norms = [m for m in encoder.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_mean.abs().max()) == 0.0 for m in norms)  # still identities

    backbone, preprocess = load_backbone(str(mobilenet_dir))
    model = EmbeddingModel(backbone, build_head(1280, 128))
    checkpoint.load_model_state(model, config["model"])
    images = [load_image(s.path) for s in load_dataset(grocery_csv).query]
    with torch.no_grad():
        expected = model.eval()(preprocess(images)).numpy()
    assert np.allclose(encoder.embed(images), expected, atol=1e-5)
