"""ONNX Runtime: the model exported to ONNX by torch, run by its CPU provider in fp32.

ONNX Runtime's CPU provider has no bf16 kernels, so it only pays off where torch
itself runs fp32 (no fast bf16 on the CPU, or a convolutional model kept fp32).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.model.backends import INSTALL, BackendUnavailable

NAME = "onnxruntime"
PRECISIONS = ("fp32",)
ONNX = "model.onnx"
OPSET = 17


def version() -> str:
    """The installed ONNX Runtime and the torch that exports, or BackendUnavailable."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime
    except ImportError as error:
        raise BackendUnavailable(f"ONNX Runtime is not installed ({INSTALL})") from error
    return f"{onnxruntime.__version__}+torch{torch.__version__}"


def build(module: nn.Module, input_size: tuple[int, int], weights: str, folder: Path) -> None:
    """Export ``module`` (fp32, eval; ``weights`` is always fp32) with a dynamic batch.

    The TorchScript exporter: the torch.export one needs onnxscript as well, and
    traces these models no better.
    """
    example = torch.zeros(1, 3, *input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # its deprecation notice, tracer shape warnings
        torch.onnx.export(module, (example,), str(folder / ONNX), dynamo=False,
                          input_names=["pixels"], output_names=["features"],
                          dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}},
                          opset_version=OPSET)


class OnnxRuntime:
    """An ONNX Runtime session on the CPU provider with the given threads."""

    backend = NAME

    def __init__(self, folder: Path, precision: str, threads: int) -> None:
        import onnxruntime as ort

        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / ONNX), options,
                                             providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        return np.asarray(self._session.run(None, {"pixels": pixels})[0], dtype=np.float32)


def open_runtime(folder: Path, precision: str, threads: int) -> OnnxRuntime:
    return OnnxRuntime(folder, precision, threads)
