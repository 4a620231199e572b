"""A local Ray (2 CPUs) for the tests, generated photos, an actor that crashes once, and
the comparison of a Ray run's rows with the in-process ones."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One local Ray for the session; the app's ``ray_session`` reuses it."""
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install -r requirements-ray.txt"
    )
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp = tmp_path_factory.mktemp("ray", numbered=True)
    short = Path("/tmp") / f"lray-{os.getpid()}"  # Ray's socket paths must stay short
    short.symlink_to(temp)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(short),
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield ray
    ray.shutdown()
    short.unlink()


def many_photos(photos: dict[str, bytes], root: Path, count: int) -> Path:
    """``count`` distinct JPEGs (crops of the sample photos) in one folder per label."""
    bases = [Image.open(io.BytesIO(data)).convert("RGB") for data in photos.values()]
    rng = np.random.default_rng(0)
    for i in range(count):
        base = bases[i % len(bases)]
        w, h = base.size
        left, top = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
        crop = base.crop((left, top, left + w // 2, top + h // 2))
        folder = root / f"label{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"img{i:04d}.jpg", quality=90)
    return root


def crashing_embedder(marker: Path, on_batch: int) -> type:
    """An Embedder whose process exits on its ``on_batch``-th batch, the first time only."""
    from app.cluster.pipeline import Embedder

    class Crashing(Embedder):
        calls = 0

        def __call__(self, batch):  # type: ignore[no-untyped-def]
            type(self).calls += 1
            if type(self).calls == on_batch and not marker.exists():
                marker.write_text("crashed")
                os._exit(1)
            return super().__call__(batch)

    return Crashing


def collection_rows(app) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """The serving collection's rows by id, with their vectors."""
    with app.app_context():
        from app.extensions import snapshot

        snap = snapshot()
        rows = snap.vectors.client.query(
            snap.collection,
            filter='id != ""',
            limit=16384,
            output_fields=["id", "vector", "key", "label", "metadata"],
        )
    return {r["id"]: dict(r) for r in rows}


def assert_same_rows(want: dict[str, dict], got: dict[str, dict]) -> None:
    """The same ids, keys, labels and metadata, and vectors with cosine >= 0.9999."""
    assert set(got) == set(want)
    for id_, row in want.items():
        other = got[id_]
        assert (other["key"], other["label"], other["metadata"]) == (
            row["key"],
            row["label"],
            row["metadata"],
        )
        a, b = np.asarray(row["vector"]), np.asarray(other["vector"])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999
