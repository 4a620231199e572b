"""Two galleries with different models on one real Milvus Lite: searches stay in their
gallery and use its model, a reindex of one does not disturb the other, deletes do not
break the other, unknown galleries are a 404 with the known names, the CLI."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest

from app.jobs.state import JobRunning, JobState, acquire, release
from tests.admin_fixtures import log_in

pytest_plugins = ["tests.admin_fixtures"]

DEFAULT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SHOES_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "rocket")  # rocket: in both


def folder(root: Path, photos: dict[str, bytes], names: tuple[str, ...]) -> Path:
    root.mkdir(parents=True)
    for name in names:
        (root / f"{name}.jpg").write_bytes(photos[name])
    return root


def cli(app, *args: str, ok: bool = True, **kwargs):  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(args=list(args), **kwargs)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def two(admin_app, mobilenet_dir: Path, photos, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The default gallery (tiny test model) and "shoes" (MobileNetV2), filled by the CLI."""
    cli(admin_app, "gallery", "create", "shoes", "--title", "Shoes", "--model", str(mobilenet_dir))
    cli(admin_app, "gallery", "add", str(folder(tmp_path / "d", photos, DEFAULT_PHOTOS)))
    cli(
        admin_app,
        "gallery",
        "add",
        "--gallery",
        "shoes",
        str(folder(tmp_path / "s", photos, SHOES_PHOTOS)),
    )
    return admin_app


def default_name(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.config["COLLECTION"])


def keys_of(app, gallery: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """source file name -> key, for every image of ``gallery``."""
    from app.extensions import vectors
    from app.galleries.current import use

    with app.app_context():
        use(gallery)
        return {e.metadata["source"][:-4]: e.key for e in vectors().iterate()}


def search(client, data: bytes, gallery: str, k: int = 10):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/search?gallery={gallery}",
        data={"image": (io.BytesIO(data), "q.jpg"), "k": str(k)},
        content_type="multipart/form-data",
    )


