"""Loss and miner, built by name from pytorch-metric-learning.

The training step reads ``pairs = miner(emb, labels); loss = loss_fn(emb, labels, pairs)``
whatever the choice. Distances are cosine similarities, the metric the app
searches with.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytorch_metric_learning import distances, losses, miners
from torch import nn

LOSSES = ("triplet", "multisimilarity", "arcface")


@dataclass
class Criterion:
    """A loss and its (optional) miner; ``loss`` may hold weights of its own (ArcFace)."""

    loss: nn.Module
    miner: nn.Module | None

    def __call__(self, embeddings, labels):  # type: ignore[no-untyped-def]
        pairs = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, pairs)

    def mined(self) -> int:
        """How many triplets or pairs the miner kept in the last batch."""
        return int(getattr(self.miner, "num_triplets", getattr(self.miner, "num_pos_pairs", 0)))


def build_criterion(
    name: str = "triplet",
    *,
    margin: float = 0.2,
    mining: str = "semihard",
    num_classes: int = 0,
    dim: int = 128,
) -> Criterion:
    """``triplet``: triplet margin loss on cosine distance, ``mining`` triplets
    (semihard, hard or all); ``multisimilarity``: MS loss with its pair miner;
    ``arcface``: additive angular margin over ``num_classes`` learnt class centres.
    """
    cosine = distances.CosineSimilarity()
    if name == "triplet":
        return Criterion(
            losses.TripletMarginLoss(margin=margin, distance=cosine),
            miners.TripletMarginMiner(margin=margin, type_of_triplets=mining, distance=cosine),
        )
    if name == "multisimilarity":
        return Criterion(
            losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5, distance=cosine),
            miners.MultiSimilarityMiner(epsilon=0.1, distance=cosine),
        )
    if name == "arcface":
        if num_classes < 2:
            raise ValueError("ArcFace needs the number of training labels.")
        return Criterion(losses.ArcFaceLoss(num_classes, dim, margin=28.6, scale=64), None)
    raise ValueError(f"Unknown loss {name!r}: use one of {', '.join(LOSSES)}.")
