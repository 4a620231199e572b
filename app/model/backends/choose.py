"""Which runtime runs the encoder: the configured one, or for ``auto`` the fastest here.

``auto`` exports every installed backend that suits the model's precision, checks
each against torch fp32 (cosine >= 0.999 on a probe batch) and times it against
torch eager at batch 1 and at the ingest batch on this machine. A backend is picked
only when it beats torch by 5% at both sizes; otherwise, or when none installs or
exports, torch serves. The decision is saved beside the exports, keyed by the
model, the CPU, the threads and the versions, so later workers reuse it instead
of re-measuring on a machine their siblings keep busy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.exceptions import ModelLoadError
from app.model.backends import BACKENDS, BackendUnavailable, Runtime, export_cache
from app.model.backends.graph import FeatureModel
from app.model.backends.measure import MIN_COSINE, Speed, min_cosine, speeds
from app.model.backends.torch_backend import TorchRuntime

log = logging.getLogger(__name__)

MARGIN = 1.05  # how much faster than torch, at both sizes, a backend must be to serve


@dataclass(frozen=True)
class ModelSpec:
    """What a backend needs to export and run one model."""

    module: FeatureModel  # fp32, eval: the weights every export starts from
    input_size: tuple[int, int]
    fingerprint: str
    precision: str  # what torch runs on this machine (app/model/encoder.py)
    batch_size: int  # the ingest batch
    threads: int
    export_dir: Path | None  # None: export into a temporary folder, used once


def choose(setting: str, spec: ModelSpec) -> Runtime | None:
    """The runtime for LOOKALIKE_ENCODER_BACKEND; None means torch (the encoder's own)."""
    if setting not in BACKENDS:
        raise ValueError(f"encoder backend must be one of {', '.join(BACKENDS)}; got {setting!r}")
    if setting == "torch":
        return None
    if setting == "auto":
        return _auto(spec)
    try:
        return load(setting, spec)
    except BackendUnavailable as error:
        raise ModelLoadError(f"The {setting} encoder backend cannot run this model: {error}. "
                             "Install it, or set LOOKALIKE_ENCODER_BACKEND=torch.") from error


def runtime_precision(backend: str, torch_precision: str) -> str:
    """The backend's precision matching torch's: bf16 where torch runs bf16, if it can."""
    if backend == "openvino" and torch_precision != "fp32":
        return "bf16"
    return "fp32"


def load(backend: str, spec: ModelSpec, precision: str | None = None) -> Runtime:
    """The backend's export of the model, built once into the cache, then loaded."""
    module = _module(backend)
    precision = precision or runtime_precision(backend, spec.precision)
    if precision not in module.PRECISIONS:
        raise BackendUnavailable(f"{backend} has no {precision} mode")
    # The weights' precision on disk: an fp32 export serves fp32 and bf16 alike.
    stored = "int8" if precision == "int8" else "fp32"
    key = {"fingerprint": spec.fingerprint, "backend": backend, "version": module.version(),
           "precision": stored, "input_size": list(spec.input_size)}

    def build(folder: Path) -> None:
        log.info("exporting the encoder to %s, %s weights (once per model)", backend, stored)
        module.build(spec.module, spec.input_size, stored, folder)

    def open_(folder: Path) -> Runtime:
        return module.open_runtime(folder, precision, spec.threads)

    try:
        if spec.export_dir is not None:
            return export_cache.cached(spec.export_dir, key, build, open_)
        with tempfile.TemporaryDirectory(prefix="lookalike-export-") as scratch:
            return export_cache.cached(Path(scratch), key, build, open_)
    except (RuntimeError, OSError, ValueError, TypeError) as error:
        if isinstance(error, BackendUnavailable):
            raise
        raise BackendUnavailable(f"{backend} could not export or load the model: {error}") \
            from error


def _module(backend: str) -> Any:
    if backend == "openvino":
        from app.model.backends import openvino_backend as module
    elif backend == "onnxruntime":
        from app.model.backends import onnx_backend as module
    else:
        raise ValueError(f"{backend!r} is not an exported backend")
    return module


def candidates(spec: ModelSpec) -> list[str]:
    """Backends worth measuring: ONNX Runtime has no bf16 kernels, so only against fp32."""
    return ["openvino", *(["onnxruntime"] if spec.precision == "fp32" else [])]


def _auto(spec: ModelSpec) -> Runtime | None:
    """The decided runtime, measured once per machine and model under a lock.

    The lock is taken before any candidate is exported or compiled: a sibling
    worker compiling beside the one measuring would slow the candidates it times.
    A worker that finds the decision loads only the backend it names.
    """
    installed = _installed(spec)
    if not installed:
        return None
    decision = _decision_path(spec, installed)
    if decision is None:
        picked, loaded = _decide(spec, installed)
        return loaded.get(picked)
    decision.parent.mkdir(parents=True, exist_ok=True)
    with export_cache.locked(decision.with_suffix(".lock")):
        picked = _read_decision(decision)
        if picked is None:
            picked, loaded = _decide(spec, installed, decision)
            log.info("auto: the encoder runs on %s", picked)
            return loaded.get(picked)
    log.info("auto: the encoder runs on %s (decided before)", picked)
    if picked == "torch":
        return None
    try:
        return load(picked, spec)
    except BackendUnavailable as error:
        log.warning("auto: %s was decided but cannot load now (%s); torch serves", picked, error)
        return None


def _installed(spec: ModelSpec) -> list[tuple[str, str]]:
    """(backend, version) of the candidates whose package imports."""
    found = []
    for backend in candidates(spec):
        try:
            found.append((backend, _module(backend).version()))
        except BackendUnavailable as error:
            log.info("auto: %s left out: %s", backend, error)
    return found


def _decide(spec: ModelSpec, installed: list[tuple[str, str]],
            decision: Path | None = None) -> tuple[str, dict[str, Runtime]]:
    """Load every installed candidate, time them against torch, save the pick."""
    loaded: dict[str, Runtime] = {}
    for backend, _version in installed:
        try:
            loaded[backend] = load(backend, spec)
        except BackendUnavailable as error:
            log.info("auto: %s left out: %s", backend, error)
    if not loaded:  # nothing to time: torch serves, and the next start tries again
        return "torch", loaded
    picked, figures = _measure(spec, list(loaded.values()))
    if decision is not None:
        _write_decision(decision, picked, figures)
    return picked, loaded


def _measure(spec: ModelSpec, loaded: list[Runtime]) -> tuple[str, dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    probe_t = torch.randn(max(spec.batch_size, 2), 3, *spec.input_size, generator=generator)
    with torch.inference_mode():
        reference = spec.module(probe_t).float().numpy()
    probe = probe_t.numpy()
    faithful: list[Runtime] = [TorchRuntime(spec.module, spec.precision)]
    figures: dict[str, Any] = {}
    for runtime in loaded:
        cosine = min_cosine(runtime(probe), reference)
        figures[runtime.backend] = {"precision": runtime.precision, "min_cosine": cosine}
        if cosine >= MIN_COSINE:
            faithful.append(runtime)
    timed = dict(zip([r.backend for r in faithful], speeds(faithful, probe), strict=True))
    for backend, speed in timed.items():
        figures.setdefault(backend, {"precision": spec.precision}).update(
            {"batch1_images_per_s": speed.batch1, "batched_images_per_s": speed.batched})
    return _fastest(timed), figures


def _fastest(timed: dict[str, Speed]) -> str:
    """The backend with the best mean speed-up over torch among those faster at both sizes.

    Faster means by ``MARGIN`` at least: a tie within the noise of a shared machine
    keeps torch, so that ``auto`` is never slower than torch eager.
    """
    base = timed["torch"]
    best, best_gain = "torch", 1.0
    for backend, speed in timed.items():
        ones, many = speed.batch1 / base.batch1, speed.batched / base.batched
        if min(ones, many) >= MARGIN and math.sqrt(ones * many) > best_gain:
            best, best_gain = backend, math.sqrt(ones * many)
    return best


def _decision_path(spec: ModelSpec, installed: list[tuple[str, str]]) -> Path | None:
    if spec.export_dir is None:
        return None
    cpu = _cpu_name()
    key = json.dumps([cpu, spec.threads, spec.batch_size, spec.precision, torch.__version__,
                      [(backend, runtime_precision(backend, spec.precision), version)
                       for backend, version in installed]])
    digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
    return spec.export_dir / f"auto-{spec.fingerprint}-{digest}.json"


def _read_decision(path: Path) -> str | None:
    try:
        picked = json.loads(path.read_text())["picked"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return picked if picked in BACKENDS else None


def _write_decision(path: Path, picked: str, figures: dict[str, Any]) -> None:
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps({"picked": picked, "cpu": _cpu_name(), "figures": figures},
                                  indent=2) + "\n")
    os.replace(partial, path)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def served_by(setting: str, export_dir: Path, fingerprint: str) -> str:
    """What the workers run a model on, read from the exports and decisions on disk.

    For ``index status``, which does not load the model: the newest ``auto`` decision
    or export for the model's fingerprint.
    """
    if setting == "torch" or not fingerprint:
        return f"{setting} (LOOKALIKE_ENCODER_BACKEND)"
    if setting == "auto":
        decisions = sorted(export_dir.glob(f"auto-{fingerprint}-*.json"),
                           key=lambda p: p.stat().st_mtime)
        for path in reversed(decisions):
            try:
                saved = json.loads(path.read_text())
                precision = saved["figures"][saved["picked"]]["precision"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            return f"{saved['picked']} {precision} (auto, timed on {saved['cpu']})"
        return "auto (not timed yet: the first worker measures as it starts)"
    exports = sorted(export_dir.glob(f"{fingerprint}-{setting}-*"), key=lambda p: p.stat().st_mtime)
    folders = [p for p in exports if p.is_dir() and ".partial-" not in p.name]
    if not folders:
        return f"{setting} (not exported yet: the first worker exports as it starts)"
    return f"{setting} ({folders[-1].name.split('-')[2]} weights)"
