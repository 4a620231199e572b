"""Encoder backends: every installed runtime embeds like torch fp32; exports are cached
safely; ``auto`` falls back to torch and never picks a backend slower than it."""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.exceptions import ModelLoadError
from app.model.backends import export_cache
from app.model.backends.choose import _fastest, served_by
from app.model.backends.measure import MIN_COSINE, Speed
from app.model.encoder import Encoder, bf16_supported
from app.model.projection import HeadSpec, ProjectionHead, save_head
from tests.helpers import tiny_model

INSTALL = "pip install -r requirements-backends.txt"


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


OPENVINO = pytest.param("openvino", marks=pytest.mark.skipif(
    not installed("openvino"), reason=f"OpenVINO is not installed: {INSTALL}"))
ONNXRUNTIME = pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not (installed("onnxruntime") and installed("onnx")),
    reason=f"ONNX Runtime is not installed: {INSTALL}"))
PRECISIONS = ["fp32", *(["bf16"] if bf16_supported("cpu") else [])]


def rgb(data: bytes) -> Image.Image:
    import io

    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export folder for the module: each model and backend is exported once."""
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def images(photos: dict[str, bytes]) -> list[Image.Image]:
    return [rgb(data) for data in photos.values()]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend", [OPENVINO, ONNXRUNTIME])
def test_each_backend_embeds_the_tiny_model_like_torch_fp32(
    backend: str, precision: str, tiny_model_dir: Path, exports: Path, images
) -> None:
    reference = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32").embed(images)
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision=precision, backend=backend,
                                      export_dir=exports)
    assert encoder.backend == backend
    assert encoder.backend_precision == ("fp32" if backend == "onnxruntime" else precision)
    got = encoder.embed(images)
    assert got.dtype == np.float32 and got.shape == reference.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert min_cosine(got, reference) >= MIN_COSINE


@pytest.mark.slow
@pytest.mark.parametrize("backend", [OPENVINO, ONNXRUNTIME])
def test_each_backend_embeds_the_real_mobilenet_like_torch_fp32(
    backend: str, mobilenet_dir: Path, exports: Path, images
) -> None:
    reference = Encoder.from_pretrained(str(mobilenet_dir), precision="fp32").embed(images)
    encoder = Encoder.from_pretrained(str(mobilenet_dir), backend=backend, export_dir=exports)
    # auto precision keeps a convolutional model in fp32 on the CPU
    assert encoder.backend == backend and encoder.backend_precision == "fp32"
    assert min_cosine(encoder.embed(images), reference) >= MIN_COSINE


@pytest.mark.skipif(not installed("openvino"), reason=f"OpenVINO is not installed: {INSTALL}")
def test_openvino_leaves_its_threads_unpinned_so_the_workers_of_a_server_spread_over_cores(
    tiny_model_dir: Path, exports: Path, images
) -> None:
    # OpenVINO's default pins every process's stream to the same first cores: two
    # gunicorn workers then share one core (bench/http_speed.py shows it, see
    # docs/performance-backends.md). Only the setting can be checked here.
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend="openvino",
                                      export_dir=exports)
    compiled = encoder.runtime._compiled  # type: ignore[union-attr]
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert encoder.embed(images[:1]).shape[0] == 1


@pytest.fixture(scope="module")
def exported_with_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory in the trainer's export format: backbone + MLP head + manifest."""
    import torch

    directory = tiny_model(tmp_path_factory.mktemp("with-head"), hidden=64, layers=2, seed=3)
    torch.manual_seed(4)
    save_head(ProjectionHead(HeadSpec(in_dim=64, out_dim=16, kind="mlp", hidden_dim=32)),
              directory, {"base_model": "tiny", "dim": 16, "metric": "cosine"})
    return directory


@pytest.mark.parametrize("backend", [OPENVINO, ONNXRUNTIME])
def test_a_trainer_export_gives_the_same_vectors_with_its_head_on_every_backend(
    backend: str, exported_with_head: Path, exports: Path, images
) -> None:
    torch_fp32 = Encoder.from_pretrained(str(exported_with_head), precision="fp32")
    other = Encoder.from_pretrained(str(exported_with_head), precision="fp32", backend=backend,
                                    export_dir=exports)
    expected = torch_fp32.embed(images)
    assert expected.shape[1] == 16  # the head ran
    assert np.allclose(other.embed(images), expected, atol=1e-4)
    assert other.fingerprint == torch_fp32.fingerprint


