"""Split a backbone at a block: run the frozen first part once, the trainable rest often.

In the partial regime the first blocks never change, so their output for an
augmented image never changes either. ``Trunk.capture`` runs the backbone up to
block ``start`` and stops there (a pre-hook raises once it holds the block's
input); ``Trunk.resume`` runs the whole backbone on a tiny probe image and
swaps the cached activations in at block ``start``, so the model's own
forward (its glue code, final norm and pooler included) does the rest. This
needs no knowledge of the architecture; ``Trunk.check`` proves on real pixels
that capture + resume equals the plain forward before a run relies on it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.model.encoder import pooled_features
from trainer.model import blocks_of


class _Captured(Exception):
    pass


class Trunk:
    def __init__(self, backbone: nn.Module, start: int, probe_side: int = 32) -> None:
        _, stack = blocks_of(backbone)
        if not 0 < start < len(stack):
            raise ValueError(f"Cannot split {len(stack)} blocks at block {start}.")
        self.backbone = backbone
        self.block = stack[start]
        self.probe_side = probe_side

    @torch.no_grad()
    def capture(self, pixels: torch.Tensor) -> torch.Tensor:
        """The input of block ``start`` for these pixels (the frozen part's output)."""
        held: dict[str, torch.Tensor] = {}

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            held["x"] = args[0] if args else kwargs["hidden_states"]
            raise _Captured

        handle = self.block.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            self.backbone(pixel_values=pixels)
        except _Captured:
            pass
        finally:
            handle.remove()
        return held["x"]

    def resume(self, hidden: torch.Tensor) -> Any:
        """The backbone's outputs, computed from block ``start`` on ``hidden``."""

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        probe = torch.zeros(hidden.shape[0], 3, self.probe_side, self.probe_side,
                            device=hidden.device)
        handle = self.block.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            return self.backbone(pixel_values=probe)
        finally:
            handle.remove()

    @torch.no_grad()
    def check(self, pixels: torch.Tensor, atol: float = 1e-4) -> bool:
        """Whether capture + resume gives the plain forward's features on ``pixels``."""
        expected = pooled_features(self.backbone(pixel_values=pixels))
        got = pooled_features(self.resume(self.capture(pixels)))
        return got.shape == expected.shape and bool(torch.allclose(got, expected, atol=atol))
