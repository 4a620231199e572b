"""A generated corpus of hostile and broken uploads: never a 500, always a clear answer.

Each case is sent to the JSON API and to the HTML search page. Valid oddities
(1x1 pixel, panoramas, CMYK, 16-bit, animations, every EXIF orientation) must
search normally; everything else must be refused with a 4xx and a message.
"""

from __future__ import annotations

import io
import resource
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from tests.test_imaging import png_header

BAD, GOOD = "bad", "good"


def post_image(client, url: str, data: bytes, filename: str = "upload.jpg", **fields):  # type: ignore[no-untyped-def]
    """Upload with a pre-encoded body: the test client spools large dict bodies to a
    temporary file it never closes (a Werkzeug test-client leak, not the app's)."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    upload = FileStorage(io.BytesIO(data), filename=filename, content_type="application/octet-stream")
    boundary, body = encode_multipart({"image": upload, **fields})
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def save(image: Image.Image, fmt: str, **params) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def real_png_bomb() -> bytes:
    """A real, complete PNG of 12000x12000 black pixels: ~140 KB that decode to 432 MB."""
    width = height = 12000
    row = b"\0" + b"\0" * (width * 3)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def exif_oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(Image.new("RGB", (64, 32), (30, 120, 200)), "JPEG", exif=exif.tobytes())


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (48, 48), c) for c in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)


def palette_with_transparency() -> bytes:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 255, 255, 200, 10, 10] + [0] * 762)
    for x in range(10, 20):
        image.putpixel((x, x), 1)
    return save(image, "PNG", transparency=0)


def heic_like() -> bytes:
    # The start of an ISO-BMFF HEIC file: Pillow has no HEIC decoder here.
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200


def corpus(photo: bytes) -> dict[str, tuple[str, Callable[[], bytes]]]:
    cases: dict[str, tuple[str, Callable[[], bytes]]] = {
        "empty": (BAD, lambda: b""),
        "text": (BAD, lambda: b"just some words, not a picture\n" * 10),
        "html": (BAD, lambda: b"<!doctype html><html><script>alert(1)</script></html>"),
        "pdf": (BAD, lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        "zip": (BAD, lambda: b"PK\x05\x06" + b"\0" * 18),
        "elf-executable": (BAD, lambda: b"\x7fELF\x02\x01\x01" + b"\0" * 100),
        "windows-executable": (BAD, lambda: b"MZ\x90\x00" + b"\0" * 100),
        "svg": (BAD, lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'),
        "svg-with-xml-header": (BAD, lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        "heic": (BAD, heic_like),
        "truncated-jpeg": (BAD, lambda: photo[: len(photo) // 3]),
        "truncated-jpeg-header-only": (BAD, lambda: photo[:200]),
        "truncated-png": (BAD, lambda: save(Image.open(io.BytesIO(photo)), "PNG")[:3000]),
        "jpeg-magic-then-garbage": (BAD, lambda: b"\xff\xd8\xff\xe0" + b"\x13" * 500),
        "png-magic-then-garbage": (BAD, lambda: b"\x89PNG\r\n\x1a\n" + b"\x42" * 300),
        "gif-magic-only": (BAD, lambda: b"GIF89a"),
        "bmp-lying-header": (BAD, lambda: b"BM" + struct.pack("<IHHI", 999999, 0, 0, 54) + b"\0" * 20),
        "png-header-30000x30000": (BAD, lambda: png_header(30000, 30000)),
        "png-header-100000x1": (BAD, lambda: png_header(100000, 1000)),
        "real-png-bomb": (BAD, real_png_bomb),
        "gif-header-65535x65535": (BAD, lambda: b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0\0\0;"),
        "null-bytes": (BAD, lambda: b"\0" * 4096),
        "random-bytes": (BAD, lambda: bytes((i * 7919) % 256 for i in range(5000))),
        "tiff-magic-only": (BAD, lambda: b"II*\x00\x08\x00\x00\x00"),
        "webp-magic-only": (BAD, lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 "),
        # Valid oddities: must search normally.
        "rgb-16bit-png": (GOOD, lambda: save(Image.new("I;16", (40, 40), 40000), "PNG")),
        "cmyk-jpeg": (GOOD, lambda: save(Image.new("CMYK", (40, 40), (0, 100, 200, 10)), "JPEG")),
        "cmyk-tiff": (GOOD, lambda: save(Image.new("CMYK", (40, 40), (200, 10, 0, 0)), "TIFF")),
        "palette-with-transparency": (GOOD, palette_with_transparency),
        "la-png": (GOOD, lambda: save(Image.new("LA", (40, 40), (128, 200)), "PNG")),
        "rgba-png": (GOOD, lambda: save(Image.new("RGBA", (40, 40), (1, 2, 3, 0)), "PNG")),
        "one-bit": (GOOD, lambda: save(Image.new("1", (40, 40), 1), "PNG")),
        "grey-jpeg": (GOOD, lambda: save(Image.new("L", (40, 40), 90), "JPEG")),
        "animated-gif": (GOOD, lambda: animated("GIF")),
        "animated-webp": (GOOD, lambda: animated("WEBP")),
        "one-pixel": (GOOD, lambda: save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")),
        "panorama-10000x100": (GOOD, lambda: save(Image.new("RGB", (10000, 100), (5, 90, 5)), "JPEG")),
        "tall-100x10000": (GOOD, lambda: save(Image.new("RGB", (100, 10000), (5, 90, 5)), "PNG")),
        "bmp": (GOOD, lambda: save(Image.open(io.BytesIO(photo)).convert("RGB"), "BMP")),
        "webp": (GOOD, lambda: save(Image.open(io.BytesIO(photo)), "WEBP")),
        "corrupt-exif": (GOOD, lambda: save(Image.new("RGB", (30, 30)), "JPEG",
                                            exif=b"Exif\x00\x00II*\x00\xff\xff\xff\xff")),
        "png-named-jpg": (GOOD, lambda: save(Image.open(io.BytesIO(photo)), "PNG")),
    }
    for orientation in range(1, 9):
        cases[f"exif-orientation-{orientation}"] = (GOOD, lambda o=orientation: exif_oriented(o))
    cases["exif-orientation-invalid-99"] = (GOOD, lambda: exif_oriented(99))
    return cases


@pytest.fixture(scope="module")
def cases(photos_module) -> dict[str, tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    return {name: (kind, make()) for name, (kind, make) in corpus(photos_module).items()}


@pytest.fixture(scope="module")
def photos_module() -> bytes:
    from skimage import data

    return save(Image.fromarray(data.coffee()), "JPEG", quality=90)


@pytest.fixture
def searchable(client, runner, gallery_dir):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["gallery", "add", str(gallery_dir)])
    assert result.exit_code == 0, result.output
    return client


def test_the_corpus_is_large_enough(cases) -> None:  # type: ignore[no-untyped-def]
    assert len(cases) >= 50


def test_every_case_gets_a_clear_answer_and_never_a_500(searchable, cases) -> None:  # type: ignore[no-untyped-def]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (kind, data) in cases.items():
        for url in ("/api/search", "/search"):
            response = post_image(searchable, url, data, k="3")
            if kind == GOOD:
                assert response.status_code == 200, (name, url, response.get_data(as_text=True)[:300])
                if url == "/api/search":
                    assert len(response.get_json()["results"]) == 3, name
            else:
                assert 400 <= response.status_code < 500, (name, url, response.status_code)
                text = response.get_data(as_text=True)
                assert "Traceback" not in text
                if url == "/api/search":
                    message = response.get_json()["error"]["message"]
                    assert len(message) > 15, (name, message)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB: a bomb was decoded"


def test_bombs_are_refused_as_too_large(searchable, cases) -> None:  # type: ignore[no-untyped-def]
    for name in ("png-header-30000x30000", "png-header-100000x1", "real-png-bomb"):
        response = post_image(searchable, "/api/search", cases[name][1], "b.png")
        assert response.status_code == 413, name
        assert "pixels" in response.get_json()["error"]["message"]


def test_heic_is_reported_as_an_unsupported_format(searchable, cases) -> None:  # type: ignore[no-untyped-def]
    response = post_image(searchable, "/api/search", cases["heic"][1], "p.heic")
    assert response.status_code == 400
    assert response.get_json()["error"]["title"] == "Unsupported image format"


@pytest.mark.parametrize("body, content_type", [
    (b"--wrong\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nxx\r\n--wrong--\r\n",
     "multipart/form-data; boundary=right"),
    (b"no multipart at all", "multipart/form-data"),
    (b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n", "multipart/form-data; boundary=b"),
    (b"{\"image\": \"x\"}", "application/json"),
    (b"", "multipart/form-data; boundary=b"),
])
def test_malformed_requests_are_400s(searchable, body: bytes, content_type: str) -> None:  # type: ignore[no-untyped-def]
    for url in ("/api/search", "/search"):
        response = searchable.post(url, data=body, content_type=content_type)
        assert response.status_code == 400, (url, response.status_code)


@pytest.mark.parametrize("k", ["0", "-1", "101", "99999999999999999999", "abc", "1.5", " ", "NaN", "0x10"])
def test_bad_k_values_are_400s(searchable, photos_module, k: str) -> None:  # type: ignore[no-untyped-def]
    response = post_image(searchable, "/api/search", photos_module, k=k)
    assert response.status_code in (200, 400), k  # " " means "default"
    if k.strip():
        assert response.status_code == 400, k


@pytest.mark.parametrize("key", ["../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "a" * 64 + ".jpg%00.png",
                                 "a" * 5000, "ü" * 64 + ".jpg", "%00", "a" * 64 + ".jpg/../x",
                                 "A" * 64 + ".JPG", "a" * 63 + ".jpg", "a" * 64 + ".svg", "a" * 64 + ".html"])
def test_hostile_keys_are_404s(searchable, key: str) -> None:  # type: ignore[no-untyped-def]
    for url in (f"/images/{key}", f"/thumbs/{key}", f"/api/search?key={key}", f"/search?key={key}"):
        response = searchable.get(url)
        assert response.status_code == 404, (url, response.status_code)
