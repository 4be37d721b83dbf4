"""atbsn_kernels: fused blind-spot convolution kernels (Triton, C++ CPU, CUDA) with a plain
PyTorch reference for every op. See README.md and docs/kernel-contract.md."""

from atbsn_kernels import nn, reference
from atbsn_kernels._version import __version__
from atbsn_kernels.backends import BACKENDS, BackendUnavailableError, available_backends, resolve_backend
from atbsn_kernels.ops import blind_spot_conv2d

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "__version__",
    "available_backends",
    "blind_spot_conv2d",
    "nn",
    "reference",
    "resolve_backend",
]
