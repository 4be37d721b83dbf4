"""``blind_spot_conv2d``: the masked convolution every blind-spot network is built of.

Follow a call from the API to the kernels:

1. :func:`blind_spot_conv2d` checks the arguments and turns ``blind``/``mask`` into active taps
   (``atbsn_kernels.taps``); :func:`blind_spot_conv2d_taps` takes taps directly (``nn``, dilation).
2. Both call the custom op ``atbsn::blind_spot_conv2d_dispatch`` with the requested backend. Its
   autograd formula calls ``atbsn::blind_spot_conv2d_dispatch_backward``. Both ops are opaque to
   ``torch.compile`` (fake kernels below), so the backend is chosen when they run, outside the graph.
   An eager call on plain tensors runs the same two functions through an autograd.Function instead
   (:class:`~atbsn_kernels.ops.implementation.DispatchOps`), skipping the dispatcher's overhead.
3. Each op picks its backend per direction (:func:`~atbsn_kernels.ops.implementation.choose`:
   as asked, or measured by the tuner for ``"auto"``) and calls that entry of
   :data:`IMPLEMENTATIONS`:

   ============  ==================================================================  =============
   backend       forward / backward                                                  source
   ============  ==================================================================  =============
   reference     ``reference.blind_spot_conv2d`` / ``..._backward`` (autograd)       reference.py
   vendor        ``F.conv2d`` / ``aten.convolution_backward`` on the masked weight   vendor.py
   cpu           ``atbsn::blind_spot_conv2d[_backward]``, CPU dispatch key           csrc/cpu
   cuda          the same C++ ops, CUDA dispatch key                                 csrc/cuda
   triton        ``atbsn::blind_spot_conv2d[_backward]_triton`` (``triton_op``)      triton/
   ============  ==================================================================  =============

The kernel ops themselves (C++ and Triton) also carry fake kernels and this module's autograd
formula, so they can be called and compiled on their own. Semantics: docs/kernel-contract.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

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
    tuner_key,
)
from atbsn_kernels.taps import resolve_taps
from atbsn_kernels.tuning import TUNER, Decision

__all__ = ["DIRECTIONS", "IMPLEMENTATIONS", "auto_decisions", "blind_spot_conv2d", "blind_spot_conv2d_taps"]

DIRECTIONS = ("forward", "backward", "grad_input", "grad_weight")


def _conv_fake(x, weight, bias, taps, dilation, negative_slope, *backend):
    """Output ``[N, Cout, H, W]``, contiguous, dtype of x."""
    return x.new_empty((x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))


def _conv_backward_fake(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask, *backend):
    """(grad_x like x, grad_weight like weight, grad_bias ``[Cout]``); empty when not requested."""
    grad_x = x.new_empty(x.shape) if output_mask[0] else x.new_empty(0)
    grad_w = weight.new_empty(weight.shape) if output_mask[1] else weight.new_empty(0)
    grad_b = weight.new_empty(weight.shape[0]) if output_mask[2] else weight.new_empty(0)
    return grad_x, grad_w, grad_b


def _autograd_rule(backward: callable) -> tuple[callable, callable]:
    """The autograd of a forward op whose inputs are (x, weight, bias, taps, dilation, slope, *extra):
    ``backward(grad_out, x, weight, out, taps, dilation, slope, output_mask, *extra)`` gives the grads.

    Saved for the backward: x and the weight, and the output only with a fused LeakyReLU (whose
    derivative is read from it). Without one, the output may be changed in place afterwards
    (``nn.ReLU(inplace=True)``, ``y += skip``) and the backward still holds; with one, it must not be.
    """

    def setup_context(ctx, inputs, output):
        x, weight, bias, taps, dilation, negative_slope, *extra = inputs
        ctx.save_for_backward(x, weight, output if negative_slope is not None else None)
        ctx.config = (list(taps), dilation, negative_slope, bias is not None, extra)

    def autograd_backward(ctx, grad_out):
        x, weight, out = ctx.saved_tensors
        out = x.new_empty(0) if out is None else out  # without an activation no backward reads it
        taps, dilation, negative_slope, has_bias, extra = ctx.config
        needs = ctx.needs_input_grad
        output_mask = [needs[0], needs[1], has_bias and needs[2]]
        grads = backward(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask, *extra)
        return tuple(g if wanted else None for g, wanted in zip(grads, output_mask)) + (None,) * (3 + len(extra))

    return setup_context, autograd_backward


def _triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) on first use."""
    from atbsn_kernels.triton import blind_spot_conv2d as kernels

    @torch.library.triton_op("atbsn::blind_spot_conv2d_triton", mutates_args=())
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], taps: Sequence[int],
                dilation: int, negative_slope: Optional[float]) -> torch.Tensor:
        return kernels.forward(x, weight, bias, tuple(taps), dilation, negative_slope)

    @torch.library.triton_op("atbsn::blind_spot_conv2d_backward_triton", mutates_args=())
    def backward(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor,
                 taps: Sequence[int], dilation: int, negative_slope: Optional[float],
                 output_mask: Sequence[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return kernels.backward(grad_out, x, weight, out, tuple(taps), dilation, negative_slope, tuple(output_mask))

    register_op_pair((forward, backward), (_conv_fake, _conv_backward_fake), _autograd_rule)
    return forward, backward


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(lambda: (reference.blind_spot_conv2d, reference.blind_spot_conv2d_backward)),
    "vendor": Implementation(lambda: (vendor.conv_forward, vendor.conv_backward)),
    "cpu": Implementation(lambda: cpp_kernel_ops("blind_spot_conv2d")),
    "cuda": Implementation(lambda: cpp_kernel_ops("blind_spot_conv2d"), GPU_KERNEL_DTYPES),
    "triton": Implementation(_triton_ops),
}

if _ext.extension_loaded():
    register_op_pair(cpp_kernel_ops("blind_spot_conv2d"), (_conv_fake, _conv_backward_fake), _autograd_rule)


def _signature(x, weight, taps, dilation, negative_slope, with_bias) -> str:
    return describe_call("blind_spot_conv2d", x.dtype, tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)
                         and not x.is_contiguous(), cout=weight.shape[0], k=weight.shape[-1], taps=tuple(taps),
                         dilation=dilation, act=negative_slope is not None, bias=with_bias)


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], taps: Sequence[int], dilation: int,
             negative_slope: Optional[float], backend: str) -> torch.Tensor:
    """The forward of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        with autocast.off(x.device):
            return IMPLEMENTATIONS[name].forward(x, weight, bias, taps, dilation, negative_slope)

    def signature():
        return _signature(x, weight, taps, dilation, negative_slope, bias is not None)

    out = run(choose(IMPLEMENTATIONS, backend, x, signature, "forward", run))
    # autograd refuses in-place ops (nn.ReLU(inplace=True)) on an output that is a view, such as
    # the reference's reshaped matmul: hand out a tensor of its own
    return out if out._base is None else out.clone()


# Kernels whose input gradient multiplies the zero padding of the gradient by the weight: with a
# NaN or inf active weight that gives NaN at the border, where F.conv2d's gradient (which sums over
# existing outputs only) stays finite, so such calls take the input gradient from the reference.
_ZERO_PADDED_GRAD_INPUT = ("cpu", "cuda", "triton")


def _backward(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor,
              taps: Sequence[int], dilation: int, negative_slope: Optional[float], output_mask: Sequence[bool],
              backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward of ``backend``. Under "auto" a call that wants both the input gradient and the
    weight (+ bias) gradients is one signature ("backward": one backend computes all in one pass
    over the bands), a call that wants only one of them its own ("grad_input", "grad_weight")."""
    want_x, want_wb = bool(output_mask[0]), bool(output_mask[1] or output_mask[2])
    mask = [bool(m) for m in output_mask]

    def run(name, wanted):
        with autocast.off(x.device):
            return IMPLEMENTATIONS[name].backward(grad_out, x, weight, out, taps, dilation, negative_slope, wanted)

    direction = "backward" if want_x and want_wb else "grad_input" if want_x else "grad_weight"

    def signature():
        return _signature(x, weight, taps, dilation, negative_slope, mask[2])

    name = choose(IMPLEMENTATIONS, backend, x, signature, direction, lambda n: run(n, mask))
    if want_x and name in _ZERO_PADDED_GRAD_INPUT and not _finite_active_weight(weight, taps):
        grad_x = run("reference", [True, False, False])[0]  # see _ZERO_PADDED_GRAD_INPUT
        if not want_wb:
            return grad_x, weight.new_empty(0), weight.new_empty(0)
        _, grad_w, grad_b = run(name, [False, mask[1], mask[2]])
        return grad_x, grad_w, grad_b
    return run(name, mask)


