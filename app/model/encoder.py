"""The image encoder: any HF vision backbone, an optional projection head, L2 norm.

``Encoder.embed`` is the only way an image becomes a vector, at index time, at
query time and in the trainer's evaluation, so the preprocessing cannot drift.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from app.config import DEFAULT_MODEL
from app.exceptions import ModelLoadError
from app.model import main_thread
from app.model.allocator import keep_buffers_mapped
from app.model.attention import use_matmul_attention
from app.model.backends.choose import ModelSpec
from app.model.backends.choose import choose as choose_runtime
from app.model.backends.graph import FeatureModel
from app.model.batching import Coalescer
from app.model.preprocess import Preprocess
from app.model.projection import ProjectionHead, load_head, read_manifest

log = logging.getLogger(__name__)


def bf16_supported(device: str) -> bool:
    """Whether bf16 matmuls are fast here (AVX512-BF16/AMX on CPU, Ampere+ on CUDA)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_batch_size(device: str) -> int:
    """Images per model call at ingest: small on the CPU, where activations must stay in cache.

    Past batch 8 the activations leave the CPU's caches and throughput falls
    (docs/performance.md, "Batch size"); a GPU wants large batches.
    """
    return 64 if device.startswith("cuda") else 8


def pooled_features(outputs: Any) -> torch.Tensor:
    """One vector per image from a backbone's outputs.

    The pooled output when the model has one (DINOv2: the normed CLS token;
    MobileNetV2: global average pool), else the CLS token of a transformer, else
    the spatial mean of a convolutional feature map.
    """
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    hidden = outputs.last_hidden_state
    if hidden.dim() == 3:
        return hidden[:, 0]
    return hidden.mean(dim=(2, 3))


def load_backbone(id_or_dir: str) -> tuple[nn.Module, Preprocess]:
    """The HF backbone and its preprocessing, from a hub id or a local directory."""
    from transformers import AutoImageProcessor, AutoModel  # heavy: import on use

    keep_buffers_mapped()  # this process runs a model: see app/model/allocator.py
    try:
        with _load_report_held():
            backbone, info = AutoModel.from_pretrained(id_or_dir, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not load the model {id_or_dir!r}: {exc}. Set LOOKALIKE_MODEL to a "
            "Hugging Face model id (with network access) or a local model directory."
        ) from exc
    _report_loading(id_or_dir, info)
    try:
        preprocess = Preprocess.from_processor(AutoImageProcessor.from_pretrained(id_or_dir))
    except (OSError, ValueError):
        log.warning("%s has no image processor config; using DINOv2's recipe", id_or_dir)
        preprocess = Preprocess.default()
    return backbone.eval(), preprocess


@contextmanager
def _load_report_held() -> Iterator[None]:
    """Hold back transformers' load report (a warning-level table) during one load.

    It lists every checkpoint tensor the backbone does not use as UNEXPECTED: for a
    classification checkpoint (MobileNetV2's), that is the head, which embeddings never
    use. Only that record is held; ``_report_loading`` says what matters instead.
    """
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(_not_a_load_report)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_load_report)


def _not_a_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


def _report_loading(id_or_dir: str, info: dict[str, Any]) -> None:
    """Warn about backbone weights the checkpoint lacks (they start random); mention the
    checkpoint's unused tensors (a task head) in one line, as nothing to act on."""
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        log.warning("%s: %d backbone weights are not in the checkpoint and start random "
                    "(%s); its embeddings will not mean much", id_or_dir, len(missing),
                    ", ".join(missing[:5]))
    unused = sorted(info.get("unexpected_keys") or ())
    if unused:
        log.info("%s: %d checkpoint tensors (%s) are not part of the backbone, such as a "
                 "classifier head; embeddings do not use them", id_or_dir, len(unused),
                 ", ".join(unused[:5]))


