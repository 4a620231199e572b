"""``python -m trainer index``: embed a gallery into a new collection and switch to it.

Uses the app's own pieces: its configured Milvus and image store
(``LOOKALIKE_*`` settings), the ingest pipeline (originals and thumbnails into
the store, vectors into the collection) and the reindex's switch (build the
HNSW index before anyone searches, then move the serving alias in one step
while no upload is running). The previous collection is kept, so the admin
page can roll back to it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from app.gallery.sources import Source
from app.jobs.switch import Steps, switch_collection
from trainer.data import Dataset, load_dataset


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("trainer index", add_help=add_help,
                                     description="Embed a gallery with a model into a new "
                                                 "collection and make it the serving one.")
    parser.add_argument("--model", required=True, help="exported model directory")
    parser.add_argument("--images", required=True,
                        help="image folder (labels = sub-folders), CSV manifest, or DATA with a "
                             "gallery split (In-Shop, Grocery)")
    parser.add_argument("--gallery", default=None, metavar="NAME",
                        help="the gallery to index into (default: the default gallery); "
                             "created with this model if it does not exist")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--no-switch", action="store_true",
                        help="build the collection but leave the serving alias where it is")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="encode on Ray: a cluster's ADDRESS, or none for "
                             "LOOKALIKE_RAY_ADDRESS or else a local Ray (docs/scale.md)")
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    from app import create_app

    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    app = create_app()
    ray_address = None if args.ray is None else (
        args.ray or str(app.config["RAY_ADDRESS"] or "") or "local")
    if ray_address is not None:
        _check_ray()
    with app.app_context():
        note = use_gallery(args.gallery, model) if args.gallery else ""
        result = build_index(app, model, gallery_sources(load_dataset(args.images, val_ratio=0)),
                             batch_size=args.batch_size or int(app.config["BATCH_SIZE"]),
                             switch=not args.no_switch, ray_address=ray_address)
    print(f"Indexed {result['added']} images into {result['collection']} "
          f"({result['rejected']} rejected) in {result['seconds']} s.")
    if result["switched"]:
        print(f"The alias {result['alias']!r} now serves {result['collection']} "
              f"(previous: {result['previous'] or 'none'}).")
    print(f"Copy threshold: {result['copy_threshold']}")
    if note:
        print(note)
    elif app.config["MODEL"] != model:
        print(f"Set LOOKALIKE_MODEL={model} so that the next reindex keeps this model.")
    return result


def _check_ray() -> None:
    from app.cluster import require_ray
    from app.exceptions import RayUnavailable

    try:
        require_ray()
    except RayUnavailable as exc:
        raise SystemExit(exc.message) from None


def use_gallery(name: str, model: str) -> str:
    """Work on gallery ``name`` (made with ``model`` if missing); its next reindex keeps
    ``model``. Returns what to tell the user."""
    from app.exceptions import UnknownGallery
    from app.extensions import galleries
    from app.galleries.current import use

    registry = galleries()
    try:
        gallery = registry.get(name)
    except UnknownGallery:
        registry.create(name, model=model)
        use(name)
        return f"Created the gallery {name!r} with the model {model}."
    use(name)
    if gallery.default:
        return "" if gallery.model == model else \
            f"Set LOOKALIKE_MODEL={model} so that the next reindex keeps this model."
    if gallery.model != model:
        registry.set_model(name, model)
        return f"The gallery {name!r} now reindexes with the model {model}."
    return ""


def gallery_sources(dataset: Dataset) -> list[Source]:
    """The gallery split where the data defines one, else every image it lists."""
    samples = dataset.query + dataset.gallery if dataset.hashed else dataset.gallery
    unique = {s.path: s for s in samples}
    return [Source(path, Path(path).read_bytes, s.label, {"source": Path(path).name})
            for path, s in sorted(unique.items())]


def build_index(app: Any, model: str, sources: list[Source], *, batch_size: int = 0,
                switch: bool = True, ray_address: str | None = None) -> dict[str, Any]:
    """Fill a new collection stamped with ``model``, index it, and move the alias to it."""
    from tqdm import tqdm

    from app.copies.service import calibrate_new_collection
    from app.extensions import build_encoder, gallery, images
    from app.galleries.current import job_files
    from app.gallery.ingest import REJECTED, Ingestor, Report
    from app.serving import stamp_of
    from app.vectors.connect import connect_milvus

    encoder = build_encoder(app, model)
    vectors = connect_milvus(app, alias=gallery().alias)  # the current gallery's
    reports: list[Report] = []
    started = time.monotonic()

    def fill(new: str) -> None:
        if ray_address is not None:  # one bar, updated by the Ray run's outcomes
            from app.cluster.run import encode_on_ray

            with tqdm(total=len(sources), unit="img", desc="indexing (Ray)") as bar:
                reports.append(encode_on_ray(
                    app, ray_address, encoder, vectors, sources, collection=new,
                    batch_size=batch_size or encoder.batch_size,
                    on_outcome=lambda outcome: bar.update(1)))
            return
        ingestor = Ingestor(encoder, vectors, images(), batch_size=batch_size, collection=new,
                            max_pixels=int(app.config["MAX_IMAGE_PIXELS"]))
        with tqdm(total=len(sources), unit="img", desc="indexing", mininterval=2) as bar:
            reports.append(ingestor.run(sources, lambda outcome: bar.update(1)))

    switched = switch_collection(vectors, stamp_of(encoder), fill,
                                 files=job_files(app), steps=PrintedSteps(),
                                 switch=switch)
    calibrated = calibrate_new_collection(
        encoder, vectors, switched.collection, images(),
        sample=int(app.config["COPY_CALIBRATION_SAMPLE"]),
        max_pixels=int(app.config["MAX_IMAGE_PIXELS"]))
    report = reports[0]
    return {
        "alias": vectors.alias, "collection": switched.collection,
        "previous": switched.previous, "switched": switch,
        "added": report.added, "duplicates": report.duplicates,
        "rejected": sum(1 for o in report.outcomes if o.status == REJECTED),
        "rows": vectors.count(switched.collection),
        "seconds": round(time.monotonic() - started, 1),
        "copy_threshold": calibrated.describe() if calibrated else "default (not calibrated)",
    }


class PrintedSteps(Steps):
    """The switch as ``trainer index`` shows it: only a wait for uploads is worth a line."""

    def waiting(self) -> None:
        print("waiting for uploads in progress to finish")
