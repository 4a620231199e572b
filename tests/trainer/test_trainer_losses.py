"""The miner and the loss, on hand-made embeddings and on a tiny separable set."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer.losses import build_criterion


def unit(*rows: tuple[float, float]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_the_miner_keeps_exactly_the_semi_hard_triplets() -> None:
    # Anchor 0 and positive 1 have cosine 0.8; negative 2 is further (0.7: semi-hard at
    # margin 0.2), negative 3 is closer than the positive (0.95: hard), 4 is easy (-1).
    angle = torch.acos(torch.tensor([0.8, 0.7, 0.95]))
    embeddings = torch.stack([
        torch.tensor([1.0, 0.0]),
        torch.stack([torch.cos(angle[0]), torch.sin(angle[0])]),
        torch.stack([torch.cos(angle[1]), -torch.sin(angle[1])]),
        torch.stack([torch.cos(angle[2]), -torch.sin(angle[2])]),
        torch.tensor([-1.0, 0.0]),
    ])
    labels = torch.tensor([0, 0, 1, 2, 3])
    criterion = build_criterion("triplet", margin=0.2, mining="semihard")
    anchors, positives, negatives = criterion.miner(embeddings, labels)
    mined = set(zip(anchors.tolist(), positives.tolist(), negatives.tolist(), strict=True))
    assert (0, 1, 2) in mined
    assert (0, 1, 3) not in mined and (0, 1, 4) not in mined
    hard = build_criterion("triplet", margin=0.2, mining="hard").miner(embeddings, labels)
    assert (0, 1, 3) in set(zip(*(t.tolist() for t in hard), strict=True))


def test_no_triplet_is_mined_when_every_negative_is_beyond_the_margin() -> None:
    embeddings = unit((1, 0), (1, 0.01), (-1, 0), (-1, 0.01))
    criterion = build_criterion("triplet", margin=0.2)
    assert len(criterion.miner(embeddings, torch.tensor([0, 0, 1, 1]))[0]) == 0
    assert criterion(embeddings, torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_training_lowers_the_loss_on_a_tiny_separable_set(tiny_model_dir: Path,
                                                          colour_folders: Path) -> None:
    # Earlier tests change process-wide state (train() sets torch's thread count);
    # pin what this test depends on so that it does not depend on test order.
    import random

    import numpy as np

    from app.model.encoder import load_backbone
    from trainer.data import load_dataset, load_image
    from trainer.model import EmbeddingModel, apply_regime, build_head, feature_dim

    random.seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    backbone, preprocess = load_backbone(str(tiny_model_dir))
    model = EmbeddingModel(backbone, build_head(feature_dim(backbone, preprocess), 16))
    apply_regime(model, "full")
    samples = load_dataset(colour_folders, val_ratio=0).train
    names = sorted({s.label for s in samples})
    labels = torch.tensor([names.index(s.label) for s in samples])
    pixels = preprocess([load_image(s.path) for s in samples])
    measure = build_criterion("triplet", margin=0.2, mining="all")
    train_on = build_criterion("triplet", margin=0.2, mining="semihard")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            return measure(model(pixels), labels).item()

    before = loss_now()
    for _ in range(15):
        model.train()
        # The fixed batch, not random augmentations: torch's global RNG is shared
        # with whatever else runs in the process, so augmented steps made this test
        # depend on test order. What it checks is the loss, miner and optimiser.
        loss = train_on(model(pixels), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_now()
    print(f"LOSS before={before:.4f} after={after:.4f}")
    assert after < 0.5 * before
