"""Retrieval metrics: Recall@K and mAP@R, from ranked label lists.

Both take, for each query, the labels of its ranked results (the query itself
already removed) and the number of relevant gallery items, so the same code
scores exact search and Milvus' HNSW search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def recall_at_k(relevant: np.ndarray, k: int) -> float:
    """Share of queries with at least one relevant result in their top ``k``.

    Args:
        relevant: (queries, results) booleans, True where a ranked result shares the query's label.
    """
    if len(relevant) == 0:
        return 0.0
    return float(relevant[:, :k].any(axis=1).mean())


def map_at_r(relevant: np.ndarray, r: np.ndarray) -> float:
    """Mean average precision at R (Musgrave et al., 2020), R = relevant items per query.

    For a query with R relevant gallery items: (1/R) * sum over the first R ranks
    of precision@i where rank i is relevant.
    """
    scores = []
    for row, count in zip(relevant, r, strict=True):
        count = int(count)
        if count == 0:
            continue
        hits = row[:count].astype(float)
        precision = np.cumsum(hits) / np.arange(1, count + 1)
        scores.append(float((precision * hits).sum() / count))
    return float(np.mean(scores)) if scores else 0.0


def relevance(
    query_labels: Sequence[str], ranked_labels: Sequence[Sequence[str]]
) -> np.ndarray:
    """(queries, results) booleans from labels; shorter rows are padded with False."""
    width = max((len(row) for row in ranked_labels), default=0)
    out = np.zeros((len(query_labels), width), dtype=bool)
    for i, (label, row) in enumerate(zip(query_labels, ranked_labels, strict=True)):
        out[i, : len(row)] = [other == label for other in row]
    return out


def summary(relevant: np.ndarray, r: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """``{"R@1": .., "R@5": .., "R@10": .., "mAP@R": ..}``."""
    out = {f"R@{k}": recall_at_k(relevant, k) for k in ks}
    out["mAP@R"] = map_at_r(relevant, r)
    return out


def exact_search(queries: np.ndarray, gallery: np.ndarray, k: int,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` most cosine-similar gallery rows per query (unit vectors).

    ``exclude[i]`` is a gallery index to leave out for query ``i`` (the query
    itself in leave-one-out protocols), or -1.
    """
    k = min(k, len(gallery) - (1 if exclude is not None else 0))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 1024):
        scores = queries[start : start + 1024] @ gallery.T
        if exclude is not None:
            rows = np.arange(scores.shape[0])
            cols = exclude[start : start + 1024]
            scores[rows[cols >= 0], cols[cols >= 0]] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + 1024] = np.take_along_axis(top, order, axis=1)
    return out
