"""``trainer index``: a new collection through the app's ingest, then the alias moves."""

from __future__ import annotations

from pathlib import Path

from app.copies.threshold import read_calibration
from app.vectors.connect import connect_milvus
from trainer.data import load_dataset
from trainer.export import export_run
from trainer.index import build_index, gallery_sources


def test_index_fills_a_new_collection_and_switches_the_alias(
    make_app, tiny_run: Path, colour_folders: Path, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    model = str(export_run(tiny_run, tmp_path / "model"))
    app = make_app(MODEL=model)
    sources = gallery_sources(load_dataset(colour_folders, val_ratio=0))
    assert len(sources) == 32 and {s.label for s in sources} == {"red", "green", "blue", "yellow"}
    with app.app_context():
        first = build_index(app, model, sources, batch_size=8)
        second = build_index(app, model, sources[:10], batch_size=8)
        store = connect_milvus(app)
        assert first["added"] == 32 and first["rows"] == 32 and first["previous"] is None
        assert second["previous"] == first["collection"]
        assert store.resolve() == second["collection"] and store.count() == 10
        stamp = store.stamp_of(second["collection"])
        assert stamp is not None and stamp.name == model and stamp.dim == 16
        hit = store.search(_vector_of(app, model, sources[0]), 1)[0]
        assert hit.label == sources[0].label
        # Each new collection gets its own copy threshold, for its model.
        calibration = read_calibration(store, second["collection"])
        assert calibration.calibrated and calibration.originals == 10
        assert "(precision" in second["copy_threshold"]


def test_index_can_leave_the_alias_alone(make_app, tiny_run: Path, colour_folders: Path,  # type: ignore[no-untyped-def]
                                         tmp_path: Path) -> None:
    model = str(export_run(tiny_run, tmp_path / "model"))
    app = make_app(MODEL=model)
    with app.app_context():
        result = build_index(app, model, gallery_sources(load_dataset(colour_folders))[:4],
                             switch=False)
        assert connect_milvus(app).resolve() is None and result["rows"] == 4


def _vector_of(app, model: str, source):  # type: ignore[no-untyped-def]
    from app.extensions import build_encoder
    from app.gallery import imaging

    return build_encoder(app, model).embed([imaging.decode(source.read()).image])[0]


def test_the_app_gallery_becomes_training_data_with_its_labels(
    make_app, tiny_run: Path, colour_folders: Path, tmp_path: Path, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    from trainer import gallery

    model = str(export_run(tiny_run, tmp_path / "model"))
    app = make_app(MODEL=model)
    with app.app_context():
        build_index(app, model, gallery_sources(load_dataset(colour_folders)), batch_size=16)
    monkeypatch.setattr("app.create_app", lambda: app)
    manifest = gallery.download_gallery("gallery", tmp_path / "copy")
    dataset = load_dataset(manifest, val_ratio=0)
    assert len(dataset.query) + len(dataset.gallery) == 32
    assert {s.label for s in dataset.gallery} == {"red", "green", "blue", "yellow"}
    assert all(Path(s.path).is_file() for s in dataset.gallery)


def test_export_then_index_from_the_command_line(
    tiny_run: Path, colour_folders: Path, tmp_path: Path, lite_server: str,  # type: ignore[no-untyped-def]
    collection_name: str, monkeypatch, capsys,
) -> None:
    from trainer.__main__ import main

    model = tmp_path / "model"
    assert main(["export", "--run", str(tiny_run), "--out", str(model)]) == 0
    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("LOOKALIKE_MILVUS_URI", lite_server)
    monkeypatch.setenv("LOOKALIKE_COLLECTION", collection_name)
    monkeypatch.setenv("LOOKALIKE_MODEL", str(model.resolve()))
    monkeypatch.setenv("LOOKALIKE_BF16", "false")
    assert main(["index", "--model", str(model), "--images", str(colour_folders)]) == 0
    out = capsys.readouterr().out
    assert "Indexed 32 images" in out and f"The alias '{collection_name}' now serves" in out
