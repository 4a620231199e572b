"""Content keys and the object names made from them, defined once.

An image's key is ``<sha256>.<ext>``: the hash of its bytes (also its row id in
the vector collection) and the extension of its real format. In the image store
the original is ``images/<key>`` and the thumbnail ``thumbs/<sha256>.jpg``.
Anything taken from a request is checked against these patterns before it is
used as a name, so it can never reach another file or object.
"""

from __future__ import annotations

import re

from app.exceptions import BadRequest
from app.gallery.imaging import FORMATS

ORIGINALS = "images/"
THUMBS = "thumbs/"
_ID = r"[0-9a-f]{64}"
_KEY = rf"{_ID}\.(?:{'|'.join(FORMATS.values())})"
ID_PATTERN = re.compile(_ID)
KEY_PATTERN = re.compile(_KEY)
NAME_PATTERN = re.compile(rf"{ORIGINALS}{_KEY}|{THUMBS}{_ID}\.jpg")


def is_valid_id(id_: str) -> bool:
    """Whether ``id_`` is a content hash (a row id), and nothing else."""
    return isinstance(id_, str) and bool(ID_PATTERN.fullmatch(id_))


def is_valid_key(key: str) -> bool:
    """Whether ``key`` is a content hash plus one of our extensions, and nothing else."""
    return isinstance(key, str) and bool(KEY_PATTERN.fullmatch(key))


def is_stored_name(name: str) -> bool:
    """Whether ``name`` is an original's or a thumbnail's object name."""
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name))


def key_id(key: str) -> str:
    """The content hash of a key: the id of its row in the vector collection."""
    return _checked(key).partition(".")[0]


def original_name(key: str) -> str:
    """The object name of a gallery original, from its content key."""
    return ORIGINALS + _checked(key)


def thumb_name(key: str) -> str:
    """The object name of an image's thumbnail; thumbnails are always JPEG."""
    return f"{THUMBS}{key_id(key)}.jpg"


def _checked(key: str) -> str:
    if not is_valid_key(key):
        raise BadRequest("This is not a valid image key.")
    return key
