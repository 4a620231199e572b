"""End to end: the CLI ingests a gallery, the pages and the JSON API search it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.test_encoder import recompressed_crop


def add_gallery(runner, gallery_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["gallery", "add", str(gallery_dir), "--label-from-folder"])
    assert result.exit_code == 0, result.output
    assert "Added 6" in result.output


def upload(client, data: bytes, k: int | str = 10, url: str = "/api/search"):  # type: ignore[no-untyped-def]
    return client.post(url, data={"image": (io.BytesIO(data), "query.jpg"), "k": str(k)},
                       content_type="multipart/form-data")


def test_every_gallery_image_finds_itself_first(client, runner, gallery_dir: Path, photos) -> None:
    add_gallery(runner, gallery_dir)
    for name, data in photos.items():
        body = upload(client, data, k=3).get_json()
        top = body["results"][0]
        assert top["metadata"]["source"] == f"{name}.jpg"
        assert top["score"] >= 0.99
        assert set(body["timings_ms"]) == {"decode", "embed", "search", "total"}


def test_results_carry_links_labels_and_ranks(client, runner, gallery_dir: Path, photos) -> None:
    add_gallery(runner, gallery_dir)
    results = upload(client, photos["rocket"], k=4).get_json()["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    assert results[0]["label"] == "space"
    assert client.get(results[0]["thumb_url"]).status_code == 200
    image = client.get(results[0]["image_url"])
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert image.data == photos["rocket"]


def test_more_like_this_searches_by_key_and_leaves_the_query_out(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    body = client.get(f"/api/search?key={key}&k=5").get_json()
    assert len(body["results"]) == 5 and key not in {r["key"] for r in body["results"]}
    page = client.get(f"/search?key={key}&k=5")
    assert page.status_code == 200 and b"More like this" in page.data


def test_the_search_page_shows_a_ranked_grid(client, runner, gallery_dir: Path, photos) -> None:
    add_gallery(runner, gallery_dir)
    query = {"image": (io.BytesIO(photos["chelsea"]), "cat.jpg"), "k": "5"}
    page = client.post("/search", data=query, content_type="multipart/form-data")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="card"') == 5
    assert re.search(r'class="score"[^>]*>1\.000<', html)
    assert "data:image/jpeg;base64," in html


def test_the_empty_gallery_page_says_how_to_add_images(client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert b"gallery add" in page.data
    assert b'enctype="multipart/form-data"' in page.data and b'accept="image/*"' in page.data


@pytest.mark.slow
def test_a_recompressed_cropped_copy_finds_its_original(
    make_app, mobilenet_dir, gallery_dir, photos
) -> None:
    app = make_app(MODEL=str(mobilenet_dir))
    client, runner = app.test_client(), app.test_cli_runner()
    add_gallery(runner, gallery_dir)
    for name, data in photos.items():
        top = upload(client, recompressed_crop(data), k=1).get_json()["results"][0]
        assert top["metadata"]["source"] == f"{name}.jpg", name


def test_index_status_describes_the_collection(runner, gallery_dir: Path) -> None:
    add_gallery(runner, gallery_dir)
    output = runner.invoke(args=["index", "status"]).output
    assert "rows:        6" in output and "HNSW COSINE" in output and "dimension:   64" in output


def test_health_reports_model_milvus_and_storage(client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"]["dim"] == 64 and body["model"]["dtype"] == "float32"
    assert body["milvus"] == {"mode": "lite", "reachable": True,
                              "collection": body["milvus"]["collection"], "gallery_size": 0}
    assert body["storage"] == {"backend": "local", "reachable": True}


def test_a_jpeg_with_a_png_name_and_a_png_upload_both_work(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(photos["coffee"])).save(buffer, format="PNG")
    assert upload(client, buffer.getvalue(), k=1).get_json()["results"][0]["score"] > 0.95
