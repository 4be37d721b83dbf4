"""atbsn: AT-BSN self-supervised blind-spot denoising on the fused kernels of ``atbsn_kernels``."""

import importlib.util
import runpy
from pathlib import Path


def _kernels_version() -> str:
    """``atbsn_kernels/_version.py``'s version, read without importing ``atbsn_kernels`` (and torch)."""
    spec = importlib.util.find_spec("atbsn_kernels")  # locates the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("atbsn needs the atbsn_kernels package beside it; reinstall atbsn")
    return runpy.run_path(str(Path(spec.submodule_search_locations[0]) / "_version.py"))["__version__"]


__version__ = _kernels_version()
__all__ = ["__version__"]
