"""The duplicate pass on synthetic vectors with planted copies (bench/duplicate_scale.py),
small enough for a test: both methods find every planted pair and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from bench import duplicate_scale


def test_synthetic_vectors_plant_copies_above_and_keep_neighbours_below_the_threshold() -> None:
    vectors, planted = duplicate_scale.synthetic(3000, seed=1)
    assert len(planted) == 30
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    copies = [float(vectors[a] @ vectors[b]) for a, b in planted]
    assert min(copies) > duplicate_scale.THRESHOLD
    scores = vectors[:500] @ vectors[:500].T
    np.fill_diagonal(scores, 0)
    assert 0.5 < scores.max() < duplicate_scale.THRESHOLD  # similar neighbours, not copies


@pytest.mark.parametrize("method", ["exact", "range"])
def test_both_methods_recover_every_planted_pair_and_nothing_else(lite_server, method) -> None:
    from app.vectors.connect import open_client

    client = open_client(lite_server, timeout=120)[0]
    result = duplicate_scale.run(sizes=[3000], backends={"lite": (client, True)}, methods=[method])
    row = result["results"]["lite"]["sizes"]["3000"][method]
    assert row["planted_recovered"] == row["planted"] == 30
    assert row["other_pairs"] == 0
    assert row["groups"] == 30
    assert not any(c.startswith("benchdup_3000") for c in client.list_collections())
