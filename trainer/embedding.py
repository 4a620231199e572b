"""Embedding a list of samples through the app's encoder, with decoding overlapped."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from app.gallery.prefetch import prefetch
from app.model.encoder import Encoder
from trainer.data import Sample, load_image


def embed_samples(encoder: Encoder, samples: list[Sample], *, desc: str = "embedding"
                  ) -> np.ndarray:
    """(n, dim) vectors, each distinct path embedded once; decode and preprocess run ahead."""
    paths = list(dict.fromkeys(s.path for s in samples))
    size = encoder.batch_size
    starts = range(0, len(paths), size)
    # prepare(), not preprocess(): no torch op on the prefetch thread (app/model/main_thread.py).
    pixels = prefetch(encoder.preprocess.prepare([load_image(p) for p in paths[s : s + size]])
                      for s in starts)
    chunks = [encoder.embed_prepared(batch)
              for batch in tqdm(pixels, total=len(starts), desc=desc, unit="batch", mininterval=2)]
    unique = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
    index = {p: i for i, p in enumerate(paths)}
    return unique[[index[s.path] for s in samples]]
