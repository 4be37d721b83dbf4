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
# Environment variables that change how memory is allocated (benchmark reports record them).
ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def allocator_settings() -> dict[str, str]:
    """The variables of ALLOCATOR_ENV that are set here, with their values."""
    return {name: os.environ[name] for name in ALLOCATOR_ENV if os.environ.get(name)}


def _user_chose(settings: dict[str, str]) -> bool:
    """True when the user tuned glibc's malloc or preloaded another allocator."""
    return any(name != "LD_PRELOAD" for name in settings) or "malloc" in settings.get("LD_PRELOAD", "")


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
    if _user_chose(allocator_settings()):
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
