"""Suite 7: a product pasted into another photo, found with and without a box.

Each case pastes a gallery photo (Grocery train) at about 40% of the area into a
photo of another product (Grocery test), at a random place, and searches with the
whole composite and with the box around the pasted region, through the app's own
path (``find_similar``: decode, crop, ``Encoder.embed``, ``VectorStore.search``)
on a throwaway Milvus Lite collection. Reported: how often the pasted photo
comes back at rank 1 either way.
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.model.encoder import Encoder
from app.search.query import Box, SearchQuery
from app.search.service import find_similar
from app.vectors.records import Entry, ModelStamp
from app.vectors.store import VectorStore
from bench.data import grocery_split

AREA = 0.4


def run(model_dir: Path, *, uri: str, cases: int, gallery_size: int, seed: int = 18
        ) -> dict[str, Any]:
    from app.vectors.connect import open_client

    gallery = grocery_split("train", gallery_size)
    backgrounds = grocery_split("test")
    if not gallery or not backgrounds:
        return {"skipped": "the Grocery photos are not in ../shared/datasets"}
    encoder = Encoder.from_pretrained(str(model_dir), precision="fp32")
    client, _ = open_client(uri, timeout=120)
    store = VectorStore(client, f"box{seed}", lite=True, timeout=120.0)
    name = store.create_collection(ModelStamp(encoder.name, encoder.fingerprint, encoder.dim))
    try:
        images = [Image.open(path).convert("RGB") for path, _ in gallery]
        vectors = np.concatenate([encoder.embed(images[i:i + 32])
                                  for i in range(0, len(images), 32)])
        store.upsert([Entry(f"{i:064x}", vectors[i], str(i), str(label))
                      for i, (_, label) in enumerate(gallery)], name)
        store.wait_for_index(name, serving=False)
        pinned = VectorStore(client, name, lite=True, timeout=120.0)
        rng = random.Random(seed)
        whole = boxed = 0
        for target in rng.sample(range(len(gallery)), cases):
            composite, box = _paste(images[target], gallery[target][1], backgrounds, rng)
            whole += _top(composite, SearchQuery(k=1), encoder, pinned) == str(target)
            boxed += _top(composite, SearchQuery(k=1, box=box), encoder, pinned) == str(target)
        return {"cases": cases, "gallery": len(gallery), "area": AREA,
                "model": Path(encoder.name).name,
                "rank1_whole": whole / cases, "rank1_box": boxed / cases}
    finally:
        client.drop_collection(name)
        client.close()


def _top(data: bytes, query: SearchQuery, encoder: Encoder, store: VectorStore) -> str:
    result = find_similar(data, query, encoder=encoder, vectors=store, max_pixels=50_000_000)
    return result.matches[0].key


def _paste(image: Image.Image, label: int, backgrounds: list[tuple[Path, int]],
           rng: random.Random) -> tuple[bytes, Box]:
    """``image`` pasted at AREA of a photo of another product; JPEG bytes and the box."""
    path = rng.choice([p for p, other in backgrounds if other != label])
    canvas = Image.open(path).convert("RGB")
    width, height = canvas.size
    side = math.sqrt(AREA)
    w, h = round(width * side), round(height * side)
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    canvas.paste(image.resize((w, h), Image.Resampling.BICUBIC), (x, y))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), Box(x / width, y / height, (x + w) / width, (y + h) / height)
