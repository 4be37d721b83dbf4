"""atbsn: AT-BSN self-supervised blind-spot denoising on the fused kernels of ``atbsn_kernels``."""

from atbsn_kernels._version import __version__

__all__ = ["__version__"]
