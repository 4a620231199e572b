"""Recall@K and mAP@R against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import exact_search, map_at_r, recall_at_k, relevance, summary


def test_recall_at_k_matches_a_hand_computed_case() -> None:
    # query 1: first hit at rank 1; query 2: at rank 3; query 3: never in the top 4.
    relevant = relevance(["a", "b", "c"], [["a", "x", "a", "y"], ["x", "y", "b", "z"],
                                            ["x", "y", "z", "w"]])
    assert recall_at_k(relevant, 1) == pytest.approx(1 / 3)
    assert recall_at_k(relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(relevant, 3) == pytest.approx(2 / 3)
    assert recall_at_k(relevant, 4) == pytest.approx(2 / 3)


def test_map_at_r_matches_a_hand_computed_case() -> None:
    # R = 3 relevant items; ranks 1 and 3 are relevant: (1/1 + 2/3) / 3 = 5/9.
    relevant = np.array([[True, False, True, True]])
    assert map_at_r(relevant, np.array([3])) == pytest.approx(5 / 9)
    # A perfect ranking scores 1, however long the tail.
    assert map_at_r(np.array([[True, True, False]]), np.array([2])) == pytest.approx(1.0)


def test_summary_reports_the_usual_keys() -> None:
    scores = summary(np.array([[True] * 10]), np.array([1]))
    assert scores == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "mAP@R": 1.0}


def test_exact_search_ranks_by_cosine_and_can_leave_the_query_out() -> None:
    gallery = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    queries = gallery[:1]
    assert exact_search(queries, gallery, 3).tolist() == [[0, 1, 2]]
    assert exact_search(queries, gallery, 3, exclude=np.array([0])).tolist() == [[1, 2]]
