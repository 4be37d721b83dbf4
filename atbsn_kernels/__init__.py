"""atbsn_kernels: fused blind-spot convolution kernels (Triton, C++ CPU, CUDA) with a plain
PyTorch reference for every op. See README.md and docs/kernel-contract.md."""

from atbsn_kernels import nn, reference, taps
from atbsn_kernels._version import __version__
from atbsn_kernels.backends import BACKENDS, BackendUnavailableError, available_backends, resolve_backend
from atbsn_kernels.blindspot import reachable_pixels
from atbsn_kernels.convert import ConversionReport, convert_bsn
from atbsn_kernels.dilation import dilate_bsn, dilated_conv2d
from atbsn_kernels.ops.blind_spot_conv2d import blind_spot_conv2d
from atbsn_kernels.ops.shifted_conv2d import shifted_conv2d
from atbsn_kernels.ops.shifted_max_pool2d import shifted_max_pool2d
from atbsn_kernels.ops.unrotate_cat import unrotate_cat
from atbsn_kernels.ops.upsample_cat import upsample_cat
from atbsn_kernels.tuning import tune

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "ConversionReport",
    "__version__",
    "available_backends",
    "blind_spot_conv2d",
    "convert_bsn",
    "dilate_bsn",
    "dilated_conv2d",
    "nn",
    "reachable_pixels",
    "reference",
    "resolve_backend",
    "shifted_conv2d",
    "shifted_max_pool2d",
    "taps",
    "tune",
    "unrotate_cat",
    "upsample_cat",
]
