"""OpenVINO: the model converted from the torch module, run by OpenVINO's CPU plugin.

Precisions: ``fp32``; ``bf16`` (bf16 inference on CPUs with AVX512-BF16 or AMX,
the weights kept fp32 on disk); ``int8`` (weights compressed to int8 by NNCF,
data-free, activations in bf16 where the CPU has it). The batch dimension is
dynamic, so searches (batch 1) and ingest (the ingest batch) share one export.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.model.backends import INSTALL, BackendUnavailable

NAME = "openvino"
PRECISIONS = ("fp32", "bf16", "int8")
XML = "model.xml"


def version() -> str:
    """The installed OpenVINO (and NNCF, which int8 exports use), or BackendUnavailable."""
    try:
        import openvino
    except ImportError as error:
        raise BackendUnavailable(f"OpenVINO is not installed ({INSTALL})") from error
    return openvino.__version__


def build(module: nn.Module, input_size: tuple[int, int], weights: str, folder: Path) -> None:
    """Convert ``module`` (fp32, eval) and save it under ``folder``, with ``weights``
    fp32 (served in fp32 or bf16) or int8."""
    import openvino as ov

    height, width = input_size
    example = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks in HF code
        model = ov.convert_model(module, example_input=example,
                                 input=[ov.PartialShape([-1, 3, height, width])])
    if weights == "int8":
        model = _compress_int8(model)
    ov.save_model(model, folder / XML, compress_to_fp16=False)


def _compress_int8(model: Any) -> Any:
    try:
        import nncf
    except ImportError as error:
        raise BackendUnavailable(f"int8 weights need NNCF ({INSTALL})") from error
    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def compile_config(precision: str, threads: int, *, pinning: bool = False) -> dict[str, Any]:
    """The CPU plugin's settings: one stream using ``threads`` (latency mode).

    Threads are not pinned to cores: OpenVINO pins each process's stream to the
    same first cores, so the workers of one server would share a core and leave
    the others idle (``python -m bench.openvino_pinning``,
    docs/performance-backends.md).
    """
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
        "ENABLE_CPU_PINNING": pinning,
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVinoRuntime:
    """A compiled OpenVINO model, compiled with ``compile_config``."""

    backend = NAME

    def __init__(self, folder: Path, precision: str, threads: int) -> None:
        import openvino as ov

        self.precision = precision
        self._compiled = ov.Core().compile_model(str(folder / XML), "CPU",
                                                 compile_config(precision, threads))
        self._request = self._compiled.create_infer_request()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        self._request.infer({0: np.ascontiguousarray(pixels, dtype=np.float32)})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32)


def open_runtime(folder: Path, precision: str, threads: int) -> OpenVinoRuntime:
    return OpenVinoRuntime(folder, precision, threads)