def _fake_export(calls: list[str]):  # type: ignore[no-untyped-def]
    def build(folder: Path) -> None:
        calls.append("build")
        (folder / "model.bin").write_bytes(b"weights" * 100)

    def load(folder: Path) -> bytes:
        return (folder / "model.bin").read_bytes()

    return build, load


KEY = {"fingerprint": "f00d", "backend": "openvino", "version": "1", "precision": "bf16"}


def test_a_valid_export_is_reused_not_rebuilt(tmp_path: Path) -> None:
    calls: list[str] = []
    build, load = _fake_export(calls)
    assert export_cache.cached(tmp_path, KEY, build, load) == b"weights" * 100
    assert export_cache.cached(tmp_path, KEY, build, load) == b"weights" * 100
    assert calls == ["build"]


def test_a_corrupt_export_is_rebuilt_not_used(tmp_path: Path) -> None:
    calls: list[str] = []
    build, load = _fake_export(calls)
    export_cache.cached(tmp_path, KEY, build, load)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (folder / "model.bin").write_bytes(b"weights" * 50)  # truncated by a crash or a bad disk
    assert export_cache.cached(tmp_path, KEY, build, load) == b"weights" * 100
    assert calls == ["build", "build"]


def test_a_stale_export_is_rebuilt_not_used(tmp_path: Path) -> None:
    calls: list[str] = []
    build, load = _fake_export(calls)
    export_cache.cached(tmp_path, KEY, build, load)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    manifest = json.loads((folder / export_cache.MANIFEST).read_text())
    manifest["key"]["version"] = "0"  # written by an older backend into the same folder
    (folder / export_cache.MANIFEST).write_text(json.dumps(manifest))
    export_cache.cached(tmp_path, KEY, build, load)
    assert calls == ["build", "build"]
    assert json.loads((folder / export_cache.MANIFEST).read_text())["key"]["version"] == "1"


def test_an_export_the_runtime_cannot_load_is_rebuilt_once(tmp_path: Path) -> None:
    calls: list[str] = []
    build, _ = _fake_export(calls)
    export_cache.cached(tmp_path, KEY, build, lambda folder: None)
    loads = iter([RuntimeError("cannot read model.bin"), b"ok"])

    def flaky(folder: Path) -> bytes:
        outcome = next(loads)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert export_cache.cached(tmp_path, KEY, build, flaky) == b"ok"
    assert calls == ["build", "build"]


@pytest.mark.parametrize("backend", [ONNXRUNTIME])
def test_a_corrupt_real_export_is_rebuilt_and_embeds_right(
    backend: str, tiny_model_dir: Path, tmp_path: Path, images
) -> None:
    first = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend=backend,
                                    export_dir=tmp_path)
    expected = first.embed(images)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    model_file = next(p for p in folder.iterdir() if p.name != export_cache.MANIFEST)
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    again = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend=backend,
                                    export_dir=tmp_path)
    assert np.allclose(again.embed(images), expected, atol=1e-6)


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_auto_falls_back_to_torch_when_no_backend_is_installed(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path, images
) -> None:
    hide(monkeypatch, "openvino", "onnxruntime", "onnx")
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend="auto",
                                      export_dir=tmp_path)
    assert encoder.backend == "torch" and encoder.runtime is None
    reference = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32").embed(images)
    assert np.allclose(encoder.embed(images), reference, atol=1e-6)
    assert list(tmp_path.iterdir()) == []  # nothing exported, nothing decided


def test_a_named_backend_that_is_not_installed_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path
) -> None:
    hide(monkeypatch, "openvino")
    with pytest.raises(ModelLoadError, match="requirements-backends.txt"):
        Encoder.from_pretrained(str(tiny_model_dir), backend="openvino", export_dir=tmp_path)
    with pytest.raises(ValueError, match="encoder backend"):
        Encoder.from_pretrained(str(tiny_model_dir), backend="tensorrt", export_dir=tmp_path)


