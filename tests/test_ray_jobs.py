"""``index rebuild --ray``: the reindex job encodes on Ray, through its usual steps.

Needs Ray (pip install -r requirements-ray.txt); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.admin_fixtures import log_in
from tests.helpers import wait_until
from tests.ray_fixtures import collection_rows, many_photos

pytest_plugins = ["tests.admin_fixtures"]

COUNT = 40
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)


def _rows(app) -> tuple[str, dict[str, dict]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        from app.extensions import snapshot

        collection = snapshot().collection
    return collection, collection_rows(app)


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


def test_the_admin_button_reindexes_on_the_configured_ray_cluster_with_its_progress(
    make_app, admin_hash: str, local_ray, photos: dict[str, bytes], tmp_path: Path
) -> None:
    from app.jobs.state import JobFiles

    address = local_ray.get_runtime_context().gcs_address  # the job process joins it
    app = make_app(
        ADMIN_PASSWORD_HASH=admin_hash, ALIAS_CHECK_SECONDS=0.2, REINDEX_NICE=0, RAY_ADDRESS=address
    )
    folder = many_photos(photos, tmp_path / "photos", 24)
    added = app.test_cli_runner().invoke(args=["gallery", "add", str(folder)])
    assert added.exit_code == 0, added.output
    admin = app.test_client()
    log_in(admin)
    assert admin.post("/admin/reindex").status_code == 303
    seen: list[tuple[str, int]] = []

    def finished() -> bool:
        job = admin.get("/admin/reindex/status").get_json()["job"]
        seen.append((job["phase"], job["done"]))
        return not job["active"]

    wait_until(finished, 300, "the reindex job to finish")
    files = JobFiles(app.instance_path)
    state, log = files.read(), files.log.read_text()
    assert state.phase == "done", (state.error, log[-2000:])
    assert state.done == 24 and state.failed == 0
    assert seen[-1] == ("done", 24)
    assert "Ray cluster" in log, log[-2000:]  # ray.init's "Connecting to existing Ray cluster"
