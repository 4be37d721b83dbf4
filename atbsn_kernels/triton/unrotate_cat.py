"""Triton kernels of AT-BSN's head input: the four turns' features shifted down, turned back and
concatenated on the channels, in one pass. Semantics: docs/kernel-contract.md.

features ``[4N, C, S, S]`` holds turn k (``rot90(image, -k)``) in batch block k; the output
``[N, 4C, S, S]`` holds in channel block k that turn shifted down ``shift`` rows in its own frame
and turned back, ``rot90(shift_down(turn k), k)``. Neither the shifted nor the turned maps are
ever materialised.

- ``_unrotate_cat_forward_kernel``: one element of the output per lane; it loads turn k's pixel
  ``(r - shift, q)``, with ``(r, q)`` the pixel that ``rot90(., k)`` moves to the lane's ``(i, j)``,
  or stores 0 where ``r < shift`` (a row shifted in at the top).
- ``_unrotate_cat_backward_kernel``: gather formulation, one element of grad_features per lane; it
  loads the grad_out element its features element was copied to, or stores 0 in the last
  ``shift`` rows (shifted out, no gradient).

Both are copies of the stored values, exact in every dtype, and every output element is written
by one lane: no zero fill, no atomics. Inputs are addressed through their strides (NCHW,
channels-last, slices or expanded gradients) with 64-bit offsets; outputs are contiguous NCHW.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from atbsn_kernels.triton.elementwise import compile_target, split_flat
from atbsn_kernels.triton.launch import on_device

BLOCK = 1024  # lanes per program: big blocks keep the interpreter's program count low


@triton.jit
def _rot90_source(turns, i, j, S):
    """(r, q) with ``rot90(y, turns, (2, 3))[i, j] = y[r, q]`` for S x S maps y; ``turns`` in 0..3, per lane."""
    r = tl.where(turns == 0, i, tl.where(turns == 1, j, tl.where(turns == 2, S - 1 - i, S - 1 - j)))
    q = tl.where(turns == 0, j, tl.where(turns == 1, S - 1 - i, tl.where(turns == 2, S - 1 - j, i)))
    return r, q


@triton.jit
def _unrotate_cat_forward_kernel(
    f_ptr, out_ptr, total, N, C, S, SHIFT,
    f_n, f_c, f_h, f_w,
    BLOCK: tl.constexpr,
):
    """out ``[N, 4C, S, S]`` (contiguous) from features ``[4N, C, S, S]`` (strides f_*), shifted SHIFT rows.

    Lane = one output element, ``total`` lanes; channel block k reads batch block k.
    """
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    n, channel, i, j = split_flat(flat, 4 * C, S, S)
    k = channel // C
    r, q = _rot90_source(k, i, j, S)
    row = r - SHIFT  # the features row that shift_down moves to row r
    inside = ok & (row >= 0)
    v = tl.load(f_ptr + (k * N + n) * f_n + (channel - k * C) * f_c + row * f_h + q * f_w, mask=inside, other=0.0)
    tl.store(out_ptr + flat, v, mask=ok)


@triton.jit
def _unrotate_cat_backward_kernel(
    g_ptr, gf_ptr, total, N, C, S, SHIFT,
    g_n, g_c, g_h, g_w,
    BLOCK: tl.constexpr,
):
    """grad_features ``[4N, C, S, S]`` (contiguous) of g ``[N, 4C, S, S]`` (strides g_*), shifted SHIFT rows.

    Lane = one element ``(k*N + n, c, a, b)`` of grad_features, ``total`` lanes: it is
    ``rot90(g_k, -k)[a + SHIFT, b]`` (g_k = channel block k of g), 0 when ``a + SHIFT >= S``.
    """
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    batch, c, a, b = split_flat(flat, C, S, S)
    k = batch // N
    r = a + SHIFT  # the row of turn k's shifted map that features row a moved to
    i, j = _rot90_source((4 - k) % 4, r, b, S)  # rot90(., -k) = rot90(., 4 - k)
    inside = ok & (r < S)
    v = tl.load(g_ptr + (batch - k * N) * g_n + (k * C + c) * g_c + i * g_h + j * g_w, mask=inside, other=0.0)
    tl.store(gf_ptr + flat, v, mask=ok)


def _grid(lanes: int) -> tuple[int]:
    return (triton.cdiv(lanes, BLOCK),)


def forward(features: torch.Tensor, shift: int) -> torch.Tensor:
    """out ``[N, 4C, S, S]`` (contiguous) of features ``[4N, C, S, S]`` and ``shift`` >= 0 rows."""
    batch, c, s, _ = features.shape
    out = torch.empty((batch // 4, 4 * c, s, s), dtype=features.dtype, device=features.device)
    if out.numel() > 0:
        # Any shift >= S shifts every row out, as S does: min(shift, S) keeps SHIFT small (an i32).
        with on_device(features):
            wrap_triton(_unrotate_cat_forward_kernel)[_grid(out.numel())](
                features, out, out.numel(), batch // 4, c, s, min(shift, s), *features.stride(), BLOCK=BLOCK
            )
    return out


def backward(grad_out: torch.Tensor, shift: int) -> torch.Tensor:
    """grad_features ``[4N, C, S, S]`` (contiguous, dtype of grad_out) from grad_out ``[N, 4C, S, S]`` and ``shift``."""
    n, channels, s, _ = grad_out.shape
    grad_features = torch.empty((4 * n, channels // 4, s, s), dtype=grad_out.dtype, device=grad_out.device)
    if grad_features.numel() > 0:
        with on_device(grad_out):
            wrap_triton(_unrotate_cat_backward_kernel)[_grid(grad_features.numel())](
                grad_out, grad_features, grad_features.numel(), n, channels // 4, s, min(shift, s),
                *grad_out.stride(), BLOCK=BLOCK,
            )
    return grad_features


_SIZES = ("total", "N", "C", "S", "SHIFT")
COMPILE_TARGETS = [
    target
    for dtype in ("fp32", "bf16")
    for target in (
        compile_target(f"unrotate_cat_forward_{dtype}", _unrotate_cat_forward_kernel, ("f_ptr", "out_ptr"),
                       _SIZES + ("f_n", "f_c", "f_h", "f_w"), dtype, BLOCK),
        compile_target(f"unrotate_cat_backward_{dtype}", _unrotate_cat_backward_kernel, ("g_ptr", "gf_ptr"),
                       _SIZES + ("g_n", "g_c", "g_h", "g_w"), dtype, BLOCK),
    )
]