def test_alternating_searches_stay_in_their_gallery_and_use_its_model(
    two, photos, mobilenet_dir: Path
) -> None:
    client = two.test_client()
    galleries = {default_name(two): keys_of(two, default_name(two)), "shoes": keys_of(two, "shoes")}
    assert set(galleries["shoes"]) == set(SHOES_PHOTOS)
    health = {name: client.get(f"/api/health?gallery={name}").get_json() for name in galleries}
    assert health["shoes"]["model"]["id"] == str(mobilenet_dir)
    assert health["shoes"]["model"]["dim"] == 1280
    assert health[default_name(two)]["model"]["dim"] == 64
    assert health["shoes"]["milvus"]["gallery_size"] == 3
    names = list(photos)
    for i in range(200):
        gallery = default_name(two) if i % 2 else "shoes"
        photo = names[(i // 2) % len(names)]
        response = search(client, photos[photo], gallery)
        assert response.status_code == 200, response.get_data(as_text=True)
        results = response.get_json()["results"]
        assert {r["key"] for r in results} <= set(galleries[gallery].values())
        assert len(results) == len(galleries[gallery])
        if photo in galleries[gallery]:  # found itself: the query went through its model
            assert results[0]["key"] == galleries[gallery][photo]
            assert results[0]["score"] >= 0.99


def test_the_pages_of_a_gallery_keep_its_links(two, photos) -> None:
    client = two.test_client()
    home = client.get("/").get_data(as_text=True)
    assert 'id="gallery-chooser"' in home and 'href="/g/shoes/"' in home
    page = client.get("/g/shoes/").get_data(as_text=True)
    assert "Search 3 gallery images" in page and 'action="/g/shoes/search"' in page
    results = client.post(
        "/g/shoes/search",
        data={"image": (io.BytesIO(photos["hubble_deep_field"]), "q.jpg"), "k": "3"},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    more = re.findall(r'href="(/[^"]*search\?key=[^"]+)"', results)
    assert more and all(link.startswith("/g/shoes/search?key=") for link in more)
    by_key = client.get(more[0].replace("&amp;", "&"))
    assert by_key.status_code == 200 and "More like this" in by_key.get_data(as_text=True)
    assert (
        client.get("/search?key=" + keys_of(two, "shoes")["hubble_deep_field"]).status_code == 404
    )  # not in the default gallery


def test_unknown_galleries_are_a_404_that_names_the_known_ones(two, photos) -> None:
    client = two.test_client()
    for response in (
        search(client, photos["coffee"], "nope"),
        client.get("/api/labels?gallery=nope"),
        client.get("/api/search?gallery=nope&key=x"),
    ):
        assert response.status_code == 404
        error = response.get_json()["error"]
        assert error["galleries"] == [default_name(two), "shoes"]
        assert "shoes" in error["message"]
    log_in(client)  # admin pages check the login first
    for url in ("/g/nope/", "/g/Bad_Name/search?key=x", "/admin/g/nope/gallery"):
        page = client.get(url)
        assert page.status_code == 404 and "shoes" in page.get_data(as_text=True)


def test_labels_are_per_gallery(two, tmp_path: Path, photos) -> None:
    cli(
        two,
        "gallery",
        "add",
        "--gallery",
        "shoes",
        "--label-from-folder",
        str(folder(tmp_path / "labelled" / "boots", photos, ("coffee",))),
    )
    two.extensions["lookalike.labels"].ttl = 0
    client = two.test_client()
    shoes = client.get("/api/labels?gallery=shoes").get_json()["labels"]
    assert shoes == [{"label": "boots", "count": 1}]
    assert client.get("/api/labels").get_json()["labels"] == []


def test_reindexing_one_gallery_while_both_are_searched_fails_no_search(two, photos) -> None:
    from app.galleries.current import job_files, use
    from app.jobs import launch

    outcome: list[JobState] = []

    def reindex_shoes() -> None:
        with two.app_context():
            use("shoes")
            outcome.append(launch.run_here(two, "reindex", user="tester", batch_size=1))

    client = two.test_client()
    job = threading.Thread(target=reindex_shoes)
    job.start()
    failures, during = [], 0
    names = list(photos)
    while job.is_alive() or during < 2:
        for gallery in (default_name(two), "shoes"):
            photo = names[during % len(names)]
            response = search(client, photos[photo], gallery, k=3)
            if response.status_code != 200:
                failures.append(response.get_data(as_text=True)[:200])
        during += 1
    job.join()
    assert outcome[0].phase == "done", outcome[0].error
    assert failures == [] and during >= 2
    with two.app_context():
        use("shoes")
        assert job_files().last_success().id == outcome[0].id
        assert not job_files(two, default_name(two)).last_success()  # the other untouched
    assert outcome[0].model.endswith("mobilenet_v2_1.0_224")


def test_only_one_reindex_runs_at_a_time_on_a_machine(two) -> None:
    from app.galleries.current import job_files, use
    from app.jobs import launch

    files = job_files(two, default_name(two))
    files.write(JobState(id="busy", phase="encoding", done=1, total=4, user="alice", started=1.0))
    fd = acquire(files.lock)  # as the default gallery's running job holds it
    try:
        with two.app_context():
            use("shoes")
            with pytest.raises(JobRunning, match=f"Gallery '{default_name(two)}': A reindex"):
                launch.run_here(two, "reindex", user="bob")
        admin = two.test_client()
        log_in(admin)
        page = admin.post("/admin/g/shoes/reindex", follow_redirects=True)
        assert "Only one reindex runs at a time" in page.get_data(as_text=True)
        result = cli(two, "index", "rebuild", "--gallery", "shoes", ok=False)
        assert result.exit_code == 1 and "Only one reindex runs at a time" in result.output
    finally:
        release(fd)


def test_deleting_a_gallery_keeps_the_others_and_the_shared_files(two, photos) -> None:
    shoes = keys_of(two, "shoes")
    admin = two.test_client()
    log_in(admin)
    confirm = admin.get("/admin/galleries/shoes/delete").get_data(as_text=True)
    assert "<strong>3</strong> images" in confirm
    assert admin.post("/admin/galleries/shoes/delete").status_code == 303
    assert 'data-gallery="shoes"' not in admin.get("/admin/galleries/").get_data(as_text=True)
    client = two.test_client()
    assert search(client, photos["hubble_deep_field"], "shoes").status_code == 404
    body = search(client, photos["coffee"], default_name(two)).get_json()
    assert body["results"][0]["score"] >= 0.99 and len(body["results"]) == 4
    assert client.get(f"/images/{shoes['rocket']}").status_code == 200  # the default's too
    for name in ("hubble_deep_field", "immunohistochemistry"):  # only shoes held these
        assert client.get(f"/images/{shoes[name]}").status_code == 404
        assert client.get(f"/thumbs/{shoes[name]}").status_code == 404
    assert "Consistent." in cli(two, "gallery", "check").output  # nothing left behind
    with two.app_context():
        from app.extensions import servings

        names = servings().base.client.list_collections()
    assert not [n for n in names if n.startswith(f"{default_name(two)}__shoes")]
    assert client.get("/").status_code == 200 and b"gallery-chooser" not in client.get("/").data
    with pytest.raises(AssertionError):  # the default gallery cannot be deleted
        cli(two, "gallery", "delete", default_name(two), "--yes")


def test_an_image_in_two_galleries_deleted_from_one_is_still_served_by_the_other(
    two, photos
) -> None:
    rocket = keys_of(two, "shoes")["rocket"]
    assert keys_of(two, default_name(two))["rocket"] == rocket
    admin = two.test_client()
    log_in(admin)
    image_id = rocket.split(".")[0]
    done = admin.post(f"/admin/g/shoes/gallery/{image_id}/delete", follow_redirects=True)
    assert f"{default_name(two)} holds it too" in done.get_data(as_text=True)
    client = two.test_client()
    assert "rocket" not in keys_of(two, "shoes")
    assert client.get(f"/images/{rocket}").status_code == 200
    body = search(client, photos["rocket"], default_name(two)).get_json()
    assert body["results"][0]["key"] == rocket and body["results"][0]["score"] >= 0.99
    assert client.get(f"/search?key={rocket}").status_code == 200
    # Deleted from the last gallery that held it, its files go.
    admin.post(f"/admin/gallery/{image_id}/delete")
    assert client.get(f"/images/{rocket}").status_code == 404


def test_admin_uploads_go_to_the_gallery_of_the_page(two, photos) -> None:
    from tests.admin_fixtures import jpeg

    admin = two.test_client()
    log_in(admin)
    page = admin.post(
        "/admin/g/shoes/gallery/upload",
        data={"files": [(io.BytesIO(jpeg(5)), "new.jpg")]},
        content_type="multipart/form-data",
    )
    assert page.status_code == 200
    assert "new" in keys_of(two, "shoes") and "new" not in keys_of(two, default_name(two))
    listing = admin.get("/admin/g/shoes/gallery").get_data(as_text=True)
    assert 'href="/admin/g/shoes/gallery/' in listing and "4" in listing
    overview = admin.get("/admin/g/shoes/").get_data(as_text=True)
    assert "mobilenet_v2_1.0_224" in overview


def test_the_cli_lists_checks_and_inspects_each_gallery(two, mobilenet_dir: Path) -> None:
    listing = cli(two, "gallery", "list").output
    assert f"{default_name(two)} (default)" in listing and "4 images" in listing
    assert "shoes\tShoes" in listing and "3 images" in listing
    status = cli(two, "index", "status", "--gallery", "shoes").output
    assert f"{default_name(two)}__shoes ->" in status and str(mobilenet_dir) in status
    assert "dimension:   1280" in status
    # The store is shared: the other gallery's originals are not unfinished adds here.
    assert "Consistent." in cli(two, "gallery", "check", "--gallery", "shoes").output
    assert "Consistent." in cli(two, "gallery", "check").output
    unknown = cli(two, "gallery", "check", "--gallery", "nope", ok=False)
    assert unknown.exit_code == 1 and "Known galleries" in unknown.output
    bad = cli(two, "gallery", "create", "No_Good", ok=False)
    assert bad.exit_code == 1 and "not a gallery name" in bad.output
    kept = cli(two, "gallery", "delete", "shoes", ok=False, input="n\n")
    assert kept.exit_code == 1 and "shoes" in cli(two, "gallery", "list").output
    cli(two, "gallery", "delete", "shoes", "--yes")
    assert "shoes" not in cli(two, "gallery", "list").output


def test_gallery_admin_pages_require_a_login(two) -> None:
    client = two.test_client()
    for method, url in [("GET", "/admin/galleries/"), ("POST", "/admin/galleries/"),
                        ("GET", "/admin/galleries/shoes/delete"),
                        ("POST", "/admin/galleries/shoes/delete"),
                        ("POST", "/admin/galleries/shoes/title"),
                        ("GET", "/admin/g/shoes/gallery"), ("GET", "/admin/g/nope/")]:
        response = client.open(url, method=method)
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/admin/login")
    assert "shoes" in cli(two, "gallery", "list").output  # nothing was deleted


def test_the_admin_creates_and_retitles_galleries_and_refuses_bad_names(admin_app) -> None:
    admin = admin_app.test_client()
    log_in(admin)
    made = admin.post("/admin/galleries/", data={"name": "client-7", "title": "Client seven"})
    assert made.status_code == 303
    page = admin.get("/admin/galleries/").get_data(as_text=True)
    assert 'data-gallery="client-7"' in page and "Client seven" in page
    bad = admin.post("/admin/galleries/", data={"name": "No Good", "title": "x"})
    assert bad.status_code == 400 and "lower-case letters" in bad.get_data(as_text=True)
    twice = admin.post("/admin/galleries/", data={"name": "client-7"}, follow_redirects=True)
    assert twice.status_code == 400 and "exists already" in twice.get_data(as_text=True)
    assert admin.post("/admin/galleries/client-7/title", data={"title": "Seven"}).status_code == 303
    search_page = admin_app.test_client().get("/g/client-7/").get_data(as_text=True)
    assert 'id="gallery-title"' in search_page and "Seven" in search_page
    listing = cli(admin_app, "gallery", "list").output
    assert "client-7\tSeven\tmodel " + str(admin_app.config["MODEL"]) in listing
    assert "0 images" in listing and "empty" in listing
