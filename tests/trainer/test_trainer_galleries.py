"""``trainer index --gallery NAME`` and ``--data gallery:NAME`` on a real Milvus Lite."""

from __future__ import annotations

from pathlib import Path

from trainer.data import load_dataset
from trainer.export import export_run


def test_index_into_a_named_gallery_creates_it_and_leaves_the_default_alone(
    tiny_run: Path,
    colour_folders: Path,
    tmp_path: Path,
    lite_server: str,  # type: ignore[no-untyped-def]
    collection_name: str,
    monkeypatch,
    capsys,
    make_app,
) -> None:
    from trainer.__main__ import main

    model = export_run(tiny_run, tmp_path / "model").resolve()
    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("LOOKALIKE_MILVUS_URI", lite_server)
    monkeypatch.setenv("LOOKALIKE_COLLECTION", collection_name)
    monkeypatch.setenv("LOOKALIKE_PRECISION", "fp32")
    args = ["index", "--model", str(model), "--images", str(colour_folders), "--gallery", "paint"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Indexed 32 images" in out and f"The alias '{collection_name}__paint' now serves" in out
    assert "Created the gallery 'paint'" in out

    app = make_app(INSTANCE_PATH=str(tmp_path / "instance"))  # LOOKALIKE_MODEL: another model
    client = app.test_client()
    health = client.get("/api/health?gallery=paint").get_json()
    assert health["model"]["id"] == str(model) and health["milvus"]["gallery_size"] == 32
    assert client.get("/api/health").get_json()["milvus"]["gallery_size"] == 0
    labels = client.get("/api/labels?gallery=paint").get_json()["labels"]
    assert {entry["label"] for entry in labels} == {"red", "green", "blue", "yellow"}

    # Its images and labels are training data again, from that gallery only.
    from trainer import gallery

    monkeypatch.setattr("app.create_app", lambda: app)
    manifest = gallery.download_gallery("gallery:paint", tmp_path / "copy")
    dataset = load_dataset(manifest, val_ratio=0)
    assert len(dataset.query) + len(dataset.gallery) == 32
    assert {s.label for s in dataset.gallery} == {"red", "green", "blue", "yellow"}
    empty = gallery.download_gallery("gallery", tmp_path / "default-copy")
    assert empty.read_text().strip() == "path,label"
