"""``upsample_cat``: a U-Net decoder's input, ``cat(nearest 2x upsampling of x, skip)``, in one pass.

Follow a call from the API to the kernels: :func:`upsample_cat` checks x and skip, promotes them to
one dtype (as ``torch.cat`` does) and calls the custom op ``atbsn::upsample_cat_dispatch``
(autograd: ``..._dispatch_backward``, which needs only the gradient and Cx, so nothing is saved);
eager calls on plain tensors run the same two functions without the dispatcher (``DispatchOps``).
Each picks its backend (as asked, or measured for ``"auto"``) and calls that entry of
:data:`IMPLEMENTATIONS`:

============  ===========================================================  ============
backend       forward / backward                                           source
============  ===========================================================  ============
reference     ``reference.upsample_cat`` / ``..._backward``                reference.py
vendor        ``torch.cat`` of ``F.interpolate`` / ATen's backward         vendor.py
cpu           ``atbsn::upsample_cat[_backward]``, CPU dispatch key         csrc/cpu
cuda          the same C++ ops, CUDA dispatch key                          csrc/cuda
triton        ``atbsn::upsample_cat[_backward]_triton``                    triton/
============  ===========================================================  ============

Semantics: docs/kernel-contract.md.
"""

from __future__ import annotations

import torch

from atbsn_kernels import _checks, _ext, autocast, reference, vendor
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

__all__ = ["IMPLEMENTATIONS", "upsample_cat"]


def _output_shape(x, skip) -> tuple[int, int, int, int]:
    n, cx, h, w = x.shape
    return n, cx + skip.shape[1], 2 * h, 2 * w


def _forward_fake(x, skip, *backend):
    """Output ``[N, Cx + Cs, 2h, 2w]``, contiguous, dtype of x."""
    return x.new_empty(_output_shape(x, skip))


def _backward_fake(grad_out, x_channels, *backend):
    """(grad_x ``[N, Cx, H/2, W/2]``, grad_skip ``[N, Cs, H, W]``), contiguous, dtype of grad_out."""
    n, c, h, w = grad_out.shape
    return (grad_out.new_empty((n, x_channels, h // 2, w // 2)),
            grad_out.new_empty((n, c - x_channels, h, w)))


def _autograd_rule(backward: callable) -> tuple[callable, callable]:
    """The autograd of a forward op ``(x, skip, *extra)``: ``backward(grad_out, Cx, *extra)`` gives both grads."""

    def setup_context(ctx, inputs, output):
        ctx.x_channels = inputs[0].shape[1]
        ctx.extra = inputs[2:]

    def autograd_backward(ctx, grad_out):
        return tuple(backward(grad_out, ctx.x_channels, *ctx.extra)) + (None,) * len(ctx.extra)

    return setup_context, autograd_backward


def _triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) on first use."""
    from atbsn_kernels.triton import upsample_cat as kernels

    @torch.library.triton_op("atbsn::upsample_cat_triton", mutates_args=())
    def forward(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return kernels.forward(x, skip)

    @torch.library.triton_op("atbsn::upsample_cat_backward_triton", mutates_args=())
    def backward(grad_out: torch.Tensor, x_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        return kernels.backward(grad_out, x_channels)

    register_op_pair((forward, backward), (_forward_fake, _backward_fake), _autograd_rule)
    return forward, backward


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(lambda: (reference.upsample_cat, reference.upsample_cat_backward)),
    "vendor": Implementation(lambda: (vendor.upsample_cat_forward, vendor.upsample_cat_backward)),
    "cpu": Implementation(lambda: cpp_kernel_ops("upsample_cat")),
    "cuda": Implementation(lambda: cpp_kernel_ops("upsample_cat"), GPU_KERNEL_DTYPES),
    "triton": Implementation(_triton_ops),
}

if _ext.extension_loaded():
    register_op_pair(cpp_kernel_ops("upsample_cat"), (_forward_fake, _backward_fake), _autograd_rule)


def _signature(t: torch.Tensor, out_shape: tuple[int, ...], x_channels: int) -> str:
    """The tuner's signature of a call on ``t`` (x forward, grad_out backward): its dtype and layout,
    the output's sizes and Cx."""
    return describe_call("upsample_cat", t.dtype, tuple(out_shape),
                         t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous(),
                         x_channels=x_channels)


def _forward(x: torch.Tensor, skip: torch.Tensor, backend: str) -> torch.Tensor:
    """The forward of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        with autocast.off(x.device):
            return IMPLEMENTATIONS[name].forward(x, skip)

    signature = lambda: _signature(x, _output_shape(x, skip), x.shape[1])  # noqa: E731
    return run(choose(IMPLEMENTATIONS, backend, x, signature, "forward", run))


def _backward(grad_out: torch.Tensor, x_channels: int, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_skip) of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        with autocast.off(grad_out.device):
            return IMPLEMENTATIONS[name].backward(grad_out, x_channels)

    signature = lambda: _signature(grad_out, grad_out.shape, x_channels)  # noqa: E731
    return run(choose(IMPLEMENTATIONS, backend, grad_out, signature, "backward", run))


_OPS = DispatchOps("upsample_cat", _forward, _backward, (_forward_fake, _backward_fake), _autograd_rule)
_dispatch, _dispatch_backward = _OPS.forward, _OPS.backward


def upsample_cat(x: torch.Tensor, skip: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """``torch.cat((F.interpolate(x, scale_factor=2, mode="nearest"), skip), 1)`` in one pass.

    A U-Net decoder's input: x's pixels repeated into 2x2 blocks, then skip's channels. Values
    are copied, so exact in every dtype; the gradient of x sums each 2x2 block (in fp32, fp64
    for fp64). x and skip are promoted to one dtype as ``torch.cat`` promotes them.

    Args:
        x: ``[N, Cx, h, w]`` float16/bfloat16/float32/float64, any layout, h, w >= 1.
        skip: ``[N, Cs, 2h, 2w]`` on x's device.
        backend: "auto" (measured per signature), "reference", "vendor", "cpu", "cuda" or "triton"
            (see ``atbsn_kernels.backends``).

    Returns ``[N, Cx + Cs, 2h, 2w]``, contiguous.
    """
    _checks.check_upsample_cat_inputs(x, skip)
    dtype = torch.promote_types(x.dtype, skip.dtype)
    x, skip = x.to(dtype), skip.to(dtype)
    name = resolve_backend(backend, x.device)
    if name != "auto":
        IMPLEMENTATIONS[name].check_dtype(name, dtype)
    return _OPS(x, skip, name)
