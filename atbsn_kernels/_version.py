"""Single source of the package version and of the oldest torch and Triton it supports (read by
setup.py without importing the package)."""

__version__ = "0.1.0"
MIN_TORCH = "2.11"  # torch.backends' fp32_precision API (2.9+); the oldest torch a GPU run has checked
MIN_TRITON = "3.6"  # the Triton of torch 2.11; CI runs the Triton tests under this version too
