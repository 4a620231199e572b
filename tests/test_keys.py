"""Content keys: one pattern, parsed in one place."""

from __future__ import annotations

import pytest

from app.exceptions import BadRequest
from app.gallery import keys
from app.gallery.imaging import content_hash

KEY = f"{content_hash(b'abc')}.png"
BAD_KEYS = ["../etc/passwd", KEY.upper(), KEY + "\x00", "a" * 64 + ".exe", KEY[1:], KEY + "/",
            "", "a" * 64, "../x.png", "abc.png"]


def test_keys_are_content_hashes_and_validated() -> None:
    assert keys.original_name(KEY) == f"images/{KEY}"
    assert KEY == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.png"
    assert keys.is_valid_key(KEY)
    for bad in BAD_KEYS:
        assert not keys.is_valid_key(bad)


def test_every_format_we_accept_makes_a_valid_key() -> None:
    from app.gallery.imaging import FORMATS

    for extension in FORMATS.values():
        assert keys.is_valid_key(f"{'0' * 64}.{extension}")


def test_the_id_of_a_key_is_its_content_hash() -> None:
    assert keys.key_id(KEY) == content_hash(b"abc")
    assert keys.is_valid_id(keys.key_id(KEY))
    assert not keys.is_valid_id(KEY) and not keys.is_valid_id("../" + "a" * 61)


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_names_are_made_only_from_valid_keys(bad: str) -> None:
    for make in (keys.key_id, keys.original_name, keys.thumb_name):
        with pytest.raises(BadRequest):
            make(bad)


def test_stored_names_are_originals_and_jpeg_thumbnails_only() -> None:
    assert keys.is_stored_name(keys.original_name(KEY))
    assert keys.is_stored_name(keys.thumb_name(KEY))
    assert keys.thumb_name(KEY) == f"thumbs/{content_hash(b'abc')}.jpg"
    for bad in (f"thumbs/{KEY}", f"thumbs/{content_hash(b'abc')}.webp", f"images/{KEY}/x", KEY):
        assert not keys.is_stored_name(bad)
