"""The admin gallery page: upload with per-file results, browse, relabel, delete, stats."""

from __future__ import annotations

import json
from pathlib import Path

from app.gallery.keys import original_name, thumb_name
from tests.admin_fixtures import jpeg, make_zip, outcomes, upload

pytest_plugins = ["tests.admin_fixtures"]


def services(app):  # type: ignore[no-untyped-def]
    from app.extensions import images, serving

    with app.app_context():
        return serving().store, images()


def test_a_zip_with_good_duplicate_and_broken_images_reports_each(admin_client, photos) -> None:
    first = upload(admin_client, {"coffee.jpg": photos["coffee"]})
    assert outcomes(first.get_data(as_text=True)) == {"coffee.jpg": "added"}
    archive = make_zip({
        "cats/chelsea.jpg": photos["chelsea"],
        "drinks/coffee-again.jpg": photos["coffee"],  # already in the gallery
        "broken.jpg": b"this is not an image",
        "truncated.jpg": photos["rocket"][:800],
    })
    response = upload(admin_client, {"batch.zip": archive, "notes.txt": b"hello"},
                      label_from_folder="y")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert outcomes(page) == {"cats/chelsea.jpg": "added", "drinks/coffee-again.jpg": "duplicate",
                              "broken.jpg": "rejected", "truncated.jpg": "rejected",
                              "notes.txt": "rejected"}
    assert "not an image we can read" in page and "truncated or corrupt" in page
    assert "<strong>1</strong> added" in page and "<strong>3</strong> rejected" in page
    store, _ = services(admin_client.application)
    assert {e.label for e in store.iterate()} == {"", "cats"}


def test_an_unreadable_zip_is_rejected_alone(admin_client, photos) -> None:
    response = upload(admin_client, {"bad.zip": b"PK not really", "cat.jpg": photos["chelsea"]})
    assert outcomes(response.get_data(as_text=True)) == {"bad.zip": "rejected", "cat.jpg": "added"}


def test_uploads_get_the_given_label_and_show_in_the_paged_grid(make_app, admin_hash) -> None:
    from tests.admin_fixtures import log_in

    app = make_app(ADMIN_PASSWORD_HASH=admin_hash, ADMIN_PAGE_SIZE=4)
    client = app.test_client()
    log_in(client)
    upload(client, {f"img{i}.jpg": jpeg(i) for i in range(6)}, label="swatch")
    first = client.get("/admin/gallery").get_data(as_text=True)
    assert first.count('class="card"') == 4 and "Images 1–4 of 6" in first
    assert first.count(">swatch<") == 4
    next_url = first.split('href="/admin/gallery?after=')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(f"/admin/gallery?after={next_url}").get_data(as_text=True)
    assert second.count('class="card"') == 2 and "Images 5–6 of 6" in second
    assert "Next page" not in second


def test_a_label_is_edited_in_place(admin_app, admin_client, photos) -> None:
    upload(admin_client, {"cat.jpg": photos["chelsea"]}, label="cat")
    store, _ = services(admin_app)
    entry = next(store.iterate())
    response = admin_client.post(f"/admin/gallery/{entry.id}/label", data={"label": "Chelsea"})
    assert response.status_code == 303
    assert store.get(entry.id).label == "Chelsea" and store.count() == 1
    hits = admin_client.get(f"/api/search?key={entry.key}&k=1")  # the vector is untouched
    assert hits.status_code == 200


def test_delete_asks_first_then_removes_from_milvus_and_the_store(
    admin_app, admin_client, photos
) -> None:
    upload(admin_client, {"cat.jpg": photos["chelsea"], "rocket.jpg": photos["rocket"]})
    store, images = services(admin_app)
    entry = next(e for e in store.iterate() if e.metadata["source"] == "cat.jpg")
    confirm = admin_client.get(f"/admin/gallery/{entry.id}/delete")
    assert confirm.status_code == 200 and b"Delete this image?" in confirm.data
    assert store.count() == 2  # asking deleted nothing
    done = admin_client.post(f"/admin/gallery/{entry.id}/delete", follow_redirects=True)
    assert done.status_code == 200 and b"Deleted" in done.data
    assert store.count() == 1
    assert not images.exists(original_name(entry.key)) and not images.exists(thumb_name(entry.key))
    assert admin_client.get(f"/admin/gallery/{entry.id}").status_code == 404


def test_the_overview_shows_counts_names_model_index_and_health(
    admin_app, admin_client, photos
) -> None:
    upload(admin_client, {"cat.jpg": photos["chelsea"], "coffee.jpg": photos["coffee"]})
    page = admin_client.get("/admin/").get_data(as_text=True)
    store, _ = services(admin_app)
    assert store.resolve() in page and store.alias in page
    assert admin_app.config["MODEL"] in page and "64-d" in page
    assert "HNSW" in page and "COSINE" in page and "M=16" in page and "efConstruction=200" in page
    assert "<dd>2</dd>" in page and "never" in page and page.count("healthy") == 2
    assert "differs from the serving model" not in page


def test_every_change_is_in_the_audit_log(admin_app, admin_client, photos) -> None:
    upload(admin_client, {"cat.jpg": photos["chelsea"]})
    store, _ = services(admin_app)
    entry = next(store.iterate())
    admin_client.post(f"/admin/gallery/{entry.id}/label", data={"label": "cat"})
    admin_client.post(f"/admin/gallery/{entry.id}/delete")
    lines = (Path(admin_app.instance_path) / "audit.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["action"] for r in records] == ["login", "gallery.upload", "gallery.label",
                                              "gallery.delete"]
    assert all(r["user"] == "admin" and r["ip"] == "127.0.0.1" and r["time"] for r in records)
    assert records[2]["details"]["new"] == "cat"
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "gallery.delete" in page and "gallery.upload" in page


def test_an_empty_gallery_shows_empty_pages_not_errors(admin_client) -> None:
    overview = admin_client.get("/admin/")
    assert overview.status_code == 200 and b"no collection yet" in overview.data
    gallery = admin_client.get("/admin/gallery")
    assert gallery.status_code == 200 and b"The gallery is empty" in gallery.data


def test_an_upload_over_the_size_limit_is_refused_with_the_limit(
    make_app, admin_hash, photos
) -> None:
    from tests.admin_fixtures import log_in

    # Under 500 kB in all: the test client then sends it from memory, not a temporary file.
    app = make_app(ADMIN_PASSWORD_HASH=admin_hash, MAX_CONTENT_LENGTH=100_000)
    client = app.test_client()
    log_in(client)
    archive = make_zip({f"{name}.jpg": photos[name] for name in ("coffee", "chelsea", "rocket")})
    assert 100_000 < len(archive) < 450_000
    response = upload(client, {"big.zip": archive})
    assert response.status_code == 413 and b"The upload is too large" in response.data
