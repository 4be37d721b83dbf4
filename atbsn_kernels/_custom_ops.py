"""``torch.library`` registrations of the blind-spot conv ops: fake kernels and autograd.

The C++ ops (``atbsn::blind_spot_conv2d[_backward]``, schema in ``csrc/ops``) exist when the
extension is loaded; the Triton ops (``atbsn::blind_spot_conv2d[_backward]_triton``) when
triton is installed. Both pairs share one autograd formula (see docs/kernel-contract.md).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from atbsn_kernels import _ext
from atbsn_kernels.backends import triton_installed

__all__ = ["conv_op", "CPP_OPS", "TRITON_OPS"]


def _conv_fake(x, weight, bias, taps, dilation, negative_slope):
    """Output ``[N, Cout, H, W]``, contiguous, dtype of x."""
    return x.new_empty((x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))


def _conv_backward_fake(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask):
    """(grad_x like x, grad_weight like weight, grad_bias ``[Cout]``); empty when not requested."""
    grad_x = x.new_empty(x.shape) if output_mask[0] else x.new_empty(0)
    grad_w = weight.new_empty(weight.shape) if output_mask[1] else weight.new_empty(0)
    grad_b = weight.new_empty(weight.shape[0]) if output_mask[2] else weight.new_empty(0)
    return grad_x, grad_w, grad_b


def _setup_context(ctx, inputs, output):
    x, weight, bias, taps, dilation, negative_slope = inputs
    ctx.save_for_backward(x, weight, output)
    ctx.config = (list(taps), dilation, negative_slope, bias is not None)


def _autograd_backward(backward_op):
    """The backward of a forward op, computed by ``backward_op`` (same schema for every backend)."""

    def backward(ctx, grad_out):
        x, weight, out = ctx.saved_tensors
        taps, dilation, negative_slope, has_bias = ctx.config
        needs = ctx.needs_input_grad
        output_mask = [needs[0], needs[1], has_bias and needs[2]]
        grads = backward_op(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask)
        return tuple(g if wanted else None for g, wanted in zip(grads, output_mask)) + (None, None, None)

    return backward


def _register_cpp_ops():
    """Fake kernels and autograd for the C++ ops; returns (forward, backward) op handles."""
    forward, backward = torch.ops.atbsn.blind_spot_conv2d.default, torch.ops.atbsn.blind_spot_conv2d_backward.default
    torch.library.register_fake("atbsn::blind_spot_conv2d")(_conv_fake)
    torch.library.register_fake("atbsn::blind_spot_conv2d_backward")(_conv_backward_fake)
    torch.library.register_autograd(
        "atbsn::blind_spot_conv2d", _autograd_backward(backward), setup_context=_setup_context
    )
    return forward, backward


def _register_triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) and their autograd."""
    from atbsn_kernels.triton import blind_spot_conv2d as kernels

    @torch.library.triton_op("atbsn::blind_spot_conv2d_triton", mutates_args=())
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        taps: Sequence[int],
        dilation: int,
        negative_slope: Optional[float],
    ) -> torch.Tensor:
        return kernels.forward(x, weight, bias, tuple(taps), dilation, negative_slope)

    @torch.library.triton_op("atbsn::blind_spot_conv2d_backward_triton", mutates_args=())
    def backward(
        grad_out: torch.Tensor,
        x: torch.Tensor,
        weight: torch.Tensor,
        out: torch.Tensor,
        taps: Sequence[int],
        dilation: int,
        negative_slope: Optional[float],
        output_mask: Sequence[bool],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return kernels.backward(grad_out, x, weight, out, tuple(taps), dilation, negative_slope, tuple(output_mask))

    forward.register_fake(_conv_fake)
    backward.register_fake(_conv_backward_fake)
    forward.register_autograd(_autograd_backward(backward), setup_context=_setup_context)
    return forward, backward


CPP_OPS = _register_cpp_ops() if _ext.extension_loaded() else None
TRITON_OPS = _register_triton_ops() if triton_installed() else None


def conv_op(backend: str):
    """The forward op that runs ``backend`` ("cpu", "cuda" or "triton")."""
    return (TRITON_OPS if backend == "triton" else CPP_OPS)[0]
