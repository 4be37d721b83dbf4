"""Triton kernels of the blind-spot (masked) convolution: implicit GEMMs over active taps only.

Semantics: docs/kernel-contract.md. Layout of the work:

- ``_conv_kernel`` (forward and grad-input): tiles the output ``[N*H*W, Cout]`` into
  ``BLOCK_P x BLOCK_CO`` blocks; the reduction runs over active taps x input channels, each
  step a ``tl.dot`` of a gathered ``[BLOCK_P, BLOCK_CI]`` input tile with a
  ``[BLOCK_CI, BLOCK_CO]`` slice of the per-tap packed weight. Bias and LeakyReLU are fused in
  the epilogue. For the grad-input pass the same kernel runs on the output gradient with
  mirrored taps and applies LeakyReLU' (from the forward output) while loading.
- ``_weight_grad_kernel``: one ``[BLOCK_CO, BLOCK_CI]`` tile of one active tap per program,
  reducing over a split of the pixels, ``tl.atomic_add`` into an fp32 buffer; the bias
  gradient is fused into the programs of the first tap.

Active taps reach the kernels as a small int32 tensor of (dy, dx) offsets and their count T is
never specialised on, so changing the blind size never recompiles a kernel. Inputs are addressed through their strides (NCHW or
channels-last). fp32 inputs use TF32 tensor cores on the GPU, as cuDNN does by default.
"""

from __future__ import annotations

import os
import struct

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit(do_not_specialize=["T"])
def _conv_kernel(
    src_ptr, act_ptr, w_ptr, bias_ptr, out_ptr, taps_ptr,
    N, C_IN, C_OUT, H, W, T,
    s_n, s_c, s_h, s_w,
    a_n, a_c, a_h, a_w,
    slope_hi, slope_lo,
    HAS_BIAS: tl.constexpr, ACT_OUT: tl.constexpr, ACT_GRAD_IN: tl.constexpr, ACC_FP64: tl.constexpr,
    DOT_FP32: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):
    """out[n, co, y, x] = act(bias[co] + sum_t sum_ci src'[n, ci, y + dy_t, x + dx_t] * w[t, ci, co]).

    src' is src, or src * LeakyReLU'(act) when ACT_GRAD_IN (the grad-input pass). The slope comes
    as two fp32 halves (hi + lo) so that fp64 inputs see it to fp64 precision.
    w: packed ``[T, C_IN, C_OUT]`` contiguous; out: contiguous NCHW; taps: int32 ``[T, 2]`` (dy, dx).
    """
    pid_p = tl.program_id(0)
    pid_co = tl.program_id(1)
    hw = H * W
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    p_ok = p < N * hw
    co_ok = co < C_OUT
    n = p // hw
    y = (p % hw) // W
    x = p % W
    acc_type = tl.float64 if ACC_FP64 else tl.float32
    negative_slope = tl.cast(slope_hi, acc_type) + tl.cast(slope_lo, acc_type)
    acc = tl.zeros((BLOCK_P, BLOCK_CO), dtype=acc_type)
    for t in range(T):
        iy = y + tl.load(taps_ptr + 2 * t)
        ix = x + tl.load(taps_ptr + 2 * t + 1)
        pix_ok = p_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        for ci0 in range(0, C_IN, BLOCK_CI):
            ci = ci0 + tl.arange(0, BLOCK_CI)
            ci_ok = ci < C_IN
            ld_mask = pix_ok[:, None] & ci_ok[None, :]
            src_off = n[:, None] * s_n + ci[None, :] * s_c + iy[:, None] * s_h + ix[:, None] * s_w
            a = tl.load(src_ptr + src_off, mask=ld_mask, other=0.0)
            if ACT_GRAD_IN:
                act_off = n[:, None] * a_n + ci[None, :] * a_c + iy[:, None] * a_h + ix[:, None] * a_w
                fwd_out = tl.load(act_ptr + act_off, mask=ld_mask, other=1.0).to(acc_type)
                a_wide = a.to(acc_type)
                a = tl.where(fwd_out > 0, a_wide, a_wide * negative_slope).to(a.dtype)
            w_off = t * C_IN * C_OUT + ci[:, None] * C_OUT + co[None, :]
            b = tl.load(w_ptr + w_off, mask=ci_ok[:, None] & co_ok[None, :], other=0.0)
            if DOT_FP32:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc += tl.dot(a, b, out_dtype=acc_type)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=co_ok, other=0.0).to(acc_type)[None, :]
    if ACT_OUT:
        acc = tl.where(acc > 0, acc, acc * negative_slope)
    out_off = n[:, None] * (C_OUT * hw) + co[None, :] * hw + (p % hw)[:, None]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=p_ok[:, None] & co_ok[None, :])


