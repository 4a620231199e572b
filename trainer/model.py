"""The trained model: the app's backbone, a projection head, L2 normalisation.

The backbone is loaded and pooled by ``app.model.encoder`` exactly as the app does,
so what is trained is what is served. Regimes: ``head`` (backbone frozen),
``partial`` (the last ``blocks`` blocks and after), ``full``. Batch norm stays in
eval mode: small P x K batches must not re-estimate its statistics, and some
exported backbones store folded batch norms.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from app.model.encoder import pooled_features
from app.model.preprocess import Preprocess
from app.model.projection import HeadSpec, ProjectionHead

REGIMES = ("head", "partial", "full")


class EmbeddingModel(nn.Module):
    """pixels -> backbone -> pooled features -> head -> unit vectors."""

    def __init__(self, backbone: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.backbone(pixel_values=pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.features(pixels))

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.head(features).float(), dim=1)


def feature_dim(backbone: nn.Module, preprocess: Preprocess) -> int:
    """The width of the pooled features, found by running one blank image."""
    with torch.inference_mode():
        pixels = preprocess([Image.new("RGB", preprocess.input_size[::-1])])
        return int(pooled_features(backbone.eval()(pixel_values=pixels)).shape[1])


def build_head(in_dim: int, dim: int, kind: str = "linear", seed: int = 0) -> ProjectionHead:
    """A projection head, initialised from ``seed`` so runs are reproducible."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    head = ProjectionHead(HeadSpec(in_dim=in_dim, out_dim=dim, kind=kind))
    torch.random.set_rng_state(generator_state)
    return head


def blocks_of(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """The backbone's stack of repeated blocks: its longest ``nn.ModuleList``.

    (``layer`` in MobileNetV2, ``encoder.layer`` in DINOv2 and ViT, ``encoder.stages``
    in ResNet and ConvNeXt.)
    """
    lists = [(name, m) for name, m in backbone.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(backbone).__name__} has no block list; use --regime head or full.")
    return max(lists, key=lambda item: len(item[1]))


def add_lora(backbone: nn.Module, rank: int) -> nn.Module:
    """LoRA adapters of ``rank`` on every linear layer of a (transformer) backbone."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    return get_peft_model(backbone, config)


def merged(backbone: nn.Module) -> nn.Module:
    """A plain backbone again, LoRA weights folded in (for ``save_pretrained``)."""
    return backbone.merge_and_unload() if hasattr(backbone, "merge_and_unload") else backbone


def apply_regime(model: EmbeddingModel, regime: str, blocks: int = 6) -> list[str]:
    """Set ``requires_grad`` for the regime; returns the names of the trainable backbone weights.

    A backbone with LoRA adapters trains the adapters only, whatever the regime but ``head``.
    """
    if regime not in REGIMES:
        raise ValueError(f"Unknown regime {regime!r}: use one of {', '.join(REGIMES)}.")
    for parameter in model.head.parameters():
        parameter.requires_grad = True
    names = [name for name, _ in model.backbone.named_parameters()]
    if hasattr(model.backbone, "peft_config") and regime != "head":
        trainable = {name for name in names if "lora_" in name}
    elif regime == "full":
        trainable = set(names)
    elif regime == "head":
        trainable = set()
    else:
        trainable = set(_tail_parameters(model.backbone, blocks))
    for name, parameter in model.backbone.named_parameters():
        parameter.requires_grad = name in trainable
    return [name for name in names if name in trainable]


def _tail_parameters(backbone: nn.Module, blocks: int) -> list[str]:
    """The parameters of the last ``blocks`` blocks and of every module registered after them."""
    prefix, stack = blocks_of(backbone)
    first = max(0, len(stack) - blocks)
    names = [name for name, _ in backbone.named_parameters()]
    in_stack = [i for i, name in enumerate(names) if name.startswith(prefix + ".")]
    last_stack = max(in_stack)
    tail = []
    for i, name in enumerate(names):
        if i > last_stack:
            tail.append(name)  # modules after the blocks (final norm, 1x1 conv, pooler)
        elif name.startswith(prefix + "."):
            index = int(name[len(prefix) + 1 :].split(".")[0])
            if index >= first:
                tail.append(name)
    return tail


def set_train_mode(model: EmbeddingModel, regime: str) -> None:
    """Train mode where weights learn; eval mode for frozen parts and every batch norm."""
    model.train()
    if regime == "head":
        model.backbone.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
