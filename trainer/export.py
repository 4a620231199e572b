"""``python -m trainer export``: a run's best checkpoint as a model directory the app loads.

The directory holds the backbone (``save_pretrained``), its image processor, the
projection head and ``lookalike.json``, in the format ``app.model.projection`` defines;
``LOOKALIKE_MODEL=DIR`` makes the app's encoder load all of it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.model.preprocess import Preprocess
from app.model.projection import save_head


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("trainer export", add_help=add_help,
                                     description="Write a run's best model for the app.")
    parser.add_argument("--run", required=True, help="run folder written by `trainer train`")
    parser.add_argument("--out", required=True, help="model directory to write")
    return parser


def main(args: argparse.Namespace) -> Path:
    out = export_run(Path(args.run), Path(args.out))
    print(f"Exported to {out}. Serve it with LOOKALIKE_MODEL={out.resolve()} and index the "
          f"gallery with it: python -m trainer index --model {out} --images ...")
    return out


def export_run(run: Path, out: Path) -> Path:
    """Rebuild the best model of ``run`` and write it to ``out``."""
    from app.model.encoder import load_backbone
    from trainer import checkpoint
    from trainer.config import TrainConfig
    from trainer.model import EmbeddingModel, add_lora, build_head, feature_dim, merged

    config = TrainConfig.load(run / "config.json")
    state = checkpoint.load(checkpoint.find(run, checkpoint.BEST))
    backbone, preprocess = load_backbone(config.backbone)
    head = build_head(feature_dim(backbone, preprocess), config.dim, config.head)
    model = EmbeddingModel(add_lora(backbone, config.lora) if config.lora else backbone, head)
    checkpoint.load_model_state(model, state["model"])
    out.mkdir(parents=True, exist_ok=True)
    merged(model.backbone).save_pretrained(out)
    save_processor(config.backbone, preprocess, out)
    save_head(model.head.eval(), out, manifest(config, state, run))
    return out


def save_processor(base: str, preprocess: Preprocess, out: Path) -> None:
    """The base model's image processor, or one that reproduces the preprocessing used."""
    from transformers import AutoImageProcessor, BitImageProcessor

    try:
        AutoImageProcessor.from_pretrained(base).save_pretrained(out)
        return
    except (OSError, ValueError):
        pass
    size = ({"shortest_edge": preprocess.shortest_edge} if preprocess.shortest_edge
            else {"height": preprocess.input_size[0], "width": preprocess.input_size[1]})
    crop = preprocess.crop or preprocess.input_size
    BitImageProcessor(
        size=size, crop_size={"height": crop[0], "width": crop[1]},
        do_center_crop=preprocess.crop is not None, resample=preprocess.resample,
        rescale_factor=preprocess.rescale, image_mean=list(preprocess.mean),
        image_std=list(preprocess.std),
    ).save_pretrained(out)


def manifest(config: Any, state: dict[str, Any], run: Path) -> dict[str, Any]:
    """What ``lookalike.json`` says about the model, beyond its head."""
    dataset = config.extra.get("dataset", {})
    return {
        "base_model": config.backbone,
        "dim": config.dim,
        "metric": "cosine",
        "normalized": True,
        "regime": config.regime + (f"+lora{config.lora}" if config.lora else ""),
        "loss": config.loss,
        "training_data": dataset or {"source": config.data},
        "metrics": {k: v for k, v in state.get("metrics", {}).items()
                    if k.startswith("val_") and k != "val_s"},
        "epoch": state.get("epoch"),
        "run": str(run.resolve()),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
