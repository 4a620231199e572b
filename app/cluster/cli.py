"""The ``--ray [ADDRESS]`` option and the CLI's Ray ingest with one progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from flask import current_app
from tqdm import tqdm

from app.gallery.ingest import REJECTED, Outcome, Report
from app.gallery.sources import Source

ray_option = click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="__config__",
    default=None,
    metavar="[ADDRESS]",
    help="Encode on Ray: ADDRESS of a cluster (ray://host:10001 or host:6379), or none for "
    "LOOKALIKE_RAY_ADDRESS or else a local Ray for the run. Put it after the paths, "
    "or write --ray=ADDRESS. Needs: pip install -r requirements-ray.txt.",
)


def resolve_address(value: str | None) -> str | None:
    """None: no Ray. Otherwise the address to use ("local": start one)."""
    if value is None:
        return None
    if value == "__config__":
        return str(current_app.config["RAY_ADDRESS"] or "") or "local"
    return value


def ray_ingest(
    address: str,
    sources: Sequence[Source],
    *,
    batch_size: int,
    on_outcome: Callable[[Outcome], None] | None = None,
    embedder: type | None = None,
) -> Report:
    """Ingest ``sources`` into the current gallery on Ray, with one bar over the job."""
    from app.cluster.run import encode_on_ray
    from app.extensions import encoder, snapshot, vectors

    def announce(job, writer) -> None:  # type: ignore[no-untyped-def]
        click.echo(
            f"Ray: {job.actors} model actor(s), batch {job.batch_size}, "
            f"writing by {type(writer).__name__}"
        )

    failures = 0
    with tqdm(total=len(sources), unit="img", dynamic_ncols=True) as bar:

        def show(outcome: Outcome) -> None:
            nonlocal failures
            bar.update(1)
            if outcome.status == REJECTED:
                failures += 1
                bar.set_postfix(failures=failures)
                bar.write(f"rejected {outcome.name}: {outcome.reason}")
            if on_outcome:
                on_outcome(outcome)

        app = current_app._get_current_object()  # type: ignore[attr-defined]
        return encode_on_ray(
            app,
            address,
            encoder(),
            vectors(),
            sources,
            collection=snapshot().collection,
            batch_size=batch_size,
            on_outcome=show,
            embedder=embedder,
            announce=announce,
        )


@contextmanager
def ray_sync_options(address: str | None) -> Iterator[dict[str, Any]]:
    """``Syncer`` options for ``gallery add|sync s3://... --ray``: one Ray session for the
    command, new and changed objects indexed on it, in chunks of a Ray dataset's size
    (one gallery-lock hold and one checkpoint each). No options without an address."""
    if address is None:
        yield {}
        return
    from app.cluster.run import CHUNK, inplace_step, ray_session

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with ray_session(address) as ray:
        click.echo(f"Ray: objects read and embedded on {address}")
        yield {"on_ray": inplace_step(app, ray, int(app.config["BATCH_SIZE"])), "chunk": CHUNK}
