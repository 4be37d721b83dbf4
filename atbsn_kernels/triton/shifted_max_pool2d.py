"""Triton kernels of the AT-BSN shifted 2x2 max-pool. Semantics: docs/kernel-contract.md.

Window (i, j) reads input rows 2i - 1 (row -1 is the zero row) and 2i, columns 2j and 2j + 1,
in row-major slot order 0..3. Its argmax follows PyTorch's max_pool2d: a slot replaces the running
maximum when it is strictly greater or NaN, so the first maximum wins ties and the last NaN wins.
Values are compared in fp32 (fp64 for fp64; the interpreter compares bf16 as raw bits, so nothing
is compared in a half type) and the output is the winning value itself, so results are exact.

- ``_pool_forward_kernel``: one element of the output ``[N, C, H//2, W//2]`` per lane.
- ``_pool_backward_kernel``: gather formulation, one window of the extended grid
  ``(H//2 + 1) x ceil(W/2)`` per lane. That grid covers every input element exactly once; a lane
  writes grad_out at its window's argmax and zeros elsewhere (windows past the output grid and the
  zero row's slots carry no gradient), so grad_x needs no zero fill and no atomics.

Inputs are addressed through their strides (NCHW, channels-last or expanded gradients); outputs
are contiguous NCHW.
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
def _take(best, arg, v, slot: tl.constexpr):
    """Running (maximum, slot) after slot ``slot`` with value ``v``: replaced when v > best or v is NaN."""
    better = (v > best) | (v != v)
    return tl.where(better, v, best), tl.where(better, slot, arg)


@triton.jit
def _window_max(x_ptr, base, i, j, s_h, s_w, mask):
    """(maximum, slot) of windows (i, j), i < H//2, at plane offsets ``base``; lanes off ``mask`` load nothing."""
    acc_type = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    top = base + (2 * i - 1) * s_h + 2 * j * s_w
    has_top = mask & (i > 0)
    best = tl.load(x_ptr + top, mask=has_top, other=0.0).to(acc_type)
    arg = tl.zeros_like(i).to(tl.int32)
    best, arg = _take(best, arg, tl.load(x_ptr + top + s_w, mask=has_top, other=0.0).to(acc_type), 1)
    best, arg = _take(best, arg, tl.load(x_ptr + top + s_h, mask=mask, other=0.0).to(acc_type), 2)
    best, arg = _take(best, arg, tl.load(x_ptr + top + s_h + s_w, mask=mask, other=0.0).to(acc_type), 3)
    return best, arg


@triton.jit
def _pool_forward_kernel(x_ptr, out_ptr, total, C, H, W, s_n, s_c, s_h, s_w, BLOCK: tl.constexpr):
    """out[n, c, i, j] = max over window (i, j) of x ``[N, C, H, W]`` (strides s_*); out contiguous."""
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    n, c, i, j = split_flat(flat, C, H // 2, W // 2)
    best, _ = _window_max(x_ptr, n * s_n + c * s_c, i, j, s_h, s_w, ok)
    tl.store(out_ptr + flat, best.to(out_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _pool_backward_kernel(
    g_ptr, x_ptr, gx_ptr, total, C, H, W,
    g_n, g_c, g_h, g_w,
    s_n, s_c, s_h, s_w,
    BLOCK: tl.constexpr,
):
    """grad_x ``[N, C, H, W]`` (contiguous) from g ``[N, C, H//2, W//2]`` and x (strides g_*, s_*).

    Lane = window (i, j) of the extended grid ``[N, C, H//2 + 1, (W + 1)//2]``, ``total`` lanes.
    """
    flat = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = flat < total
    n, c, i, j = split_flat(flat, C, H // 2 + 1, (W + 1) // 2)
    real = ok & (i < H // 2) & (j < W // 2)
    _, arg = _window_max(x_ptr, n * s_n + c * s_c, i, j, s_h, s_w, real)
    g = tl.load(g_ptr + n * g_n + c * g_c + i * g_h + j * g_w, mask=real, other=0.0)
    zero = tl.zeros_like(g)  # g is 0 off the output grid, so every slot of those windows gets 0
    top = ((n * C + c) * H + 2 * i - 1) * W + 2 * j
    right = 2 * j + 1 < W
    has_top = ok & (i > 0)
    has_bottom = ok & (2 * i < H)
    dtype = gx_ptr.dtype.element_ty
    tl.store(gx_ptr + top, tl.where(arg == 0, g, zero).to(dtype), mask=has_top)
    tl.store(gx_ptr + top + 1, tl.where(arg == 1, g, zero).to(dtype), mask=has_top & right)
    tl.store(gx_ptr + top + W, tl.where(arg == 2, g, zero).to(dtype), mask=has_bottom)
    tl.store(gx_ptr + top + W + 1, tl.where(arg == 3, g, zero).to(dtype), mask=has_bottom & right)


def _grid(lanes: int) -> tuple[int]:
    return (triton.cdiv(lanes, BLOCK),)


def forward(x: torch.Tensor) -> torch.Tensor:
    """out ``[N, C, H//2, W//2]`` (contiguous) of x ``[N, C, H, W]``."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, device=x.device)
    if out.numel() > 0:
        with on_device(x):
            wrap_triton(_pool_forward_kernel)[_grid(out.numel())](
                x, out, out.numel(), c, h, w, *x.stride(), BLOCK=BLOCK
            )
    return out


def backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad_x ``[N, C, H, W]`` (contiguous, dtype of x) from grad_out ``[N, C, H//2, W//2]`` and x."""
    n, c, h, w = x.shape
    grad_x = torch.empty((n, c, h, w), dtype=x.dtype, device=x.device)
    lanes = n * c * (h // 2 + 1) * ((w + 1) // 2)
    if grad_x.numel() > 0:
        with on_device(x):
            wrap_triton(_pool_backward_kernel)[_grid(lanes)](
                grad_out, x, grad_x, lanes, c, h, w, *grad_out.stride(), *x.stride(), BLOCK=BLOCK
            )
    return grad_x


_SIZES = ("total", "C", "H", "W")
_X_STRIDES = ("s_n", "s_c", "s_h", "s_w")
COMPILE_TARGETS = [
    target
    for dtype in ("fp32", "bf16")
    for target in (
        compile_target(f"pool_forward_{dtype}", _pool_forward_kernel, ("x_ptr", "out_ptr"), _SIZES + _X_STRIDES, dtype,
                       BLOCK),
        compile_target(f"pool_backward_{dtype}", _pool_backward_kernel, ("g_ptr", "x_ptr", "gx_ptr"),
                       _SIZES + ("g_n", "g_c", "g_h", "g_w") + _X_STRIDES, dtype, BLOCK),
    )
]
