"""``python -m trainer evaluate``: Recall@1/5/10 and mAP@R, query set against gallery set.

The model is loaded by the app's ``Encoder.from_pretrained`` (a run folder is
exported first), the gallery goes into a Milvus Lite collection made by the
app's ``VectorStore`` with its HNSW index, and every query is a
``VectorStore.search``: the numbers are the ones users of the app get. Exact
search over the same vectors is reported beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.config import Config
from trainer import metrics
from trainer.data import Dataset, Sample, load_dataset
from trainer.report import write_report

if TYPE_CHECKING:
    from app.model.encoder import Encoder

log = logging.getLogger(__name__)
CURVE_K = 50
RESULTS = "results.json"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("trainer evaluate", add_help=add_help,
                                     description="Retrieval metrics of a model on a query/gallery "
                                                 "protocol, through Milvus HNSW and exact search.")
    parser.add_argument("--model", required=True,
                        help="exported model dir, run folder, or any HF backbone (zero-shot)")
    parser.add_argument("--data", required=True, help="DATA, as for `trainer train`")
    parser.add_argument("--out", default="", help="report folder (default: none written)")
    parser.add_argument("--baseline", default="",
                        help="a report folder or model to compare with (before fine-tuning)")
    parser.add_argument("--no-milvus", action="store_true", help="exact search only")
    parser.add_argument("--ef", type=int, default=Config.SEARCH_EF,
                        help="HNSW search breadth (app default)")
    parser.add_argument("--grid", type=int, default=8, help="queries in the retrieval grid")
    parser.add_argument("--device", default="")
    parser.add_argument("--precision", default="auto",
                        help="auto, fp32, bf16 or bf16-autocast, as the app's LOOKALIKE_PRECISION "
                             "(auto: bf16 weights where the hardware is fast at them)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    dataset = load_dataset(args.data, val_ratio=0.0)
    out = Path(args.out) if args.out else None
    results = evaluate_model(args.model, dataset, args, out=out)
    baseline = load_baseline(args.baseline, dataset, args, out) if args.baseline else None
    if out is not None:
        write_report(out, results, baseline, run=_run_folder(args.model))
    print(json.dumps({k: results[k] for k in ("model", "hnsw", "exact") if k in results}, indent=2))
    return results


def evaluate_model(model: str, dataset: Dataset, args: argparse.Namespace, *,
                   out: Path | None = None, grid: bool = True) -> dict[str, Any]:
    """Embed query and gallery with the app's encoder; score exact and HNSW rankings."""
    if not dataset.query or not dataset.gallery:
        raise ValueError(f"{dataset.source} has no query/gallery split to evaluate on.")
    with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
        encoder = _load_encoder(_as_model_dir(model, Path(tmp) / "model"), args)
        queries, gallery, embed_s = _embed(encoder, dataset)
        protocol = Protocol(dataset.query, dataset.gallery)
        count = len(queries) + len(gallery)
        results: dict[str, Any] = {
            "model": model, "data": dataset.summary(), "dim": int(queries.shape[1]),
            "precision": encoder.dtype,
            "queries": len(protocol.queries), "gallery": len(dataset.gallery),
            "embed_s": round(embed_s, 1), "images_per_s": round(count / embed_s, 1),
        }
        exact = metrics.exact_search(queries, gallery, protocol.depth, exclude=protocol.self_index)
        results["exact"] = protocol.score(exact)
        results["recall_curve"] = protocol.curve(exact)
        ranked = exact
        if not args.no_milvus:
            ranked, results["hnsw"], results["hnsw_s"] = _hnsw(
                encoder, queries, gallery, protocol, Path(tmp) / "milvus", ef=args.ef)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            if grid:
                protocol.grid(ranked, out / "retrieval_grid.png", rows=args.grid)
    if out is not None:
        (out / RESULTS).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _load_encoder(model_dir: str, args: argparse.Namespace) -> Encoder:
    from app.model.encoder import Encoder  # heavy: import on use

    return Encoder.from_pretrained(model_dir, device=args.device or None,
                                   precision=args.precision, threads=args.threads or None,
                                   batch_size=args.batch_size)


