"""Triton kernels of the U-Net decoder input: nearest 2x upsampling and concatenation in one pass.
Semantics: docs/kernel-contract.md.

The output ``[N, Cx + Cs, 2h, 2w]`` holds x ``[N, Cx, h, w]`` upsampled in its first Cx channels
and skip ``[N, Cs, 2h, 2w]`` in the rest; the upsampled intermediate is never materialised.

- ``_upsample_cat_forward_kernel``: one element of the output per lane; it loads from x (pixel
  ``(row // 2, col // 2)``) or from skip, by channel, and stores the loaded value itself, so the
  output is an exact copy in every dtype.
- ``_upsample_cat_backward_kernel``: one 2x2 block of one channel of grad_out
  ``[N, Cx + Cs, H, W]`` per lane, ``N * (Cx + Cs) * H/2 * W/2`` lanes covering grad_out exactly
  once. An x channel's lane adds its four values in the order ``(2i, 2j) + (2i, 2j+1) +
  (2i+1, 2j) + (2i+1, 2j+1)`` in fp32 (fp64 for fp64) and rounds once into grad_x; a skip
  channel's lane copies its four values into grad_skip. Every output element is written by one
  lane: no zero fill, no atomics, the same bits on every run. H and W are even (grad_out is the
  gradient of a forward output).

Inputs are addressed through their strides (NCHW, channels-last, slices or expanded gradients)
with 64-bit offsets; outputs are contiguous NCHW.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from atbsn_kernels.triton.elementwise import compile_target, split_flat
from atbsn_kernels.triton.launch import on_device

BLOCK = 1024  # lanes per program: big blocks keep the interpreter's program count low

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
# The interpreter widens bf16 subnormals to 0 and truncates fp32 -> bf16: convert bf16 by hand there (only there).
_BF16_BY_HAND = tl.constexpr(INTERPRETING)


@triton.jit
def _widen(v, acc_type: tl.constexpr):
    """v exactly in ``acc_type`` (fp32, or fp64 for fp64)."""
    if _BF16_BY_HAND and v.dtype == tl.bfloat16:
        return (v.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return v.to(acc_type)


@triton.jit
def _round(acc, dtype: tl.constexpr):
    """acc (fp32, or fp64 for fp64) rounded once, to nearest even, into ``dtype``."""
    if _BF16_BY_HAND and dtype == tl.bfloat16:
        bits = acc.to(tl.uint32, bitcast=True)
        nearest_even = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return tl.where(acc != acc, 0x7FC0, nearest_even).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return acc.to(dtype)


@triton.jit
def _upsample_cat_forward_kernel(
    x_ptr, skip_ptr, out_ptr, total, CX, C, H, W,
    x_n, x_c, x_h, x_w,
    s_n, s_c, s_h, s_w,
    BLOCK: tl.constexpr,
):
    """out ``[N, C, H, W]`` (contiguous) from x ``[N, CX, H/2, W/2]`` and skip ``[N, C - CX, H, W]`` (strides x_*, s_*).

    Lane = one output element, ``total`` lanes; channels below CX read x, the others skip.
    """
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    n, c, row, col = split_flat(flat, C, H, W)
    from_x = ok & (c < CX)
    from_skip = ok & (c >= CX)
    up = tl.load(x_ptr + n * x_n + c * x_c + (row // 2) * x_h + (col // 2) * x_w, mask=from_x)
    side = tl.load(skip_ptr + n * s_n + (c - CX) * s_c + row * s_h + col * s_w, mask=from_skip)
    tl.store(out_ptr + flat, tl.where(from_x, up, side), mask=ok)


@triton.jit
def _upsample_cat_backward_kernel(
    g_ptr, gx_ptr, gs_ptr, total, CX, C, H, W,
    g_n, g_c, g_h, g_w,
    BLOCK: tl.constexpr,
):
    """grad_x ``[N, CX, H/2, W/2]`` and grad_skip ``[N, C - CX, H, W]`` of g ``[N, C, H, W]`` (strides g_*).

    Both outputs contiguous. Lane = 2x2 block (i, j) of one channel of g, ``total = N * C * H/2 * W/2`` lanes.
    """
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    n, c, i, j = split_flat(flat, C, H // 2, W // 2)
    top = g_ptr + n * g_n + c * g_c + 2 * i * g_h + 2 * j * g_w
    g00 = tl.load(top, mask=ok)
    g01 = tl.load(top + g_w, mask=ok)
    g10 = tl.load(top + g_h, mask=ok)
    g11 = tl.load(top + g_h + g_w, mask=ok)
    acc_type = tl.float64 if g_ptr.dtype.element_ty == tl.float64 else tl.float32
    block = _widen(g00, acc_type) + _widen(g01, acc_type) + _widen(g10, acc_type) + _widen(g11, acc_type)  # in order
    to_x = ok & (c < CX)
    tl.store(gx_ptr + ((n * CX + c) * (H // 2) + i) * (W // 2) + j, _round(block, gx_ptr.dtype.element_ty), mask=to_x)
    to_skip = ok & (c >= CX)
    corner = ((n * (C - CX) + c - CX) * H + 2 * i) * W + 2 * j
    tl.store(gs_ptr + corner, g00, mask=to_skip)
    tl.store(gs_ptr + corner + 1, g01, mask=to_skip)
    tl.store(gs_ptr + corner + W, g10, mask=to_skip)
    tl.store(gs_ptr + corner + W + 1, g11, mask=to_skip)


def _grid(lanes: int) -> tuple[int]:
    return (triton.cdiv(lanes, BLOCK),)


def forward(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """out ``[N, Cx + Cs, 2h, 2w]`` (contiguous) of x ``[N, Cx, h, w]`` and skip ``[N, Cs, 2h, 2w]`` (one dtype)."""
    n, cx, h, w = x.shape
    cs = skip.shape[1]
    out = torch.empty((n, cx + cs, 2 * h, 2 * w), dtype=x.dtype, device=x.device)
    if out.numel() > 0:
        with on_device(x):
            wrap_triton(_upsample_cat_forward_kernel)[_grid(out.numel())](
                x, skip, out, out.numel(), cx, cx + cs, 2 * h, 2 * w, *x.stride(), *skip.stride(), BLOCK=BLOCK
            )
    return out


def backward(grad_out: torch.Tensor, x_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x ``[N, Cx, H/2, W/2]``, grad_skip ``[N, Cs, H, W]``), contiguous, dtype of grad_out, from grad_out
    ``[N, Cx + Cs, H, W]`` (even H and W) and ``x_channels`` = Cx."""
    n, c, h, w = grad_out.shape
    grad_x = torch.empty((n, x_channels, h // 2, w // 2), dtype=grad_out.dtype, device=grad_out.device)
    grad_skip = torch.empty((n, c - x_channels, h, w), dtype=grad_out.dtype, device=grad_out.device)
    lanes = n * c * (h // 2) * (w // 2)
    if lanes > 0:
        with on_device(grad_out):
            wrap_triton(_upsample_cat_backward_kernel)[_grid(lanes)](
                grad_out, grad_x, grad_skip, lanes, x_channels, c, h, w, *grad_out.stride(), BLOCK=BLOCK
            )
    return grad_x, grad_skip


_SIZES = ("total", "CX", "C", "H", "W")
COMPILE_TARGETS = [
    target
    for dtype in ("fp32", "bf16")
    for target in (
        compile_target(f"upsample_cat_forward_{dtype}", _upsample_cat_forward_kernel, ("x_ptr", "skip_ptr", "out_ptr"),
                       _SIZES + ("x_n", "x_c", "x_h", "x_w", "s_n", "s_c", "s_h", "s_w"), dtype, BLOCK),
        compile_target(f"upsample_cat_backward_{dtype}", _upsample_cat_backward_kernel, ("g_ptr", "gx_ptr", "gs_ptr"),
                       _SIZES + ("g_n", "g_c", "g_h", "g_w"), dtype, BLOCK),
    )
]