class Encoder:
    """Embeds images as float32, L2-normalised vectors of a fixed dimension."""

    def __init__(
        self,
        backbone: nn.Module,
        preprocess: Preprocess,
        *,
        head: ProjectionHead | None = None,
        name: str = "",
        device: str = "cpu",
        precision: str = "auto",
        compile: bool = False,
        batch_size: int | None = None,
        backend: str = "torch",
        export_dir: Path | None = None,
    ) -> None:
        transformer = hasattr(getattr(backbone, "config", None), "num_attention_heads")
        self.precision = resolve_precision(precision, device, transformer=transformer)
        if self.precision != "fp32" and backend == "torch" and not bf16_supported(device):
            log.warning("precision %s on a CPU without bf16 matrix hardware (AVX512-BF16 or "
                        "AMX): torch emulates it, many times slower than fp32; "
                        "LOOKALIKE_PRECISION=auto picks fp32 here", self.precision)
        self.preprocess = preprocess
        self.name = name
        self.device = device
        self.batch_size = batch_size or default_batch_size(device)
        self._dim: int | None = None
        self._place(backbone, head)
        # Taken before any bf16 cast or compilation, so every mode shares one identity.
        eager = compile or self.precision == "bf16" or backend != "torch"
        self._fingerprint = fingerprint_of(self.backbone, self.head) if eager else None
        # Another runtime may run backbone + head on the CPU (app/model/backends/): it
        # exports the fp32 weights, so it is chosen before the bf16 cast; None = torch.
        on_cpu = backend != "torch" and device == "cpu"
        self.runtime = choose_runtime(backend, self._spec(export_dir)) if on_cpu else None
        if self.precision == "bf16" and self.runtime is None:
            self._cast(torch.bfloat16)
        self._forward = self._features if self.runtime is None else self._run_exported
        if compile and self.runtime is None:
            self._forward = _compiled(self._features)
        # Concurrent embeds (gunicorn threads) share model calls (app/model/batching.py),
        # run on the main thread where a server hands it over (app/model/main_thread.py).
        self._coalesced = Coalescer(
            lambda prepared: main_thread.call(lambda: self._run_model(prepared)), self.batch_size)

    def _place(self, backbone: nn.Module, head: ProjectionHead | None) -> None:
        """Backbone and head in eval mode on the device; plain-matmul attention off CUDA."""
        self.backbone = backbone.eval().to(self.device)
        if not self.device.startswith("cuda"):
            use_matmul_attention(self.backbone)
        self.head = head.eval().to(self.device) if head is not None else None

    def _cast(self, dtype: torch.dtype) -> None:
        self.backbone.to(dtype)
        if self.head is not None:
            self.head.to(dtype)

    @classmethod
    def from_pretrained(
        cls,
        id_or_dir: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        precision: str = "auto",
        compile: bool = False,
        threads: int | None = None,
        batch_size: int | None = None,
        backend: str = "torch",
        export_dir: Path | None = None,
    ) -> Encoder:
        """Load a backbone (and the projection head of an exported model).

        Off the main thread the load runs on a thread of its own
        (app/model/main_thread.py: no OpenMP pool outlives it).
        """
        return main_thread.in_passing_thread(lambda: cls._load(
            id_or_dir, device=device, precision=precision, compile=compile,
            threads=threads, batch_size=batch_size, backend=backend, export_dir=export_dir))

    @classmethod
    def _load(cls, id_or_dir: str, *, device: str | None,
              precision: str, compile: bool, threads: int | None,
              batch_size: int | None, backend: str = "torch",
              export_dir: Path | None = None) -> Encoder:
        if threads:
            torch.set_num_threads(threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        backbone, preprocess = load_backbone(id_or_dir)
        head = None
        directory = Path(id_or_dir)
        manifest = read_manifest(directory) if directory.is_dir() else None
        if manifest is not None:
            head = load_head(directory, manifest)
        return cls(backbone, preprocess, head=head, name=id_or_dir, device=device,
                   precision=precision, compile=compile, batch_size=batch_size,
                   backend=backend, export_dir=export_dir)

    @property
    def dim(self) -> int:
        """The embedding dimension, found by embedding one blank image once."""
        if self._dim is None:
            self._dim = int(self.embed([Image.new("RGB", (32, 32))]).shape[1])
        return self._dim

    @property
    def dtype(self) -> str:
        return {"fp32": "float32", "bf16": "bfloat16", "bf16-autocast": "bfloat16-autocast"}[
            self.precision]

    @property
    def fingerprint(self) -> str:
        """A short hash of every weight: tells whether two collections are comparable.

        Taken from the fp32 weights, so a bf16 copy of a model keeps its identity.
        """
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self.backbone, self.head)
        return self._fingerprint

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB images (from ``app.gallery.imaging.decode``) as an (n, dim) float32 array.

        Thread-safe: calls from concurrent threads share model batches (app/model/batching.py).
        """
        if not images:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        chunks = [
            self.embed_prepared(self.preprocess.prepare(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks)

    def embed_prepared(self, prepared: np.ndarray) -> np.ndarray:
        """Embed a batch from ``Preprocess.prepare``, which pipelines run on other threads.

        Thread-safe and coalesced like ``embed``; every torch op runs on the thread
        that runs the model (app/model/main_thread.py).
        """
        return self._coalesced(prepared)

    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed a batch already turned into the model's input tensor (benchmarks, tests)."""
        return main_thread.call(lambda: self._run_model(pixels))

    @torch.inference_mode()
    def _run_model(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        pixels = self.preprocess.to_tensor(batch) if isinstance(batch, np.ndarray) else batch
        pixels = pixels.to(self.device)
        if self.precision == "bf16" and self.runtime is None:
            pixels = pixels.to(torch.bfloat16)
        autocast = self.precision == "bf16-autocast" and self.runtime is None
        with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            features = self._forward(pixels)
        features = torch.nn.functional.normalize(features.float(), dim=1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        features = pooled_features(self.backbone(pixel_values=pixels))
        return self.head(features) if self.head is not None else features

    # --- delegation to another runtime (app/model/backends/) ---

    @property
    def backend(self) -> str:
        """The runtime that serves: torch, openvino or onnxruntime."""
        return self.runtime.backend if self.runtime is not None else "torch"

    @property
    def backend_precision(self) -> str:
        """The precision that runtime computes in (fp32, bf16, bf16-autocast, int8)."""
        return self.runtime.precision if self.runtime is not None else self.precision

    def _spec(self, export_dir: Path | None) -> ModelSpec:
        return ModelSpec(module=FeatureModel(self.backbone, self.head, pooled_features),
                         input_size=self.preprocess.input_size, fingerprint=self.fingerprint,
                         precision=self.precision, batch_size=self.batch_size,
                         threads=torch.get_num_threads(), export_dir=export_dir)

    def _run_exported(self, pixels: torch.Tensor) -> torch.Tensor:
        assert self.runtime is not None
        return torch.from_numpy(self.runtime(pixels.float().numpy()))


PRECISIONS = ("fp32", "bf16", "bf16-autocast")


def resolve_precision(precision: str, device: str, *, transformer: bool = True) -> str:
    """One of PRECISIONS: ``precision`` itself, or what ``auto`` picks on ``device``.

    ``auto`` means bf16 weights where bf16 is fast and keeps the embeddings: transformer
    backbones keep them, while convolutional ones (MobileNetV2) drift in bf16 and so
    stay fp32 on the CPU unless asked (docs/performance.md, "Precision").
    """
    if precision in PRECISIONS:
        return precision
    if precision != "auto":
        raise ValueError(
            f"precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}")
    fast = bf16_supported(device) and (transformer or device.startswith("cuda"))
    return "bf16" if fast else "fp32"


def fingerprint_of(*modules: nn.Module | None) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for module in modules:
        if module is None:
            continue
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _compiled(forward):  # type: ignore[no-untyped-def]
    """torch.compile with weight freezing, which lets oneDNN prepack weights on CPU."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(forward, dynamic=False)
