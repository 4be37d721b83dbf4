"""Public functional API: argument checks, backend dispatch, then the chosen implementation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atbsn_kernels import _checks, reference
from atbsn_kernels._custom_ops import conv_op
from atbsn_kernels._pool_custom_ops import pool_op
from atbsn_kernels.backends import resolve_backend

__all__ = ["blind_spot_conv2d", "shifted_conv2d", "shifted_max_pool2d"]


def _check_cuda_dtype(backend: str, dtype: torch.dtype) -> None:
    """The CUDA kernels take float16, bfloat16 and float32 tensors."""
    if backend == "cuda" and dtype == torch.float64:
        raise TypeError("backend 'cuda' supports float16, bfloat16 and float32 tensors, got float64; "
                        "use backend='triton' or 'reference'")


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
    _check_cuda_dtype(name, x.dtype)
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


# A shifted 3x3 conv is a 5x5 masked conv whose active taps are rows 0..2, columns 1..3: output
# row h then reads input rows h-2..h and columns w-1..w+1 (DESIGN.md 2).
SHIFTED_TAPS = tuple(i * 5 + j for i in range(3) for j in range(1, 4))


def shifted_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    negative_slope: float | None = 0.1,
    backend: str = "auto",
) -> torch.Tensor:
    """AT-BSN's half-plane 3x3 conv: output row h sees input rows h-2..h only.

    Equals the official ``shift down one row -> 3x3 conv (zero pad 1) -> crop last row ->
    LeakyReLU`` (``reference.shifted_conv2d``) in one fused pass: the 3x3 weight runs as the
    upper-centre block of a 5x5 blind-spot conv whose other taps are skipped.

    x ``[N, Cin, H, W]``, weight ``[Cout, Cin, 3, 3]``, bias ``[Cout]`` or None;
    ``negative_slope`` None or >= 0 (fused LeakyReLU, official: 0.1). Returns ``[N, Cout, H, W]``.
    """
    _checks.check_feature_tensors(x, weight, bias)
    if weight.shape[-1] != 3:
        raise ValueError(f"weight must hold a 3x3 kernel for shifted_conv2d, got {tuple(weight.shape[-2:])}")
    negative_slope = _checks.check_negative_slope(negative_slope)
    name = resolve_backend(backend, x.device)
    if name == "reference":
        return reference.shifted_conv2d(x, weight, bias, negative_slope)
    return dispatch_blind_spot_conv2d(x, F.pad(weight, (1, 1, 0, 2)), bias, SHIFTED_TAPS, 1, negative_slope, name)


def shifted_max_pool2d(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """AT-BSN's blind 2x2 max-pool: shift down one row (zero row on top), then 2x2 max-pool (floor).

    Output row i is the maximum over input rows 2i - 1 (the zero row for i = 0) and 2i, so it
    never sees the rows below 2i. Gradients follow ``F.max_pool2d`` (each window's first maximum,
    or its last NaN, gets it) and are dropped where the zero row wins.

    Args:
        x: ``[N, C, H, W]`` float16/bfloat16/float32/float64 (NCHW or channels-last), H, W >= 2.
        backend: "auto", "triton", "cuda", "cpu" or "reference" (see ``atbsn_kernels.backends``).

    Returns ``[N, C, H//2, W//2]``.
    """
    _checks.check_pool_input(x)
    name = resolve_backend(backend, x.device)
    _check_cuda_dtype(name, x.dtype)
    if name == "reference":
        return reference.shifted_max_pool2d(x)
    return pool_op(name)(x)
