"""Public functional API: argument checks, backend dispatch, then the chosen implementation."""

from __future__ import annotations

import torch

from atbsn_kernels import _checks, reference
from atbsn_kernels._custom_ops import conv_op
from atbsn_kernels.backends import resolve_backend

__all__ = ["blind_spot_conv2d"]


def dispatch_blind_spot_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    taps: tuple[int, ...],
    dilation: int,
    negative_slope: float | None,
    backend: str,
) -> torch.Tensor:
    """Run :func:`blind_spot_conv2d` on already validated arguments and resolved active taps."""
    name = resolve_backend(backend, x.device)
    if name == "cuda" and x.dtype == torch.float64:
        raise TypeError("backend 'cuda' supports float16, bfloat16 and float32 tensors, got float64; "
                        "use backend='triton' or 'reference'")
    if name == "reference":
        mask = _checks.taps_to_mask(taps, weight.shape[-1], x.device)
        return reference.blind_spot_conv2d(x, weight, bias, mask, dilation, negative_slope)
    return conv_op(name)(x, weight, bias, list(taps), dilation, negative_slope)


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
        negative_slope: None, or a float >= 0 for a fused LeakyReLU.
        backend: "auto", "triton", "cuda", "cpu" or "reference" (see ``atbsn_kernels.backends``).

    Returns ``[N, Cout, H, W]``. Masked taps get exactly zero weight gradient.
    """
    _checks.check_feature_tensors(x, weight, bias)
    taps = _checks.resolve_taps(weight.shape[-1], blind, mask)
    dilation = _checks.check_dilation(dilation)
    negative_slope = _checks.check_negative_slope(negative_slope)
    return dispatch_blind_spot_conv2d(x, weight, bias, taps, dilation, negative_slope, backend)
