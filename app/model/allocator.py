"""glibc malloc settings for a process that runs a model: keep freed buffers mapped.

A forward pass allocates and frees activations of 1-30 MB. glibc serves those
with fresh ``mmap`` calls and gives freed memory back to the kernel, so every
batch page-faults its activations in again (2,000 minor faults per 28 MB
allocated and freed, measured). Whether a process falls into that depends on
its allocation history, so the same model ran ViT-S/14 at 30-35 img/s in some
processes and 53-55 in others on the 2-core Zen 5. With a fixed mmap threshold
of 32 MiB and a 256 MiB trim threshold, buffers are reused and every process runs at
the fast speed (BENCHMARKS.md). jemalloc or tcmalloc (LD_PRELOAD) do the same;
where one is preloaded, or ``MALLOC_*`` variables are set, this leaves malloc alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied: bool | None = None


def keep_buffers_mapped() -> bool:
    """Apply the settings once per process; True if glibc took them."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ) or any(
        lib in os.environ.get("LD_PRELOAD", "") for lib in ("jemalloc", "tcmalloc", "mimalloc")
    ):
        return False  # the operator chose
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, say)
    ok = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
          and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not ok:
        log.warning("glibc refused the malloc settings; model speed may vary between processes")
    return ok
