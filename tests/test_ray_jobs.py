"""``index rebuild --ray``: the reindex job encodes on Ray, through its usual steps.

Needs Ray (pip install -r requirements-ray.txt); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import ray_fixtures
from tests.ray_fixtures import many_photos

local_ray = ray_fixtures.local_ray
COUNT = 40
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)


def _rows(app) -> tuple[str, dict[str, dict]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import snapshot

        snap = snapshot()
        rows = snap.vectors.client.query(
            snap.collection,
            filter='id != ""',
            limit=16384,
            output_fields=["id", "vector", "key", "label"],
        )
        return snap.collection, {r["id"]: dict(r) for r in rows}


def test_index_rebuild_with_ray_re_encodes_every_row_into_a_new_collection(
    make_app, local_ray, photos: dict[str, bytes], tmp_path: Path
) -> None:
    app = make_app()
    folder = many_photos(photos, tmp_path / "photos", COUNT)
    added = app.test_cli_runner().invoke(
        args=["gallery", "add", str(folder), "--label-from-folder"]
    )
    assert added.exit_code == 0, added.output
    before, old = _rows(app)

    rebuilt = app.test_cli_runner().invoke(args=["index", "rebuild", "--ray"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"Re-encoded {COUNT} of {COUNT} images" in rebuilt.output

    app.extensions["lookalike.serving"].reset()
    after, new = _rows(app)
    assert after != before and set(new) == set(old)
    for id_, row in old.items():
        assert (new[id_]["key"], new[id_]["label"]) == (row["key"], row["label"])
        a, b = np.asarray(row["vector"]), np.asarray(new[id_]["vector"])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.9999
