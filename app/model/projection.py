"""The projection head a fine-tuned model carries, and the export format around it.

The trainer writes, and the app's encoder reads, a model directory holding the
backbone (``save_pretrained``), its image processor, ``head.safetensors`` and
``lookalike.json``. Keeping both sides in this one module means the format
cannot drift between them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

MANIFEST = "lookalike.json"
HEAD_WEIGHTS = "head.safetensors"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class HeadSpec:
    """Shape of a projection head: ``linear`` (one layer) or ``mlp`` (two layers)."""

    in_dim: int
    out_dim: int
    kind: str = "linear"
    hidden_dim: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "mlp"):
            raise ValueError(f"Unknown head kind {self.kind!r}: use 'linear' or 'mlp'.")


class ProjectionHead(nn.Module):
    """Maps backbone features to the embedding space; L2 normalisation comes after."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "linear":
            self.layers = nn.Sequential(nn.Linear(spec.in_dim, spec.out_dim))
        else:
            hidden = spec.hidden_dim or spec.in_dim
            self.layers = nn.Sequential(
                nn.Linear(spec.in_dim, hidden), nn.GELU(), nn.Linear(hidden, spec.out_dim)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def save_head(head: ProjectionHead, directory: Path, manifest: dict[str, Any]) -> None:
    """Write the head weights and the manifest that describes the whole model."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
              str(directory / HEAD_WEIGHTS))
    full = {"format": FORMAT_VERSION, "head": asdict(head.spec), **manifest}
    (directory / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The model's ``lookalike.json``, or None for a plain backbone."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def load_head(directory: Path, manifest: dict[str, Any]) -> ProjectionHead | None:
    """The head a model directory carries, or None when it has none."""
    spec = manifest.get("head")
    if not spec or not (directory / HEAD_WEIGHTS).is_file():
        return None
    head = ProjectionHead(HeadSpec(**spec))
    head.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
    return head.eval()
