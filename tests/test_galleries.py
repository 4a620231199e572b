"""The gallery registry on a real Milvus Lite: names, create/retitle/delete, the default
gallery, and an instance made before galleries existed, served with no migration."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.exceptions import BadRequest, UnknownGallery
from app.galleries.registry import alias_for, check_name, default_name, registry_name


@pytest.mark.parametrize("name", ["a", "shoes", "client-42", "0", "x" * 40, "a--b"])
def test_valid_gallery_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "Shoes", "a_b", "x" * 41, "a/b", "ü", "a b", "a.b"])
def test_invalid_gallery_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(BadRequest, match="lower-case letters, digits and hyphens"):
        check_name(name)


def test_aliases_never_take_another_gallerys_collections() -> None:
    names = ["a", "a-1", "a1", "a-h1", "1", "galleries", "a--1", "h1"]
    aliases = {name: alias_for(name, "gallery") for name in names}
    assert len(set(aliases.values())) == len(names)  # one to one
    # A gallery's generations are "<alias>_<digit>...": no other alias (nor the
    # default's, nor the registry) starts that way.
    everyone = [*aliases.values(), "gallery", registry_name("gallery")]
    for alias in everyone:
        for other in everyone:
            if other != alias and other.startswith(alias + "_"):
                assert not other[len(alias) + 1].isdigit(), (alias, other)


def test_the_default_gallery_is_named_after_lookalike_collection() -> None:
    assert default_name("gallery") == "gallery"
    assert default_name("My_Gallery") == "my-gallery"


def registry(app):  # type: ignore[no-untyped-def]
    from app.extensions import galleries

    with app.app_context():
        return galleries()


def test_a_fresh_deployment_has_only_the_default_gallery(app, collection_name: str) -> None:
    reg = registry(app)
    (only,) = reg.all()
    assert (only.name, only.alias, only.default) == (collection_name, collection_name, True)
    assert only.model == app.config["MODEL"]
    assert not reg.client.has_collection(reg.name)  # nothing written just by reading


def test_galleries_are_created_listed_retitled_and_removed(app, mobilenet_dir) -> None:
    reg = registry(app)
    made = reg.create("shoes", title="Shoe  catalogue ", model=str(mobilenet_dir))
    assert made.title == "Shoe catalogue" and made.alias == f"{reg.default.alias}__shoes"
    reg.create("client-7", model="m")
    assert reg.names() == [reg.default.name, "client-7", "shoes"]
    assert reg.get("client-7").title == "Client 7"
    # Another process (a second web worker) sees them through Milvus.
    other = registry(_twin_app(app))
    assert other.get("shoes").model == str(mobilenet_dir)
    assert reg.retitle("shoes", "Shoes").title == "Shoes"
    reg.remove("client-7")
    assert reg.names() == [reg.default.name, "shoes"]
    with pytest.raises(UnknownGallery) as missing:
        reg.get("client-7")
    assert missing.value.status == 404 and missing.value.known == [reg.default.name, "shoes"]


def _twin_app(app):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app(dict(app.config))


def test_duplicates_and_the_default_gallery_are_protected(app) -> None:
    reg = registry(app)
    reg.create("shoes", model="m")
    with pytest.raises(BadRequest, match="exists already"):
        reg.create("shoes", model="m")
    with pytest.raises(BadRequest, match="default gallery"):
        reg.remove(reg.default.name)
    with pytest.raises(BadRequest, match="not a gallery name"):
        reg.create("Bad_Name", model="m")


def test_the_default_gallery_title_can_be_changed_but_not_its_model(app) -> None:
    reg = registry(app)
    reg.retitle(reg.default.name, "Everything")
    fresh = registry(_twin_app(app)).get(reg.default.name)
    assert fresh.title == "Everything" and fresh.default and fresh.model == app.config["MODEL"]


def test_an_instance_made_before_galleries_is_served_with_no_migration(
    make_app, gallery_dir: Path, photos, collection_name: str
) -> None:
    """The previous layout: one alias (LOOKALIKE_COLLECTION), job files under instance/,
    no registry. Made here with the same adapters the previous version used."""
    from app.extensions import build_encoder, images
    from app.gallery.ingest import Ingestor
    from app.gallery.sources import collect
    from app.jobs.state import JobFiles, JobState
    from app.serving import stamp_of
    from app.vectors.connect import connect_milvus

    old = make_app()
    with old.app_context():
        encoder = build_encoder(old)
        store = connect_milvus(old)
        store.ensure(stamp_of(encoder))
        report = Ingestor(encoder, store, images(), batch_size=4).run(
            list(collect([gallery_dir], label_from_folder=True))
        )
        assert report.added == 6 and not store.client.has_collection(f"{collection_name}_galleries")
    JobFiles(old.instance_path).record_success(JobState(id="old-job", phase="done", total=6))

    app = make_app()  # the new version, same settings and instance folder
    client = app.test_client()
    body = client.post(
        "/api/search",
        data={"image": (io.BytesIO(photos["rocket"]), "q.jpg")},
        content_type="multipart/form-data",
    ).get_json()
    assert body["results"][0]["metadata"]["source"] == "rocket.jpg"
    assert client.get(f"/g/{collection_name}/").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and b"Search 6 gallery images" in page.data
    listing = app.test_cli_runner().invoke(args=["gallery", "list"])
    assert listing.exit_code == 0 and f"{collection_name} (default)" in listing.output
    assert "6 images" in listing.output
    with app.app_context():
        from app.galleries.current import job_files

        assert job_files().last_success().id == "old-job"  # its job files where they were


def test_settings_are_kept_with_a_gallery_and_survive_a_retitle(app) -> None:
    reg = registry(app)
    reg.create("shoes", model="m")
    reg.update_settings("shoes", bucket="s3://shoes", sync=True)
    reg.retitle("shoes", "Shoes")
    reg.update_settings("shoes", sync=None)
    fresh = registry(_twin_app(app)).get("shoes")
    assert dict(fresh.settings) == {"bucket": "s3://shoes"} and fresh.title == "Shoes"
    reg.update_settings(reg.default.name, threshold=0.9)
    assert registry(_twin_app(app)).get(reg.default.name).settings == {"threshold": 0.9}
