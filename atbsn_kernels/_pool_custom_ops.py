"""``torch.library`` registrations of the shifted max-pool ops: fake kernels and autograd.

As in ``_custom_ops.py``: the C++ ops (``atbsn::shifted_max_pool2d[_backward]``, schema in
``csrc/ops/shifted_max_pool2d.cpp``) exist when the extension is loaded; the Triton ops
(``atbsn::shifted_max_pool2d[_backward]_triton``) when triton is installed. Both pairs get the
same fake kernels and the same autograd formula: the backward op recomputes the argmax from the
saved input, so nothing else is saved (see docs/kernel-contract.md).
"""

from __future__ import annotations

import torch

from atbsn_kernels import _ext
from atbsn_kernels.backends import BackendUnavailableError, triton_installed

__all__ = ["pool_op", "CPP_POOL_OPS", "TRITON_POOL_OPS"]


def _pool_fake(x):
    """Output ``[N, C, H//2, W//2]``, contiguous, dtype of x."""
    n, c, h, w = x.shape
    return x.new_empty((n, c, h // 2, w // 2))


def _pool_backward_fake(grad_out, x):
    """grad_x ``[N, C, H, W]``, contiguous, dtype of x."""
    return x.new_empty(x.shape)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _register(forward, backward):
    """Fake kernels for the pair (forward, backward) and autograd for forward; returns the pair."""
    torch.library.register_fake(forward)(_pool_fake)
    torch.library.register_fake(backward)(_pool_backward_fake)

    def autograd_backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return backward(grad_out, x)

    torch.library.register_autograd(forward, autograd_backward, setup_context=_setup_context)
    return forward, backward


def _cpp_ops_built() -> bool:
    """True when the loaded extension holds the pool kernels (an extension built from older sources does not)."""
    return _ext.extension_loaded() and hasattr(torch.ops.atbsn, "shifted_max_pool2d")


def _register_triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) and register them."""
    from atbsn_kernels.triton import shifted_max_pool2d as kernels

    @torch.library.triton_op("atbsn::shifted_max_pool2d_triton", mutates_args=())
    def forward(x: torch.Tensor) -> torch.Tensor:
        return kernels.forward(x)

    @torch.library.triton_op("atbsn::shifted_max_pool2d_backward_triton", mutates_args=())
    def backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return kernels.backward(grad_out, x)

    return _register(forward, backward)


CPP_POOL_OPS = (
    _register(torch.ops.atbsn.shifted_max_pool2d.default, torch.ops.atbsn.shifted_max_pool2d_backward.default)
    if _cpp_ops_built() else None
)
TRITON_POOL_OPS = _register_triton_ops() if triton_installed() else None


def pool_op(backend: str):
    """The forward op that runs ``backend`` ("cpu", "cuda" or "triton")."""
    if backend == "triton":
        return TRITON_POOL_OPS[0]
    if CPP_POOL_OPS is None:
        raise BackendUnavailableError(
            f"backend {backend!r}: the loaded atbsn_kernels._C has no shifted_max_pool2d kernels "
            f"(built from older sources); rebuild it: {_ext.BUILD_HINT}"
        )
    return CPP_POOL_OPS[0]