def test_auto_picks_only_a_backend_faster_than_torch_at_both_sizes() -> None:
    torch_speed = Speed(batch1=40, batched=60)
    assert _fastest({"torch": torch_speed, "openvino": Speed(80, 59)}) == "torch"
    assert _fastest({"torch": torch_speed, "openvino": Speed(39, 120)}) == "torch"
    assert _fastest({"torch": torch_speed, "onnxruntime": Speed(45, 61)}) == "torch"  # a tie
    assert _fastest({"torch": torch_speed, "openvino": Speed(50, 70),
                     "onnxruntime": Speed(45, 66)}) == "openvino"


def _lock_held(folder: Path) -> bool:
    """Whether another open file holds the auto decision's lock (flock is per open file)."""
    (lock,) = folder.glob("auto-*.lock")
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@pytest.mark.parametrize("backend", [ONNXRUNTIME])
def test_auto_decides_once_per_machine_and_model_and_reuses_the_decision(
    backend: str, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path, images
) -> None:
    from app.model.backends import choose

    hide(monkeypatch, "openvino")  # only ONNX Runtime against torch, which runs fp32 here
    exports = tmp_path / "exports"  # not there yet: the first worker creates it
    loads: list[tuple[str, bool]] = []  # (backend, decision lock held while it loaded)
    real_load = choose.load

    def watched_load(name: str, spec, precision=None):  # type: ignore[no-untyped-def]
        loads.append((name, _lock_held(exports)))
        return real_load(name, spec, precision)

    monkeypatch.setattr(choose, "load", watched_load)
    first = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend="auto",
                                    export_dir=exports)
    # Candidates compile under the lock, so a sibling worker cannot compile beside the timing.
    assert loads == [("onnxruntime", True)]
    loads.clear()
    (decision,) = exports.glob("auto-*.json")
    saved = json.loads(decision.read_text())
    assert saved["picked"] == first.backend
    assert set(saved["figures"]) == {"torch", "onnxruntime"}
    assert saved["figures"]["onnxruntime"]["min_cosine"] >= MIN_COSINE

    def no_measuring(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("auto measured again instead of reading its decision")

    monkeypatch.setattr(choose, "_measure", no_measuring)
    again = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", backend="auto",
                                    export_dir=exports)
    assert again.backend == first.backend
    # A worker that finds the decision loads only the backend it names, outside the lock.
    assert loads == ([] if first.backend == "torch" else [(first.backend, False)])
    assert served_by("auto", exports, first.fingerprint).startswith(first.backend + " fp32")


def test_health_and_index_status_say_which_backend_and_precision_serve(make_app) -> None:
    app = make_app()
    body = app.test_client().get("/api/health").get_json()
    assert body["model"]["backend"] == "torch" and body["model"]["precision"] == "fp32"
    output = app.test_cli_runner().invoke(args=["index", "status"]).output
    assert "runs on:     torch" in output


def test_index_status_reads_a_named_backend_from_its_export_folder(tmp_path: Path) -> None:
    assert "not exported yet" in served_by("openvino", tmp_path, "abc123")
    (tmp_path / "abc123-openvino-fp32-0123456789ab").mkdir()
    (tmp_path / "abc123-openvino-int8-0123456789ab.partial-7").mkdir()  # an export being built
    assert served_by("openvino", tmp_path, "abc123") == "openvino (fp32 weights)"
    assert "not timed yet" in served_by("auto", tmp_path, "abc123")


@pytest.mark.skipif(not (installed("onnxruntime") and installed("onnx")),
                    reason=f"ONNX Runtime is not installed: {INSTALL}")
def test_a_worker_exports_while_warming_up_before_it_takes_traffic(make_app) -> None:
    from app.readiness import warm_up

    app = make_app(ENCODER_BACKEND="onnxruntime")
    exports = Path(app.instance_path) / "encoder-exports"
    assert not exports.exists()
    result = warm_up(app)
    assert result.loaded and "onnxruntime fp32" in result.model, result
    assert [p for p in exports.iterdir() if p.is_dir() and "-onnxruntime-" in p.name]
    body = app.test_client().get("/api/health").get_json()
    assert body["model"]["backend"] == "onnxruntime"
