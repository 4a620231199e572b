"""A box searches with a region of the photo: the crop after EXIF orientation."""

from __future__ import annotations

import io

from PIL import Image

from tests.test_search import add_gallery

BOX = "0.25,0.125,0.75,0.625"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def crop(image: Image.Image) -> Image.Image:
    """BOX in pixels, each edge rounded to the nearest pixel."""
    w, h = image.size
    return image.crop((round(w * 0.25), round(h * 0.125), round(w * 0.75), round(h * 0.625)))


def post(client, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    form = {"image": (io.BytesIO(data), "q.png"), "k": "5", **fields}
    response = client.post("/api/search", data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def ranked(body) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return [(r["key"], r["score"]) for r in body["results"]]


def test_an_upload_with_a_box_searches_the_region(client, runner, gallery_dir, photos) -> None:
    add_gallery(runner, gallery_dir)
    whole = Image.open(io.BytesIO(photos["astronaut"])).convert("RGB")
    boxed = post(client, png(whole), box=BOX)
    assert ranked(boxed) == ranked(post(client, png(crop(whole))))
    assert ranked(boxed) != ranked(post(client, png(whole)))
    assert boxed["query"]["box"] == [0.25, 0.125, 0.75, 0.625]


def test_the_box_applies_after_exif_orientation(client, runner, gallery_dir, photos) -> None:
    add_gallery(runner, gallery_dir)
    upright = Image.open(io.BytesIO(photos["chelsea"])).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # Orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    assert ranked(post(client, buffer.getvalue(), box=BOX)) == \
        ranked(post(client, png(crop(upright))))


def test_a_box_on_a_gallery_key_searches_that_images_region(
    client, runner, gallery_dir, photos
) -> None:
    add_gallery(runner, gallery_dir)
    key = post(client, photos["rocket"])["results"][0]["key"]
    by_key = client.get(f"/api/search?key={key}&k=4&box={BOX}").get_json()
    region = crop(Image.open(io.BytesIO(photos["rocket"])).convert("RGB"))
    by_upload = [hit for hit in ranked(post(client, png(region))) if hit[0] != key]
    assert ranked(by_key) == by_upload[:4]
