"""``gallery add --ray``: the same rows as the in-process ingest, on a local Ray.

Needs Ray (pip install -r requirements-ray.txt); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ray_fixtures import assert_same_rows, collection_rows, crashing_embedder, many_photos

COUNT = 240
# Ray's own modules warn about its deprecated options while it runs.
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::ResourceWarning"
)


@pytest.fixture
def photo_dir(tmp_path: Path, photos: dict[str, bytes]) -> Path:
    return many_photos(photos, tmp_path / "photos", COUNT)


def test_gallery_add_with_ray_gives_the_rows_and_vectors_of_the_in_process_ingest(
    make_app, photo_dir: Path, local_ray, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    plain = make_app(COLLECTION="plain", INSTANCE_PATH=str(tmp_path / "a"))
    spread = make_app(COLLECTION="spread", INSTANCE_PATH=str(tmp_path / "b"))
    args = ["gallery", "add", str(photo_dir), "--label-from-folder", "--no-wait"]
    first = plain.test_cli_runner().invoke(args=args)
    assert first.exit_code == 0, first.output
    second = spread.test_cli_runner().invoke(args=[*args, "--ray"])
    assert second.exit_code == 0, second.output
    assert f"Added {COUNT}," in second.output

    want, got = collection_rows(plain), collection_rows(spread)
    assert len(want) == COUNT
    assert_same_rows(want, got)
    # The originals and thumbnails were stored as in process, under the same keys.
    stored = {p.name for p in (tmp_path / "b").rglob("*") if p.is_file()}
    for row in list(want.values())[:20]:
        assert any(row["key"] in name for name in stored)


def test_a_second_ray_add_skips_what_is_there(make_app, photo_dir: Path, local_ray) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    args = ["gallery", "add", str(photo_dir / "label0"), "--no-wait", "--ray"]
    assert app.test_cli_runner().invoke(args=args).exit_code == 0
    again = app.test_cli_runner().invoke(args=args)
    assert again.exit_code == 0, again.output
    assert "Added 0, skipped 48 already" in again.output
    assert len(collection_rows(app)) == 48


def test_an_actor_killed_mid_run_is_retried_and_no_image_is_lost_or_doubled(
    make_app, photo_dir: Path, local_ray, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from app.cluster.cli import ray_ingest
    from app.gallery.sources import collect

    marker = tmp_path / "crashed"
    app = make_app()
    sources = list(collect([photo_dir], label_from_folder=True))
    with app.app_context():
        report = ray_ingest(
            "local", sources, batch_size=8, embedder=crashing_embedder(marker, on_batch=5)
        )
    assert marker.exists(), "the actor never crashed: the test proves nothing"
    assert report.added == COUNT and not report.rejected
    rows = collection_rows(app)
    assert len(rows) == COUNT
    assert sorted(o.key for o in report.outcomes) == sorted(r["key"] for r in rows.values())


def test_ray_without_ray_installed_says_how_to_install_it(
    app, gallery_dir: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = app.test_cli_runner().invoke(args=["gallery", "add", str(gallery_dir), "--ray"])
    assert result.exit_code != 0
    assert "pip install -r requirements-ray.txt" in result.output
