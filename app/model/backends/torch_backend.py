"""torch eager as a runtime, for ``auto`` to measure the others against (and the bench).

The encoder itself runs torch through its own forward; this is the same module in
the same precision (bf16 weights, or autocast), on a copy so that the fp32
original stays available for the exports.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

NAME = "torch"


class TorchRuntime:
    backend = NAME

    def __init__(self, module: nn.Module, precision: str) -> None:
        self.precision = precision
        self._module = copy.deepcopy(module).eval()
        if precision == "bf16":
            self._module.to(torch.bfloat16)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(pixels)
        if self.precision == "bf16":
            batch = batch.to(torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16,
                            enabled=self.precision == "bf16-autocast"):
            return self._module(batch).float().numpy()
