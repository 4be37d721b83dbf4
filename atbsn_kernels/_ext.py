"""Loads the compiled extension ``atbsn_kernels._C`` and remembers why it could not be loaded."""

from __future__ import annotations

import importlib

import torch  # noqa: F401  (libtorch must be loaded before the extension)

BUILD_HINT = (
    "build the C++ extension from the repository root with "
    "`pip install --no-build-isolation -e .` (torch must already be installed; see README, 'Backends')"
)


def _load():
    try:
        return importlib.import_module("atbsn_kernels._C"), None
    except ImportError as exc:
        return None, f"the C++ extension atbsn_kernels._C is not built or failed to load ({exc})"


_C, LOAD_ERROR = _load()


def extension_loaded() -> bool:
    """True when ``atbsn_kernels._C`` imported (its ops are then in ``torch.ops.atbsn``)."""
    return _C is not None


def cuda_kernels_built() -> bool:
    """True when the extension was compiled with its CUDA sources."""
    return _C is not None and bool(_C.cuda_built())


def _cpu_kernel_config() -> tuple[bool, str]:
    if _C is None:
        return False, LOAD_ERROR
    try:
        return True, _C.cpu_kernel_config()
    except ValueError as err:
        return False, str(err)


# Read once: the kernels read their settings (ATBSN_CPU_ISA, cache overrides) once per process too.
_CPU_KERNEL_CONFIG = _cpu_kernel_config()


def cpu_kernel_config() -> tuple[bool, str]:
    """(usable, how the C++ CPU kernels run here: microkernel ISA and cache-derived blocking), or
    (False, why not): a bad ``ATBSN_CPU_ISA`` makes the CPU kernels unusable."""
    return _CPU_KERNEL_CONFIG
