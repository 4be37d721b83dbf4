"""``shifted_max_pool2d``: AT-BSN's blind 2x2 max-pool (shift down one row, then pool).

Follow a call from the API to the kernels: :func:`shifted_max_pool2d` checks x and calls the
custom op ``atbsn::shifted_max_pool2d_dispatch`` (autograd: ``..._dispatch_backward``, which
recomputes the argmax from x, so nothing but x is saved); eager calls on plain tensors run the
same two functions without the dispatcher (``DispatchOps``). Each picks its backend (as asked, or
measured for ``"auto"``) and calls that entry of :data:`IMPLEMENTATIONS`:

============  ===========================================================  ============
backend       forward / backward                                           source
============  ===========================================================  ============
reference     ``reference.shifted_max_pool2d`` / ``..._backward``          reference.py
vendor        ``F.max_pool2d`` of the shifted input / ATen's backward      vendor.py
cpu           ``atbsn::shifted_max_pool2d[_backward]``, CPU dispatch key   csrc/cpu
cuda          the same C++ ops, CUDA dispatch key                          csrc/cuda
triton        ``atbsn::shifted_max_pool2d[_backward]_triton``              triton/
============  ===========================================================  ============

Semantics: docs/kernel-contract.md.
"""

from __future__ import annotations

import torch

from atbsn_kernels import _checks, _ext, reference, vendor
from atbsn_kernels.backends import resolve_backend
from atbsn_kernels.ops.implementation import (
    GPU_KERNEL_DTYPES,
    DispatchOps,
    Implementation,
    choose,
    cpp_kernel_ops,
    describe_call,
    register_op_pair,
)

__all__ = ["IMPLEMENTATIONS", "shifted_max_pool2d"]


def _pool_fake(x, *backend):
    """Output ``[N, C, H//2, W//2]``, contiguous, dtype of x."""
    n, c, h, w = x.shape
    return x.new_empty((n, c, h // 2, w // 2))


def _pool_backward_fake(grad_out, x, *backend):
    """grad_x ``[N, C, H, W]``, contiguous, dtype of x."""
    return x.new_empty(x.shape)


def _autograd_rule(backward: callable) -> tuple[callable, callable]:
    """The autograd of a forward op ``(x, *extra)``: ``backward(grad_out, x, *extra)`` gives grad_x."""

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.extra = inputs[1:]

    def autograd_backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return (backward(grad_out, x, *ctx.extra),) + (None,) * len(ctx.extra)

    return setup_context, autograd_backward


def _triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) on first use."""
    from atbsn_kernels.triton import shifted_max_pool2d as kernels

    @torch.library.triton_op("atbsn::shifted_max_pool2d_triton", mutates_args=())
    def forward(x: torch.Tensor) -> torch.Tensor:
        return kernels.forward(x)

    @torch.library.triton_op("atbsn::shifted_max_pool2d_backward_triton", mutates_args=())
    def backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return kernels.backward(grad_out, x)

    register_op_pair((forward, backward), (_pool_fake, _pool_backward_fake), _autograd_rule)
    return forward, backward


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(lambda: (reference.shifted_max_pool2d, reference.shifted_max_pool2d_backward)),
    "vendor": Implementation(lambda: (vendor.pool_forward, vendor.pool_backward)),
    "cpu": Implementation(lambda: cpp_kernel_ops("shifted_max_pool2d")),
    "cuda": Implementation(lambda: cpp_kernel_ops("shifted_max_pool2d"), GPU_KERNEL_DTYPES),
    "triton": Implementation(_triton_ops),
}

if _ext.extension_loaded():
    register_op_pair(cpp_kernel_ops("shifted_max_pool2d"), (_pool_fake, _pool_backward_fake), _autograd_rule)


def _signature(x) -> str:
    return describe_call("shifted_max_pool2d", x.dtype, tuple(x.shape),
                         x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())


def _forward(x: torch.Tensor, backend: str) -> torch.Tensor:
    """The forward of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        return IMPLEMENTATIONS[name].forward(x)

    return run(choose(IMPLEMENTATIONS, backend, x, lambda: _signature(x), "forward", run))


def _backward(grad_out: torch.Tensor, x: torch.Tensor, backend: str) -> torch.Tensor:
    """grad_x of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        return IMPLEMENTATIONS[name].backward(grad_out, x)

    return run(choose(IMPLEMENTATIONS, backend, x, lambda: _signature(x), "grad_input", run))


_OPS = DispatchOps("shifted_max_pool2d", _forward, _backward, (_pool_fake, _pool_backward_fake), _autograd_rule)
_dispatch, _dispatch_backward = _OPS.forward, _OPS.backward


def shifted_max_pool2d(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """AT-BSN's blind 2x2 max-pool: shift down one row (zero row on top), then 2x2 max-pool (floor).

    Output row i is the maximum over input rows 2i - 1 (the zero row for i = 0) and 2i, so it
    never sees the rows below 2i. Gradients follow ``F.max_pool2d`` (each window's first maximum,
    or its last NaN, gets it) and are dropped where the zero row wins.

    Args:
        x: ``[N, C, H, W]`` float16/bfloat16/float32/float64 (NCHW or channels-last), H, W >= 2.
        backend: "auto" (measured per signature), "reference", "vendor", "cpu", "cuda" or "triton"
            (see ``atbsn_kernels.backends``).

    Returns ``[N, C, H//2, W//2]``, contiguous.
    """
    _checks.check_pool_input(x)
    name = resolve_backend(backend, x.device)
    if name != "auto":
        IMPLEMENTATIONS[name].check_dtype(name, x.dtype)
    return _OPS(x, name)
