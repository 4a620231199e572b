"""The part of the encoder a backend exports: pixels -> backbone -> pooling -> head."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class FeatureModel(nn.Module):
    """Backbone, pooling and the optional projection head as one traceable module.

    The L2 norm stays in ``Encoder`` (shared by every backend); the pooling is the
    encoder's own function, passed in, so the exported graph cannot pool differently.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | None,
                 pool: Callable[[Any], torch.Tensor]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._pool = pool

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self._pool(self.backbone(pixel_values=pixels))
        return self.head(features) if self.head is not None else features