def _finite_active_weight(weight: torch.Tensor, taps) -> bool:
    if vendor.all_finite(weight):  # the usual case, without gathering the active taps
        return True
    return vendor.all_finite(weight.flatten(2)[:, :, list(taps)])


_OPS = DispatchOps("blind_spot_conv2d", _forward, _backward, (_conv_fake, _conv_backward_fake), _autograd_rule)
_dispatch, _dispatch_backward = _OPS.forward, _OPS.backward


def auto_decisions(x, weight, bias, taps, dilation: int, negative_slope) -> dict[str, Decision | None]:
    """What ``backend="auto"`` chose for a call with these arguments, per direction of
    :data:`DIRECTIONS` ("backward" is a call that wants every gradient; None where that direction
    has not been measured, or measuring is off)."""
    signature = _signature(x, weight, taps, dilation, negative_slope, bias is not None)
    return {direction: TUNER.decision(x.device, tuner_key(signature, direction)) for direction in DIRECTIONS}


def blind_spot_conv2d_taps(x, weight, bias, taps: tuple[int, ...], dilation: int, negative_slope, backend: str):
    """:func:`blind_spot_conv2d` on checked tensors, active ``taps`` and checked ``dilation`` and slope."""
    name = resolve_backend(backend, x.device)
    if name != "auto":
        IMPLEMENTATIONS[name].check_dtype(name, x.dtype)
    return _OPS(x, weight, bias, list(taps), dilation, negative_slope, name)


