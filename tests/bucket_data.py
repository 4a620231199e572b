"""Objects for the bucket tests: small distinct JPEGs, written to a real S3 server."""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from minio import Minio
from PIL import Image


def jpeg(seed: int, size: int = 48) -> bytes:
    """A small JPEG whose content differs for every seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((size, size), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def put(
    client: Minio, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None
) -> None:
    client.put_object(
        bucket, key, io.BytesIO(data), len(data), content_type="image/jpeg", metadata=metadata
    )


def put_many(client: Minio, bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
    for key, data in objects:
        put(client, bucket, key, data)
