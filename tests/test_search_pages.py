"""The search pages offer the filters without JavaScript: labels, min score, paging."""

from __future__ import annotations

import html
import io
import re
from urllib.parse import parse_qsl, urlsplit

from tests.test_search import add_gallery, upload


def links(page: str, cls: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'<a class="{cls}" href="([^"]+)"', page)]


def test_the_search_page_offers_the_labels_with_their_counts(client, runner, gallery_dir) -> None:
    add_gallery(runner, gallery_dir)
    page = client.get("/").get_data(as_text=True)
    assert '<option value="space">space (3)</option>' in page
    assert '<option value="other">other (3)</option>' in page
    assert 'name="min_score"' in page and 'name="per_label"' in page


def test_a_key_search_pages_with_a_link_that_keeps_every_parameter(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    page = client.get(f"/search?key={key}&k=2&label=other&label=space&min_score=0")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and text.count('class="card"') == 2
    more = links(text, "more-results")
    assert len(more) == 1
    params = parse_qsl(urlsplit(more[0]).query)
    assert ("offset", "2") in params and ("key", key) in params
    assert ("label", "other") in params and ("label", "space") in params
    assert ("min_score", "0") in params
    second = client.get(more[0]).get_data(as_text=True)
    assert second.count('class="card"') == 2 and '<ol class="grid" start="3">' in second


def test_each_active_filter_has_a_link_that_removes_only_it(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    text = client.get(f"/search?key={key}&label=space&min_score=0.1&offset=0").get_data(
        as_text=True)
    removals = [dict(parse_qsl(urlsplit(u).query)) for u in links(text, "remove-filter")]
    assert {"key": key, "k": "10", "min_score": "0.1"} in removals  # the label removed
    assert {"key": key, "k": "10", "label": "space"} in removals  # the min score removed
    assert "label: space" in text and "score ≥ 0.1" in text


def test_an_upload_results_page_reposts_for_more_results(client, runner, gallery_dir, photos):
    add_gallery(runner, gallery_dir)
    query = {"image": (io.BytesIO(photos["rocket"]), "q.jpg"), "k": "2", "label": "space"}
    text = client.post("/search", data=query, content_type="multipart/form-data").get_data(
        as_text=True)
    more = re.search(r'<form class="repost more-results".*?</form>', text, re.S)
    assert more is not None
    assert '<input type="hidden" name="offset" value="2">' in more.group(0)
    assert '<input type="hidden" name="label" value="space">' in more.group(0)
    assert 'type="file" name="image"' in more.group(0)


def test_an_empty_result_says_why(client, runner, gallery_dir, photos) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    nothing = client.get(f"/search?key={key}&label=nobody").get_data(as_text=True)
    assert "No results: No gallery image matches the filters." in nothing
    too_high = client.get(f"/search?key={key}&min_score=0.9999").get_data(as_text=True)
    assert "No image reaches the minimum score of 0.9999." in too_high


def test_a_bad_filter_on_the_page_is_a_400_page(client, runner, gallery_dir, photos) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    page = client.get(f"/search?key={key}&min_score=2")
    assert page.status_code == 400 and b"min_score must be" in page.data


def test_a_metadata_filter_is_kept_by_the_refine_form_and_shown(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    key = upload(client, photos["coffee"], k=1).get_json()["results"][0]["key"]
    text = client.get("/search", query_string={
        "key": key, "metadata": '{"source": ["rocket.jpg", "chelsea.jpg"]}'}).get_data(
            as_text=True)
    hidden = re.search(r'<input type="hidden" name="metadata" value="([^"]+)">', text)
    assert hidden and html.unescape(hidden.group(1)) == '{"source": ["rocket.jpg", "chelsea.jpg"]}'
    assert text.count('class="card"') == 2
    assert "source: [&#34;rocket.jpg&#34;, &#34;chelsea.jpg&#34;]" in text
