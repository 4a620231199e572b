"""P x K batches."""

from __future__ import annotations

from collections import Counter

from trainer.sampler import PKSampler


def test_every_batch_holds_p_labels_with_k_images_each() -> None:
    labels = [i % 5 for i in range(50)]
    sampler = PKSampler(labels, p=3, k=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50 // 12
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}


def test_an_epoch_order_depends_only_on_seed_and_epoch() -> None:
    labels = [i % 4 for i in range(40)]
    first, second = PKSampler(labels, p=2, k=2, seed=7), PKSampler(labels, p=2, k=2, seed=7)
    second.set_epoch(3)
    second.set_epoch(1)
    first.set_epoch(1)
    assert list(first) == list(second)
    first.set_epoch(2)
    assert list(first) != list(second)


def test_labels_with_a_single_image_are_never_sampled() -> None:
    labels = [0, 0, 0, 1, 1, 1, 2]
    assert all(6 not in batch for batch in PKSampler(labels, p=2, k=2, seed=0))