def blind_spot_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    blind: int = 1,
    mask=None,
    dilation: int = 1,
    negative_slope: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Blind-spot (masked) convolution: stride 1, zero 'same' padding, masked taps skipped.

    Args:
        x: ``[N, Cin, H, W]`` float16/bfloat16/float32/float64 (NCHW or channels-last).
        weight: ``[Cout, Cin, k, k]``, odd k in 1..11, same dtype and device as x.
        bias: ``[Cout]`` or None.
        blind: size b of the centred b x b square of masked taps; 0 masks nothing, else odd, <= k.
        mask: optional bool ``[k, k]`` tap mask, True = masked; replaces ``blind`` (any shape of
            blind region: MM-BSN's lines and crosses, AM-BSN's X, LG-BPN's diamond).
        dilation: int >= 1; tap (i, j) reads pixel ``(h + dilation*(i - k//2), w + dilation*(j - k//2))``.
        negative_slope: None, or a float >= 0 for a fused LeakyReLU. The backward then reads the
            activation's derivative from the output, which is saved: do not change that output in
            place. Without it only x and the weight are saved, and in-place ops on the output are fine.
        backend: "auto" (measured per signature), "reference", "vendor", "cpu", "cuda" or "triton"
            (see ``atbsn_kernels.backends``).

    Returns ``[N, Cout, H, W]``, contiguous. Masked taps are never read: they get exactly zero weight
    gradient, and a NaN or inf that only they would see does not reach the output.
    """
    x, weight, bias = autocast.conv_operands(x, weight, bias)
    _checks.check_feature_tensors(x, weight, bias)
    taps = resolve_taps(weight.shape[-1], blind, mask)
    dilation = _checks.check_dilation(dilation)
    negative_slope = _checks.check_negative_slope(negative_slope)
    return blind_spot_conv2d_taps(x, weight, bias, taps, dilation, negative_slope, backend)
