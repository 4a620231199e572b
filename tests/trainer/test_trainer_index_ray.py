"""``trainer index --ray``: an exported model (projection head included) indexed on Ray
gives the rows and vectors of the in-process path.

Needs Ray (pip install -r requirements-ray.txt); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.data import load_dataset
from trainer.export import export_run
from trainer.index import build_index, gallery_sources

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)


def _rows(app, collection: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    from app.vectors.connect import connect_milvus

    rows = connect_milvus(app).client.query(
        collection, filter='id != ""', limit=1000, output_fields=["id", "vector", "label"]
    )
    return {r["id"]: dict(r) for r in rows}


def test_trainer_index_on_ray_matches_the_in_process_index(
    make_app, local_ray, tiny_run: Path, colour_folders: Path, tmp_path: Path
) -> None:
    model = str(export_run(tiny_run, tmp_path / "model"))
    app = make_app(MODEL=model)
    sources = gallery_sources(load_dataset(colour_folders, val_ratio=0))
    with app.app_context():
        plain = build_index(app, model, sources, batch_size=8, switch=False)
        spread = build_index(app, model, sources, batch_size=8, switch=False, ray_address="local")
        assert spread["added"] == plain["added"] == 32 and spread["rows"] == 32
        want, got = _rows(app, plain["collection"]), _rows(app, spread["collection"])
    assert set(got) == set(want)
    for id_, row in want.items():
        assert got[id_]["label"] == row["label"]
        a, b = np.asarray(row["vector"]), np.asarray(got[id_]["vector"])
        assert len(a) == 16 and float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999


def test_trainer_index_with_ray_but_without_ray_installed_says_how_to_install_it(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    from app.exceptions import RayUnavailable
    from trainer import index

    def missing() -> None:
        raise RayUnavailable("--ray needs Ray ... pip install -r requirements-ray.txt")

    monkeypatch.setattr("app.cluster.require_ray", missing)
    with pytest.raises(SystemExit, match="requirements-ray.txt"):
        index._check_ray()
