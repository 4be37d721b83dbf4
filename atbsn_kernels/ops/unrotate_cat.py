"""``unrotate_cat``: AT-BSN's head input (the four turns' features shifted down, turned back and
concatenated on the channels) in one pass.

Follow a call from the API to the kernels: :func:`unrotate_cat` checks the features and the shift
and calls the custom op ``atbsn::unrotate_cat_dispatch`` (autograd: ``..._dispatch_backward``, the
inverse copy, which needs only the gradient and the shift, so nothing is saved); eager calls on
plain tensors run the same two functions without the dispatcher (``DispatchOps``). Each picks its
backend (as asked, or measured for ``"auto"``) and calls that entry of :data:`IMPLEMENTATIONS`:

============  ===========================================================  ============
backend       forward / backward                                           source
============  ===========================================================  ============
reference     ``reference.unrotate_cat`` / ``..._backward``                reference.py
vendor        pad-crop, ``transpose``/``flip``, ``torch.cat`` (official)   vendor.py
cpu           ``atbsn::unrotate_cat[_backward]``, CPU dispatch key         csrc/cpu
cuda          the same C++ ops, CUDA dispatch key                          csrc/cuda
triton        ``atbsn::unrotate_cat[_backward]_triton``                    triton/
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

__all__ = ["IMPLEMENTATIONS", "unrotate_cat"]


def _forward_fake(features, shift, *backend):
    """Output ``[N, 4C, S, S]``, contiguous, dtype of features."""
    b, c, h, w = features.shape
    return features.new_empty((b // 4, 4 * c, h, w))


def _features_shape(grad_out) -> tuple[int, int, int, int]:
    n, c, h, w = grad_out.shape
    return 4 * n, c // 4, h, w


def _backward_fake(grad_out, shift, *backend):
    """grad_features ``[4N, C, S, S]``, contiguous, dtype of grad_out."""
    return grad_out.new_empty(_features_shape(grad_out))


def _autograd_rule(backward: callable) -> tuple[callable, callable]:
    """The autograd of a forward op ``(features, shift, *extra)``: ``backward(grad_out, shift, *extra)``."""

    def setup_context(ctx, inputs, output):
        ctx.args = inputs[1:]

    def autograd_backward(ctx, grad_out):
        return (backward(grad_out, *ctx.args),) + (None,) * len(ctx.args)

    return setup_context, autograd_backward


def _triton_ops():
    """Define the Triton ops with ``triton_op`` (traceable by torch.compile) on first use."""
    from atbsn_kernels.triton import unrotate_cat as kernels

    @torch.library.triton_op("atbsn::unrotate_cat_triton", mutates_args=())
    def forward(features: torch.Tensor, shift: int) -> torch.Tensor:
        return kernels.forward(features, shift)

    @torch.library.triton_op("atbsn::unrotate_cat_backward_triton", mutates_args=())
    def backward(grad_out: torch.Tensor, shift: int) -> torch.Tensor:
        return kernels.backward(grad_out, shift)

    register_op_pair((forward, backward), (_forward_fake, _backward_fake), _autograd_rule)
    return forward, backward


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": Implementation(lambda: (reference.unrotate_cat, reference.unrotate_cat_backward)),
    "vendor": Implementation(lambda: (vendor.unrotate_cat_forward, vendor.unrotate_cat_backward)),
    "cpu": Implementation(lambda: cpp_kernel_ops("unrotate_cat")),
    "cuda": Implementation(lambda: cpp_kernel_ops("unrotate_cat"), GPU_KERNEL_DTYPES),
    "triton": Implementation(_triton_ops),
}

if _ext.extension_loaded():
    register_op_pair(cpp_kernel_ops("unrotate_cat"), (_forward_fake, _backward_fake), _autograd_rule)


def _signature(t: torch.Tensor, features_shape: tuple[int, ...]) -> str:
    """The tuner's signature of a call on ``t`` (features forward, grad_out backward): its dtype and
    layout and the features' sizes."""
    return describe_call("unrotate_cat", t.dtype, tuple(features_shape),
                         t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous())


def _forward(features: torch.Tensor, shift: int, backend: str) -> torch.Tensor:
    """The forward of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        return IMPLEMENTATIONS[name].forward(features, shift)

    signature = lambda: _signature(features, features.shape)  # noqa: E731
    return run(choose(IMPLEMENTATIONS, backend, features, signature, "forward", run))


def _backward(grad_out: torch.Tensor, shift: int, backend: str) -> torch.Tensor:
    """grad_features of ``backend`` (a concrete name, or "auto": measured per signature)."""

    def run(name):
        return IMPLEMENTATIONS[name].backward(grad_out, shift)

    signature = lambda: _signature(grad_out, _features_shape(grad_out))  # noqa: E731
    return run(choose(IMPLEMENTATIONS, backend, grad_out, signature, "backward", run))


_OPS = DispatchOps("unrotate_cat", _forward, _backward, (_forward_fake, _backward_fake), _autograd_rule)
_dispatch, _dispatch_backward = _OPS.forward, _OPS.backward


def unrotate_cat(features: torch.Tensor, shift: int, *, backend: str = "auto") -> torch.Tensor:
    """AT-BSN's head input: the four turns' features, each shifted down and turned back, on the channels.

    ``features`` holds the U-Net features of the image's four turns on the batch (turn k,
    ``torch.rot90(image, -k, (2, 3))``, in batch block k). Each turn moves down ``shift`` rows in
    its own frame (zero rows enter at the top), is turned back (``torch.rot90(., k, (2, 3))``),
    and the four are concatenated on the channels, as the official code's pad, crop, transposes,
    flips and ``torch.cat`` do, in one copy. The gradient is the inverse copy.

    Args:
        features: ``[4N, C, S, S]`` float16/bfloat16/float32/float64, any layout, S >= 1.
        shift: rows, an int >= 0 (AT-BSN: ``(hole_size + 1) // 2``).
        backend: "auto" (measured per signature), "reference", "vendor", "cpu", "cuda" or "triton"
            (see ``atbsn_kernels.backends``).

    Returns ``[N, 4C, S, S]``, contiguous.
    """
    shift = _checks.check_unrotate_cat_inputs(features, shift)
    name = resolve_backend(backend, features.device)
    if name != "auto":
        IMPLEMENTATIONS[name].check_dtype(name, features.dtype)
    return _OPS(features, shift, name)
