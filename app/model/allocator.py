"""glibc malloc settings for a process that runs a model: keep freed buffers mapped.

With glibc's defaults, the activations a forward pass frees go back to the kernel
and every batch page-faults them in again, so model speed depends on the process's
allocation history. A fixed mmap threshold and a large trim threshold make every
process reuse its buffers (docs/performance.md, "The allocator"). Where jemalloc or
tcmalloc is preloaded, or ``MALLOC_*`` variables are set, malloc is left alone.
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
