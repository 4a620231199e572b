"""Shared fixtures: a tiny real model on disk, a real Milvus Lite server, photos, apps.

Nothing is mocked: the encoder loads through ``from_pretrained`` from a model
directory made here, vectors go to a real Milvus Lite server, images to a real
folder (or a real S3 server in the storage tests).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.ray_fixtures import local_ray  # noqa: F401  (fixture; skips without Ray)
from tests.s3server import own_s3_server, s3_server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MOBILENET = SHARED / "models" / "mobilenet_v2_1.0_224"
GROCERY = SHARED / "datasets" / "grocery" / "dataset"
PHOTO_NAMES = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
               "immunohistochemistry"]


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's LOOKALIKE_* exports must not change what tests see."""
    for name in list(os.environ):
        if name.startswith("LOOKALIKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINOv2 with its image processor, saved like a hub model."""
    from tests.helpers import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny-dinov2"), hidden=64, layers=2, seed=0)


@pytest.fixture(scope="session")
def mobilenet_dir() -> Path:
    if not (MOBILENET / "config.json").is_file():
        pytest.skip(f"the real MobileNetV2 is not at {MOBILENET} (../shared absent)")
    return MOBILENET


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real photos (scikit-image's sample data, offline), as JPEG files."""
    from skimage import data

    out = {}
    for name in PHOTO_NAMES:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        out[name] = buffer.getvalue()
    return out


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Milvus Lite server for the session; tests use their own collections."""
    from app.vectors.lite_server import ensure_server, stop_server

    data_dir = tmp_path_factory.mktemp("milvus") / "milvus.db"
    server = ensure_server(data_dir)
    yield server.uri
    stop_server(data_dir)


@pytest.fixture
def collection_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_app(tmp_path: Path, tiny_model_dir: Path, lite_server: str, collection_name: str):
    """Build an app on the test config; keyword overrides win."""
    from app import create_app
    from app.config import TestConfig

    made = []

    def make(**overrides):  # type: ignore[no-untyped-def]
        config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
        config.update(
            INSTANCE_PATH=str(tmp_path / "instance"),
            MODEL=str(tiny_model_dir),
            MILVUS_URI=lite_server,
            COLLECTION=collection_name,
            BATCH_SIZE=4,
        )
        config.update(overrides)
        made.append(create_app(config))
        return made[-1]

    yield make
    for app in made:  # close gRPC channels: hundreds of idle ones strain the shared server
        servings = app.extensions["lookalike.serving"].peek()
        if servings is not None:
            servings.close()


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def gallery_dir(tmp_path: Path, photos: dict[str, bytes]) -> Path:
    """A folder of photos, one sub-folder per label."""
    root = tmp_path / "gallery"
    for name, data in photos.items():
        space = name in ("astronaut", "rocket", "hubble_deep_field")
        folder = root / ("space" if space else "other")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jpg").write_bytes(data)
    return root
