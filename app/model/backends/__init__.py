"""Runtimes that can run the encoder's backbone and head instead of torch eager.

``Encoder`` keeps its one preprocessing path and its L2 norm; only the forward of
the backbone (+ projection head) is delegated, to an OpenVINO or ONNX Runtime
graph exported once from the fp32 weights and cached on disk (export_cache.py).
``LOOKALIKE_ENCODER_BACKEND`` picks one, or ``auto`` measures them (choose.py).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("torch", "openvino", "onnxruntime", "auto")
INSTALL = "pip install -r requirements-backends.txt"


class Runtime(Protocol):
    """Pixels (n, 3, H, W) float32 -> features (n, d) float32, before the L2 norm."""

    backend: str
    precision: str

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


class BackendUnavailable(RuntimeError):
    """The backend's package is not installed, or it cannot export or load this model."""
