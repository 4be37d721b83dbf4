"""Keep freed memory in a training process (glibc's malloc).

glibc serves blocks above its mmap threshold (which adapts up to 32 MiB) with fresh mmaps and
returns them to the system when they are freed, so every large activation of every training step
is page-faulted, and zeroed by the kernel, again: about 20 ms per 100 MB on this project's machine,
5-10% of an ATBSN training step at batch 4 x 128² (and about a third of the official code's step,
which allocates more). Raising the mmap and trim thresholds lets malloc keep freed blocks for the
next step, as jemalloc or tcmalloc do; the process then holds its peak memory, which a training
run needs every step anyway. ``atbsn train`` and ``atbsn distill`` call :func:`keep_freed_memory`;
a user's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES`` or an
allocator in ``LD_PRELOAD`` (jemalloc, tcmalloc, mimalloc) is left alone.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap
TRIM_THRESHOLD = (1 << 31) - 1  # the largest int mallopt takes: free memory is kept up to 2 GiB
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _libc():
    """glibc's C library, or None on another C library or platform."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (see the module docstring).
    True when they were set; False on other C libraries or where the user set their own."""
    if any(os.environ.get(name) for name in USER_SETTINGS) or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
