"""``python -m trainer train``: fine-tune a backbone for retrieval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.config import TrainConfig
from trainer.losses import LOSSES
from trainer.model import REGIMES

DEFAULTS = TrainConfig(data="", out="")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    d = DEFAULTS
    parser = argparse.ArgumentParser("trainer train", add_help=add_help,
                                     description="Fine-tune a backbone with metric learning.")
    parser.add_argument("--data", required=True,
                        help="folder-per-class tree, CSV manifest (path,label[,split]), "
                             "In-Shop root or Grocery Store root")
    parser.add_argument("--backbone", default=d.backbone, help="HF model id or local directory")
    parser.add_argument("--regime", choices=REGIMES, default=d.regime,
                        help=f"what learns (default: {d.regime})")
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--dim", type=int, default=d.dim, help="embedding dimension")
    parser.add_argument("--val-ratio", type=float, default=d.val_ratio,
                        help="share of each training label held out for validation "
                             "(when the data has no validation split)")
    parser.add_argument("--blocks", type=int, default=d.blocks,
                        help="blocks unfrozen in the partial regime")
    parser.add_argument("--lora", type=int, default=d.lora,
                        help="train LoRA adapters of this rank instead of the backbone's weights "
                             "(transformer backbones; needs peft)")
    parser.add_argument("--head", choices=("linear", "mlp"), default=d.head)
    parser.add_argument("--loss", choices=LOSSES, default=d.loss)
    parser.add_argument("--margin", type=float, default=d.margin)
    parser.add_argument("--mining", choices=("semihard", "hard", "all"), default=d.mining)
    parser.add_argument("--classes-per-batch", type=int, default=d.classes_per_batch, help="P")
    parser.add_argument("--images-per-class", type=int, default=d.images_per_class, help="K")
    parser.add_argument("--lr", type=float, default=d.lr, help="backbone learning rate")
    parser.add_argument("--head-lr-factor", type=float, default=d.head_lr_factor)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    parser.add_argument("--clip-grad", type=float, default=d.clip_grad)
    parser.add_argument("--train-size", type=int, default=d.train_size,
                        help="training resolution (0: the model's input size)")
    parser.add_argument("--crop-scale", type=float, default=d.crop_scale)
    parser.add_argument("--jitter", type=float, default=d.jitter)
    parser.add_argument("--views", type=int, default=d.views,
                        help="augmented views cached per image (head regime, and partial "
                             "regime with the trunk cache)")
    parser.add_argument("--trunk-cache", action=argparse.BooleanOptionalAction,
                        default=d.trunk_cache,
                        help="partial regime: run the frozen blocks once per cached view "
                             "instead of at every step")
    parser.add_argument("--trunk-cache-mb", type=int, default=d.trunk_cache_mb)
    parser.add_argument("--patience", type=int, default=d.patience)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: where the hardware is fast at it)")
    parser.add_argument("--threads", type=int, default=d.threads)
    parser.add_argument("--cache-mb", type=int, default=d.cache_mb)
    parser.add_argument("--resume", default="", help="last.pt, or the run folder holding it")
    return parser


def main(args: argparse.Namespace) -> dict:
    from trainer.engine import train  # torch and transformers: import on use

    config = TrainConfig.from_args(args)
    # Local paths are recorded absolute, so export and evaluate work from any folder.
    for name in ("data", "backbone", "out"):
        if Path(getattr(config, name)).exists() or name == "out":
            setattr(config, name, str(Path(getattr(config, name)).resolve()))
    best = train(config)
    print(json.dumps({"best": best, "run": args.out}, indent=2))
    return best