@triton.jit(do_not_specialize=["T"])
def _weight_grad_kernel(
    g_ptr, act_ptr, x_ptr, gw_ptr, gb_ptr, taps_ptr,
    N, C_IN, C_OUT, H, W, T, PIX_PER_SPLIT,
    g_n, g_c, g_h, g_w,
    a_n, a_c, a_h, a_w,
    x_n, x_c, x_h, x_w,
    slope_hi, slope_lo,
    ACT: tl.constexpr, WANT_W: tl.constexpr, WANT_B: tl.constexpr, ACC_FP64: tl.constexpr,
    DOT_FP32: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):
    """gw[t, co, ci] += sum_p gpre[n, co, y, x] * x[n, ci, y + dy_t, x + dx_t]; gb[co] += sum_p gpre.

    gpre = g * LeakyReLU'(act) when ACT. Program (t * splits + split, co block, ci block);
    when T == 0 the programs of t = 0 still run for the bias gradient (WANT_W is then False).
    """
    pid_ts = tl.program_id(0)
    pid_co = tl.program_id(1)
    pid_ci = tl.program_id(2)
    splits = tl.cdiv(N * H * W, PIX_PER_SPLIT)
    t = pid_ts // splits
    split = pid_ts % splits
    hw = H * W
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co_ok = co < C_OUT
    ci_ok = ci < C_IN
    t_row = tl.where(t < T, t, 0)  # the offsets tensor always holds at least one (zero) tap
    dy = tl.load(taps_ptr + 2 * t_row)
    dx = tl.load(taps_ptr + 2 * t_row + 1)
    acc_type = tl.float64 if ACC_FP64 else tl.float32
    negative_slope = tl.cast(slope_hi, acc_type) + tl.cast(slope_lo, acc_type)
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=acc_type)
    bias_acc = tl.zeros((BLOCK_CO,), dtype=acc_type)
    start = split * PIX_PER_SPLIT
    for p0 in range(start, start + PIX_PER_SPLIT, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        p_ok = p < N * hw
        n = p // hw
        y = (p % hw) // W
        x = p % W
        g_mask = co_ok[:, None] & p_ok[None, :]
        g = tl.load(g_ptr + co[:, None] * g_c + n[None, :] * g_n + y[None, :] * g_h + x[None, :] * g_w,
                    mask=g_mask, other=0.0)
        if ACT:
            fwd_out = tl.load(act_ptr + co[:, None] * a_c + n[None, :] * a_n + y[None, :] * a_h + x[None, :] * a_w,
                              mask=g_mask, other=1.0).to(acc_type)
            g_wide = g.to(acc_type)
            g = tl.where(fwd_out > 0, g_wide, g_wide * negative_slope).to(g.dtype)
        if WANT_B:
            bias_acc += tl.sum(g.to(acc_type), axis=1)
        if WANT_W:
            iy = y + dy
            ix = x + dx
            pix_ok = p_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            xs = tl.load(x_ptr + n[:, None] * x_n + ci[None, :] * x_c + iy[:, None] * x_h + ix[:, None] * x_w,
                         mask=pix_ok[:, None] & ci_ok[None, :], other=0.0)
            if DOT_FP32:
                acc += tl.dot(g.to(tl.float32), xs.to(tl.float32), out_dtype=acc_type)
            else:
                acc += tl.dot(g, xs, out_dtype=acc_type)
    if WANT_W:
        gw_off = t * C_OUT * C_IN + co[:, None] * C_IN + ci[None, :]
        tl.atomic_add(gw_ptr + gw_off, acc, mask=co_ok[:, None] & ci_ok[None, :])
    if WANT_B:
        if (t == 0) & (pid_ci == 0):
            tl.atomic_add(gb_ptr + co, bias_acc, mask=co_ok)


def _dot_fp32(dtype: torch.dtype) -> bool:
    """Upcast dot operands: only for bfloat16 in the interpreter, whose bf16 tl.dot is wrong."""
    return INTERPRETING and dtype == torch.bfloat16


def _split_slope(negative_slope) -> tuple[float, float]:
    """(hi, lo) fp32 values with hi + lo == slope to about 1e-16 relative (0, 0 for None)."""
    slope = float(negative_slope or 0.0)
    hi = struct.unpack("f", struct.pack("f", slope))[0]
    return hi, slope - hi


def _block(n: int, lo: int, hi: int) -> int:
    """Power of two >= n clamped to [lo, hi] (tl.dot needs every block dim >= 16)."""
    return max(lo, min(hi, triton.next_power_of_2(max(1, n))))


def _conv_configs() -> list:
    """Autotune space of ``_conv_kernel``, tuned once per (C_IN, C_OUT, pass) and cached by Triton.

    The interpreter gets one large config: autotuning cannot time kernels there, and its cost
    grows with the number of programs.
    """
    if INTERPRETING:
        return [triton.Config({"BLOCK_P": 128, "BLOCK_CO": 64, "BLOCK_CI": 64}, num_warps=4)]
    shapes = ((128, 64, 32, 4, 3), (64, 64, 32, 4, 3), (128, 32, 32, 4, 2), (64, 32, 16, 2, 2))
    return [
        triton.Config({"BLOCK_P": p, "BLOCK_CO": co, "BLOCK_CI": ci}, num_warps=warps, num_stages=stages)
        for p, co, ci, warps, stages in shapes
    ]


_conv_kernel_tuned = triton.autotune(configs=_conv_configs(), key=["C_IN", "C_OUT", "ACT_GRAD_IN"])(_conv_kernel)


def _tap_offsets(taps: tuple[int, ...], k: int, dilation: int, sign: int, device) -> torch.Tensor:
    """int32 ``[max(T, 1) * 2]``: (dy, dx) of every active tap times ``sign``; one zero tap if T == 0."""
    c = k // 2
    offsets = [v for t in taps for v in (sign * dilation * (t // k - c), sign * dilation * (t % k - c))]
    return torch.tensor(offsets or [0, 0], dtype=torch.int32, device=device)


def _pack_weight(weight: torch.Tensor, taps: tuple[int, ...], transpose: bool) -> torch.Tensor:
    """Per-tap weight matrices: ``[T, Cin, Cout]`` (forward) or ``[T, Cout, Cin]`` (transpose)."""
    index = torch.tensor(taps, dtype=torch.long, device=weight.device)
    per_tap = weight.flatten(2).index_select(2, index)  # [Cout, Cin, T]
    return (per_tap.permute(2, 0, 1) if transpose else per_tap.permute(2, 1, 0)).contiguous()


def _launch_conv(src, act, packed, bias, taps_t, c_out, negative_slope, act_out, act_grad_in):
    """Run ``_conv_kernel``; returns ``[N, c_out, H, W]`` contiguous in src's dtype."""
    n, c_in, h, w = src.shape
    out = torch.empty((n, c_out, h, w), dtype=src.dtype, device=src.device)
    if out.numel() == 0:
        return out
    act_t = act if act is not None else src

    def grid(meta):
        return triton.cdiv(n * h * w, meta["BLOCK_P"]), triton.cdiv(c_out, meta["BLOCK_CO"])

    wrap_triton(_conv_kernel_tuned)[grid](
        src, act_t, packed, bias if bias is not None else packed, out, taps_t,
        n, c_in, c_out, h, w, packed.shape[0],
        *src.stride(), *act_t.stride(),
        *_split_slope(negative_slope),
        HAS_BIAS=bias is not None, ACT_OUT=act_out, ACT_GRAD_IN=act_grad_in, ACC_FP64=src.dtype == torch.float64,
        DOT_FP32=_dot_fp32(src.dtype),
    )
    return out


def forward(x, weight, bias, taps, dilation, negative_slope):
    """out ``[N, Cout, H, W]`` = act(bias + masked dilated 'same' conv of x over the active taps)."""
    k = weight.shape[-1]
    packed = _pack_weight(weight, tuple(taps), transpose=False)
    taps_t = _tap_offsets(tuple(taps), k, dilation, 1, x.device)
    return _launch_conv(x, None, packed, bias, taps_t, weight.shape[0], negative_slope, negative_slope is not None, False)


def _weight_grads(grad_out, out, x, taps, k, dilation, negative_slope, want_w, want_b):
    """(grad_weight ``[Cout, Cin, k, k]`` or None, grad_bias ``[Cout]`` or None) in fp32/fp64."""
    n, c_in, h, w = x.shape
    c_out = grad_out.shape[1]
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    n_taps = len(taps)
    gw = torch.zeros((max(n_taps, 1), c_out, c_in), dtype=acc_dtype, device=x.device)
    gb = torch.zeros((c_out,), dtype=acc_dtype, device=x.device)
    pixels = n * h * w
    block_p = 128 if INTERPRETING else 64
    pix_per_split = block_p * max(1, triton.cdiv(pixels, block_p * (8 if INTERPRETING else 64)))
    block_co, block_ci = _block(c_out, 16, 64), _block(c_in, 16, 64)
    if pixels > 0:
        taps_t = _tap_offsets(tuple(taps), k, dilation, 1, x.device)
        act = out if negative_slope is not None else grad_out
        grid = (max(n_taps, 1) * triton.cdiv(pixels, pix_per_split), triton.cdiv(c_out, block_co),
                triton.cdiv(c_in, block_ci))
        wrap_triton(_weight_grad_kernel)[grid](
            grad_out, act, x, gw, gb, taps_t,
            n, c_in, c_out, h, w, n_taps, pix_per_split,
            *grad_out.stride(), *act.stride(), *x.stride(),
            *_split_slope(negative_slope),
            ACT=negative_slope is not None, WANT_W=want_w and n_taps > 0, WANT_B=want_b,
            ACC_FP64=x.dtype == torch.float64, DOT_FP32=_dot_fp32(x.dtype), BLOCK_P=block_p, BLOCK_CO=block_co, BLOCK_CI=block_ci, num_warps=4,
        )
    grad_w = None
    if want_w:
        full = torch.zeros((c_out, c_in, k * k), dtype=acc_dtype, device=x.device)
        index = torch.tensor(taps, dtype=torch.long, device=x.device)
        grad_w = full.index_copy(2, index, gw[:n_taps].permute(1, 2, 0)).view(c_out, c_in, k, k)
    return grad_w, gb if want_b else None


def backward(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask):
    """(grad_x, grad_weight, grad_bias) per docs/kernel-contract.md; unrequested ones are empty."""
    taps = tuple(taps)
    k = weight.shape[-1]
    grad_x, grad_w, grad_b = x.new_empty(0), weight.new_empty(0), weight.new_empty(0)
    if output_mask[0]:
        packed = _pack_weight(weight, taps, transpose=True)
        taps_t = _tap_offsets(taps, k, dilation, -1, x.device)
        act = out if negative_slope is not None else None
        grad_x = _launch_conv(grad_out, act, packed, None, taps_t, x.shape[1], negative_slope, False,
                              negative_slope is not None)
    if output_mask[1] or output_mask[2]:
        gw, gb = _weight_grads(grad_out, out, x, taps, k, dilation, negative_slope, output_mask[1], output_mask[2])
        grad_w = gw.to(weight.dtype) if gw is not None else grad_w
        grad_b = gb.to(weight.dtype) if gb is not None else grad_b
    return grad_x, grad_w, grad_b


def _signature(names_types: str) -> dict:
    return dict(item.split(":") for item in names_types.split())


_CONV_SIG = _signature(
    "src_ptr:*fp16 act_ptr:*fp16 w_ptr:*fp16 bias_ptr:*fp16 out_ptr:*fp16 taps_ptr:*i32 "
    "N:i32 C_IN:i32 C_OUT:i32 H:i32 W:i32 T:i32 s_n:i32 s_c:i32 s_h:i32 s_w:i32 a_n:i32 a_c:i32 a_h:i32 a_w:i32 "
    "slope_hi:fp32 slope_lo:fp32"
)
_WGRAD_SIG = _signature(
    "g_ptr:*fp16 act_ptr:*fp16 x_ptr:*fp16 gw_ptr:*fp32 gb_ptr:*fp32 taps_ptr:*i32 "
    "N:i32 C_IN:i32 C_OUT:i32 H:i32 W:i32 T:i32 PIX_PER_SPLIT:i32 g_n:i32 g_c:i32 g_h:i32 g_w:i32 "
    "a_n:i32 a_c:i32 a_h:i32 a_w:i32 x_n:i32 x_c:i32 x_h:i32 x_w:i32 slope_hi:fp32 slope_lo:fp32"
)
_BLOCKS = dict(BLOCK_P=128, BLOCK_CO=64, BLOCK_CI=32)


def _target(name, fn, signature, constexprs):
    sig = dict(signature, **{key: "constexpr" for key in constexprs})
    return {"name": name, "fn": fn, "signature": sig, "constexprs": constexprs, "tensor_cores": True}


COMPILE_TARGETS = [
    _target("conv_forward", _conv_kernel, _CONV_SIG,
            dict(HAS_BIAS=True, ACT_OUT=True, ACT_GRAD_IN=False, ACC_FP64=False, DOT_FP32=False, **_BLOCKS)),
    _target("conv_grad_input", _conv_kernel, _CONV_SIG,
            dict(HAS_BIAS=False, ACT_OUT=False, ACT_GRAD_IN=True, ACC_FP64=False, DOT_FP32=False, **_BLOCKS)),
    _target("conv_grad_weight_bias", _weight_grad_kernel, _WGRAD_SIG,
            dict(ACT=True, WANT_W=True, WANT_B=True, ACC_FP64=False, DOT_FP32=False, BLOCK_P=64, BLOCK_CO=64, BLOCK_CI=64)),
]