def _embed(encoder: Encoder, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, float]:
    """Query and gallery vectors, through the app's one preprocessing path, and the seconds."""
    from trainer.embedding import embed_samples

    started = time.monotonic()
    vectors = embed_samples(encoder, dataset.query + dataset.gallery)
    seconds = time.monotonic() - started
    return vectors[: len(dataset.query)], vectors[len(dataset.query) :], seconds


def _hnsw(encoder: Encoder, queries: np.ndarray, gallery: np.ndarray, protocol: Protocol,
          folder: Path, *, ef: int) -> tuple[np.ndarray, dict[str, Any], float]:
    """The ranking as the app's Milvus search returns it (self dropped), its scores, seconds."""
    from trainer.milvus_search import hnsw_search

    started = time.monotonic()
    hnsw = hnsw_search(encoder, queries, gallery, protocol.gallery, protocol.depth + 1, folder,
                       ef=ef)
    ranked = protocol.drop_self(hnsw)
    scores = protocol.score(ranked)
    return ranked, scores, round(time.monotonic() - started, 1)


class Protocol:
    """Queries against a gallery; relevant = same label; a query never retrieves itself."""

    def __init__(self, query: list[Sample], gallery: list[Sample]) -> None:
        position = {s.path: i for i, s in enumerate(gallery)}
        self.gallery_labels = np.array([s.label for s in gallery])
        counts: dict[str, int] = {}
        for label in self.gallery_labels.tolist():
            counts[label] = counts.get(label, 0) + 1
        self.samples = query
        self.gallery = gallery
        self.labels = np.array([s.label for s in query])
        self.self_index = np.array([position.get(s.path, -1) for s in query])
        self.r = np.array([counts.get(s.label, 0) - (self.self_index[i] >= 0)
                           for i, s in enumerate(query)])
        self.queries = np.flatnonzero(self.r > 0)  # queries with something to find
        self.depth = int(min(len(gallery) - 1, max(CURVE_K, int(self.r.max(initial=0)))))

    def relevant(self, ranked: np.ndarray) -> np.ndarray:
        found = self.gallery_labels[ranked[self.queries]]
        return found == self.labels[self.queries][:, None]

    def score(self, ranked: np.ndarray) -> dict[str, float]:
        return {k: round(v, 5) for k, v in
                metrics.summary(self.relevant(ranked), self.r[self.queries]).items()}

    def curve(self, ranked: np.ndarray) -> list[float]:
        relevant = self.relevant(ranked)
        return [round(metrics.recall_at_k(relevant, k), 5) for k in range(1, CURVE_K + 1)]

    def drop_self(self, ranked: np.ndarray) -> np.ndarray:
        """Remove each query's own gallery entry, keeping ``depth`` results per row."""
        rows = [[g for g in row if g != own][: self.depth]
                for row, own in zip(ranked.tolist(), self.self_index.tolist(), strict=True)]
        width = self.depth
        return np.array([row + [row[-1]] * (width - len(row)) if row else [0] * width
                         for row in rows])

    def grid(self, ranked: np.ndarray, path: Path, *, rows: int = 8, top: int = 5) -> None:
        from trainer.data import load_image
        from trainer.plots import retrieval_grid

        picks = self.queries[np.linspace(0, len(self.queries) - 1, min(rows, len(self.queries)),
                                         dtype=int)]
        retrieval_grid(
            [(self.samples[q].path, self.samples[q].label,
              [(self.gallery[g].path, self.gallery[g].label) for g in ranked[q][:top]])
             for q in picks],
            load_image, path,
        )


def load_baseline(baseline: str, dataset: Dataset, args: argparse.Namespace,
                  out: Path | None) -> dict[str, Any]:
    """A previous report's results, or a fresh evaluation of another model."""
    path = Path(baseline) / RESULTS
    if path.is_file():
        return json.loads(path.read_text())
    return evaluate_model(baseline, dataset, args, out=out / "baseline" if out else None,
                          grid=False)


def _as_model_dir(model: str, scratch: Path) -> str:
    """A run folder is exported first, so it loads exactly as the app would load it."""
    run = _run_folder(model)
    if run is None:
        return model
    from trainer.export import export_run

    return str(export_run(run, scratch))


def _run_folder(model: str) -> Path | None:
    path = Path(model)
    return path if (path / "config.json").is_file() and (path / "best.pt").is_file() else None
