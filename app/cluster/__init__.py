"""Distributed encoding with Ray (optional: ``pip install -r requirements-ray.txt``).

``pipeline.py`` runs the ingest's per-image step on Ray tasks and the model on an
actor pool; ``writer.py`` puts the rows into Milvus (upserts, or a server's bulk
import); ``run.py`` ties them to a gallery with one progress bar. Nothing here
imports ``ray`` at module level, so the app runs without it.
"""

from __future__ import annotations

from app.exceptions import RayUnavailable

INSTALL_HINT = "pip install -r requirements-ray.txt (or: make install-ray)"


def require_ray():  # type: ignore[no-untyped-def]
    """The ``ray`` module, or a RayUnavailable that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailable(
            f"--ray needs Ray, which is not installed here. Install it with: {INSTALL_HINT}"
        ) from exc
    return ray
