"""Validation after each epoch: leave-one-out Recall@K and mAP@R on the validation split.

Images are embedded through the app's own ``Encoder`` (same preprocessing, same
pooling, same head call, same normalisation), so validation measures the model
the app will serve. In the head regime the backbone features of the validation
images are computed once and only the head runs each epoch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from app.model.encoder import Encoder
from trainer import metrics
from trainer.batches import backbone_features
from trainer.data import load_image
from trainer.model import EmbeddingModel

if TYPE_CHECKING:
    from trainer.setup import Setup


class Validator:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.samples = setup.dataset.val
        self.labels = np.array([s.label for s in self.samples])
        self.cached: torch.Tensor | None = None

    def run(self, model: EmbeddingModel) -> dict[str, Any]:
        if len(self.samples) < 2:
            return {}
        started = time.monotonic()
        vectors = self.embed(model)
        scores = leave_one_out(vectors, self.labels)
        return {**{f"val_{k}": round(v, 5) for k, v in scores.items()},
                "val_s": round(time.monotonic() - started, 1)}

    def embed(self, model: EmbeddingModel) -> np.ndarray:
        setup = self.setup
        if setup.config.regime == "head":
            if self.cached is None:
                self.cached = backbone_features(
                    setup.features, lambda i: load_image(self.samples[i].path),
                    len(self.samples), setup.preprocess, desc="validation features")
            with torch.inference_mode():
                return model.embed_features(self.cached.to(setup.device)).cpu().numpy()
        # Autocast, never bf16 weights: the Encoder would cast the training weights in place.
        encoder = Encoder(model.backbone, setup.preprocess, head=model.head, device=setup.device,
                          precision="bf16-autocast" if setup.bf16 else "fp32")
        return encoder.embed([load_image(s.path) for s in self.samples])


def leave_one_out(vectors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Each image queries all the others; images alone with their label are not queries."""
    counts = {label: int((labels == label).sum()) for label in set(labels.tolist())}
    r = np.array([counts[label] - 1 for label in labels])
    queries = np.flatnonzero(r > 0)
    if len(queries) == 0:
        return {}
    depth = int(max(r.max(), max(metrics.KS)))
    ranked = metrics.exact_search(vectors[queries], vectors, depth, exclude=queries)
    relevant = labels[ranked] == labels[queries][:, None]
    return metrics.summary(relevant, r[queries])
