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
