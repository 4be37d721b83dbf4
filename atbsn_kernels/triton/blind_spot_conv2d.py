"""Triton kernels of the blind-spot (masked) convolution: implicit GEMMs over the active taps only.

Semantics: docs/kernel-contract.md. Layout of the work:

- ``_conv_kernel`` (forward and grad-input) tiles the output ``[N*H*W, C_OUT]`` into
  ``BLOCK_P x BLOCK_CO`` blocks. One flat loop runs over (active tap, input-channel block); each
  step is a ``tl.dot`` of a gathered ``[BLOCK_P, BLOCK_CI]`` input tile with a
  ``[BLOCK_CI, BLOCK_CO]`` slice of the per-tap packed weight ``[T, Cin, Cout]``, accumulated in
  fp32 (fp64 for fp64). Bias and LeakyReLU are fused in the epilogue. The grad-input pass is the
  same kernel run on the output gradient with mirrored taps and the packed weight read
  transposed; it applies LeakyReLU' (from the forward output) to each gradient tile it loads.
- ``_weight_grad_kernel``: one ``[BLOCK_CO, BLOCK_CI]`` tile of one active tap per program,
  reducing over one of SPLITS splits of the pixels (split-K) and storing its partial sum in
  ``[SPLITS, T, Cout, Cin]``; the launcher sums the splits in a fixed order and places the taps
  into a zero ``[Cout, Cin, k, k]``, so masked taps stay exactly 0 and the result is the same bit
  for bit on every run (no atomics; ``torch.use_deterministic_algorithms`` is honoured without a
  special path). The bias gradient is fused into the programs of the first tap.

Active taps reach the kernels as a cached int32 ``[3, T]`` table (dy, dx, flat index) and their
count T is never specialised on: a new blind size or mask never recompiles a kernel. Inputs are
addressed through their strides (NCHW or channels-last), with 64-bit offsets (an image may
hold 2^31 elements or more). fp32 uses TF32 tensor cores when cuDNN
convolutions may (``torch.backends.cudnn.conv.fp32_precision``, PyTorch's default); float64 runs
natively with fp64 accumulation. Block sizes are autotuned per (Cin, Cout) among the configs of
their channel class; the interpreter uses one config.
"""

from __future__ import annotations

import functools
import os
import struct

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from atbsn_kernels.triton.launch import on_device

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
# The interpreter's bf16 tl.dot multiplies the raw bits: upcast its operands there (only there).
_UPCAST_BF16_DOT = tl.constexpr(INTERPRETING)


@triton.jit
def _mma(acc, a, b, PRECISION: tl.constexpr):
    """acc + a @ b; a ``[M, K]``, b ``[K, N]``, acc ``[M, N]`` fp32 or fp64."""
    if _UPCAST_BF16_DOT and a.dtype == tl.bfloat16:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=acc.dtype)


@triton.jit
def _leaky_relu_grad(g, fwd_out, slope):
    """g * LeakyReLU'(pre), read from the forward output: 1 where out > 0, else slope.

    Compared in the slope's type: the interpreter compares bf16 as raw bits.
    """
    wide = g.to(slope.dtype)
    return tl.where(fwd_out.to(slope.dtype) > 0, wide, wide * slope).to(g.dtype)


@triton.jit
def _slope(slope_hi, slope_lo, ptr):
    """The LeakyReLU slope in the accumulator type of ``ptr``'s elements (fp64 for fp64, else fp32)."""
    acc_type = tl.float64 if ptr.dtype.element_ty == tl.float64 else tl.float32
    return tl.cast(slope_hi, acc_type) + tl.cast(slope_lo, acc_type)


@triton.jit(do_not_specialize=["T"])
def _conv_kernel(
    src_ptr, gate_ptr, w_ptr, bias_ptr, out_ptr, taps_ptr,
    N, H, W, C_IN, C_OUT, T,
    s_n, s_c, s_h, s_w,
    g_n, g_c, g_h, g_w,
    w_t, w_r, w_c,
    slope_hi, slope_lo,
    MIRROR: tl.constexpr, GATE: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr,
    PRECISION: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):
    """out[n, co, y, x] = act(bias[co] + sum_t sum_ci src'[n, ci, y + dy_t, x + dx_t] * w[t, ci, co]).

    src ``[N, C_IN, H, W]`` (strides s_*); src' = src, or src * LeakyReLU'(gate) when GATE (gate
    strides g_*). MIRROR negates (dy, dx). w[t, ci, co] lives at ``t*w_t + ci*w_r + co*w_c``.
    out: contiguous ``[N, C_OUT, H, W]``. taps: int32 ``[3, T]`` rows dy, dx, flat index.
    The slope comes as two fp32 halves (hi + lo) so that fp64 inputs see it to fp64 precision.
    """
    hw = H * W
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    p_ok = p < N * hw
    co_ok = co < C_OUT
    n = (p // hw).to(tl.int64)
    rem = p % hw
    y = (rem // W).to(tl.int64)
    x = (rem % W).to(tl.int64)
    slope = _slope(slope_hi, slope_lo, src_ptr)
    acc = tl.zeros((BLOCK_P, BLOCK_CO), dtype=slope.dtype)
    ci_blocks = tl.cdiv(C_IN, BLOCK_CI)
    for step in range(T * ci_blocks):
        t = step // ci_blocks
        ci = ((step % ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)).to(tl.int64)
        dy = tl.load(taps_ptr + t)
        dx = tl.load(taps_ptr + T + t)
        if MIRROR:
            dy = -dy
            dx = -dx
        iy = y + dy
        ix = x + dx
        ci_ok = ci < C_IN
        ld_mask = (p_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W))[:, None] & ci_ok[None, :]
        a = tl.load(src_ptr + (n * s_n + iy * s_h + ix * s_w)[:, None] + ci[None, :] * s_c, mask=ld_mask, other=0.0)
        if GATE:
            fwd_out = tl.load(gate_ptr + (n * g_n + iy * g_h + ix * g_w)[:, None] + ci[None, :] * g_c,
                              mask=ld_mask, other=0.0)
            a = _leaky_relu_grad(a, fwd_out, slope)
        b = tl.load(w_ptr + t * w_t + ci[:, None] * w_r + co[None, :] * w_c,
                    mask=ci_ok[:, None] & co_ok[None, :], other=0.0)
        acc = _mma(acc, a, b, PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=co_ok, other=0.0).to(acc.dtype)[None, :]
    if ACT:
        acc = tl.where(acc > 0, acc, acc * slope)
    out_off = (n * C_OUT * hw + rem)[:, None] + co[None, :].to(tl.int64) * hw
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=p_ok[:, None] & co_ok[None, :])


@triton.jit(do_not_specialize=["T"])
def _weight_grad_kernel(
    g_ptr, gate_ptr, x_ptr, gw_ptr, gb_ptr, taps_ptr,
    N, H, W, C_IN, C_OUT, T, SPLITS,
    g_n, g_c, g_h, g_w,
    a_n, a_c, a_h, a_w,
    x_n, x_c, x_h, x_w,
    slope_hi, slope_lo,
    GATE: tl.constexpr, WANT_W: tl.constexpr, WANT_B: tl.constexpr,
    PRECISION: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):
    """gw[split, t, co, ci] = sum over the split's pixels p of gpre[n, co, y, x] * x[n, ci, y + dy_t, x + dx_t];
    gb[split, co] = sum over them of gpre.

    g ``[N, C_OUT, H, W]``, x ``[N, C_IN, H, W]`` (any strides); gpre = g * LeakyReLU'(gate) when
    GATE, else g. gw ``[SPLITS, T, C_OUT, C_IN]``, gb ``[SPLITS, C_OUT]`` (fp32, fp64 for fp64),
    every element written by exactly one program. Program (tap row * SPLITS + split, co block,
    ci block); tap rows are T when WANT_W, else 1. gb comes from tap row 0.
    """
    t = tl.program_id(0) // SPLITS
    split = (tl.program_id(0) % SPLITS).to(tl.int64)
    pid_ci = tl.program_id(2)
    co = (tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)).to(tl.int64)
    ci = (pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)).to(tl.int64)
    co_ok = co < C_OUT
    ci_ok = ci < C_IN
    hw = H * W
    chunks = tl.cdiv(N * hw, BLOCK_P)
    per_split = tl.cdiv(chunks, SPLITS)
    if WANT_W:
        dy = tl.load(taps_ptr + t)
        dx = tl.load(taps_ptr + T + t)
    slope = _slope(slope_hi, slope_lo, x_ptr)
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=slope.dtype)
    bias_acc = tl.zeros((BLOCK_CO,), dtype=slope.dtype)
    for chunk in range(split * per_split, tl.minimum(split * per_split + per_split, chunks)):
        p = chunk * BLOCK_P + tl.arange(0, BLOCK_P)
        p_ok = p < N * hw
        n = (p // hw).to(tl.int64)
        y = ((p % hw) // W).to(tl.int64)
        x = (p % W).to(tl.int64)
        g_mask = co_ok[:, None] & p_ok[None, :]
        g = tl.load(g_ptr + (n * g_n + y * g_h + x * g_w)[None, :] + co[:, None] * g_c, mask=g_mask, other=0.0)
        if GATE:
            fwd_out = tl.load(gate_ptr + (n * a_n + y * a_h + x * a_w)[None, :] + co[:, None] * a_c,
                              mask=g_mask, other=0.0)
            g = _leaky_relu_grad(g, fwd_out, slope)
        if WANT_B:
            bias_acc += tl.sum(g.to(slope.dtype), axis=1)
        if WANT_W:
            iy = y + dy
            ix = x + dx
            x_mask = (p_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W))[:, None] & ci_ok[None, :]
            xs = tl.load(x_ptr + (n * x_n + iy * x_h + ix * x_w)[:, None] + ci[None, :] * x_c, mask=x_mask, other=0.0)
            acc = _mma(acc, g, xs, PRECISION)
    if WANT_W:
        tl.store(gw_ptr + ((split * T + t) * C_OUT + co[:, None]) * C_IN + ci[None, :], acc,
                 mask=co_ok[:, None] & ci_ok[None, :])
    if WANT_B:
        if (t == 0) & (pid_ci == 0):
            tl.store(gb_ptr + split * C_OUT + co, bias_acc, mask=co_ok)


def _channel_class(channels: int, largest: int) -> int:
    """Block size of a channel count's class: its next power of two, clamped to [16, largest]."""
    return max(16, min(largest, triton.next_power_of_2(channels)))


def _tuning_space(co_classes, ci_classes, variants, interpreted_blocks) -> list:
    """Configs for every (co class, ci class, (BLOCK_P, warps, stages) variant); one in the interpreter.

    The interpreter cannot time kernels, and its cost grows with the number of programs.
    """
    if INTERPRETING:
        return [triton.Config(dict(zip(("BLOCK_P", "BLOCK_CO", "BLOCK_CI"), interpreted_blocks)))]
    return [
        triton.Config({"BLOCK_P": p, "BLOCK_CO": co, "BLOCK_CI": ci}, num_warps=warps, num_stages=stages)
        for co in co_classes for ci in ci_classes for p, warps, stages in variants
    ]


_SMEM_BUDGET = 160 * 1024  # bytes of pipelined dot operands (A100: 164 KiB per block, H100: 227 KiB)


def _smem_bytes(config, reduction: str, element_size: int) -> int:
    """Shared memory of a config's pipelined dot operands: stages x K x (M + N) elements."""
    blocks = config.kwargs
    others = sum(v for name, v in blocks.items() if name.startswith("BLOCK_") and name != reduction)
    return config.num_stages * blocks[reduction] * others * element_size


def _class_pruner(co_largest: int, ci_largest: int, reduction: str, operand: str):
    """early_config_prune: the configs of the call's (C_OUT, C_IN) channel class whose operands fit
    the budget for the dtype of ``operand``, plus the class's smallest config unpipelined.

    That last one always fits (compiled for sm_80 and sm_90 it uses at most 96 KiB in every class
    and dtype); a kept config that still exceeds a GPU's shared memory (the compiler adds layout
    buffers) fails its benchmark run and the autotuner skips it.
    """

    def prune(configs, named_args, **kwargs):
        co = _channel_class(named_args["C_OUT"], co_largest)
        ci = _channel_class(named_args["C_IN"], ci_largest)
        size = named_args[operand].element_size()
        same_class = [c for c in configs if c.kwargs["BLOCK_CO"] == co and c.kwargs["BLOCK_CI"] == ci]
        fitting = [c for c in same_class if _smem_bytes(c, reduction, size) <= _SMEM_BUDGET]
        smallest = min(same_class, key=lambda c: _smem_bytes(c, reduction, size))
        return fitting + [triton.Config(smallest.kwargs, num_warps=smallest.num_warps, num_stages=1)]

    return prune


_conv_kernel_tuned = triton.autotune(
    configs=_tuning_space((16, 32, 64, 128), (16, 32, 64), ((64, 4, 3), (128, 4, 3), (128, 8, 4)), (128, 64, 64)),
    key=["C_IN", "C_OUT", "MIRROR"],
    prune_configs_by={"early_config_prune": _class_pruner(128, 64, "BLOCK_CI", "src_ptr")},
)(_conv_kernel)

_weight_grad_kernel_tuned = triton.autotune(
    configs=_tuning_space((16, 32, 64, 128), (16, 32, 64, 128), ((32, 4, 3), (64, 4, 3), (128, 8, 3)), (128, 64, 64)),
    key=["C_IN", "C_OUT", "WANT_W"],
    prune_configs_by={"early_config_prune": _class_pruner(128, 128, "BLOCK_P", "x_ptr")},
)(_weight_grad_kernel)


def _build_tap_table(taps: tuple[int, ...], k: int, dilation: int, device) -> torch.Tensor:
    """int32 ``[3, T]``: rows dy, dx (input offset of each active tap) and its flat index i*k + j."""
    c = k // 2
    rows = [[dilation * (t // k - c) for t in taps], [dilation * (t % k - c) for t in taps], list(taps)]
    return torch.tensor(rows, dtype=torch.int32, device=device).view(3, len(taps))


@functools.lru_cache(maxsize=1024)
def _cached_tap_table(taps: tuple[int, ...], k: int, dilation: int, device) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor even when first built in inference mode
        return _build_tap_table(taps, k, dilation, device)


def _tap_table(taps: tuple[int, ...], k: int, dilation: int, device) -> torch.Tensor:
    """The tap table, cached per (taps, k, dilation, device) in eager mode; built afresh while tracing."""
    if torch.compiler.is_compiling() or is_in_torch_dispatch_mode():
        return _build_tap_table(taps, k, dilation, device)
    return _cached_tap_table(taps, k, dilation, device)


@functools.lru_cache(maxsize=None)
def _target_programs(device: torch.device) -> int:
    """Programs worth launching for the split-K weight gradient: about 4 waves on a GPU."""
    if device.type != "cuda":
        return 16
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


_LARGEST_BLOCK_P = 128  # of the weight-gradient configs


def pixel_splits(pixels: int, tap_rows: int, device: torch.device) -> int:
    """Splits of the pixels for the weight gradient: enough programs to fill the device, none
    without work for the largest pixel block (each costs a partial sum of the gradient)."""
    return max(1, min(triton.cdiv(pixels, _LARGEST_BLOCK_P), triton.cdiv(_target_programs(device), tap_rows)))


def _dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: TF32 for fp32 when cuDNN convolutions may use it, else exact.

    Read at every call of the public ops (their dispatch runs outside any compiled graph). A graph
    that calls the ``atbsn::*_triton`` ops directly reads it once, when torch.compile traces it.
    """
    if dtype != torch.float32:
        return "ieee"
    backends = torch.backends
    chain = (backends.cudnn.conv.fp32_precision, backends.cudnn.fp32_precision, backends.fp32_precision)
    return "tf32" if next((p for p in chain if p != "none"), "ieee") == "tf32" else "ieee"


def _split_slope(negative_slope) -> tuple[float, float]:
    """(hi, lo) fp32 values with hi + lo == slope to about 1e-16 relative (0, 0 for None)."""
    slope = float(negative_slope or 0.0)
    hi = struct.unpack("f", struct.pack("f", slope))[0]
    return hi, slope - hi


def _pack_weight(weight: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Per-tap weight matrices ``[T, Cin, Cout]`` contiguous, from ``[Cout, Cin, k, k]`` and the tap table."""
    return weight.flatten(2).index_select(2, table[2]).permute(2, 1, 0).contiguous()


def _launch_conv(src, gate, packed, w_strides, bias, table, c_out, negative_slope, act, mirror, dtype):
    """Run ``_conv_kernel`` over src ``[N, C, H, W]``; returns contiguous ``[N, c_out, H, W]`` of ``dtype``."""
    n, c_in, h, w = src.shape
    out = torch.empty((n, c_out, h, w), dtype=dtype, device=src.device)
    if out.numel() == 0:
        return out
    gate_t = gate if gate is not None else src

    def grid(meta):
        return triton.cdiv(n * h * w, meta["BLOCK_P"]), triton.cdiv(c_out, meta["BLOCK_CO"])

    with on_device(src):
        wrap_triton(_conv_kernel_tuned)[grid](
            src, gate_t, packed, bias if bias is not None else packed, out, table,
            n, h, w, c_in, c_out, table.shape[1],
            *src.stride(), *gate_t.stride(), packed.stride(0), *w_strides,
            *_split_slope(negative_slope),
            MIRROR=mirror, GATE=gate is not None, HAS_BIAS=bias is not None, ACT=act, PRECISION=_dot_precision(dtype),
        )
    return out


def forward(x, weight, bias, taps, dilation, negative_slope):
    """out ``[N, Cout, H, W]`` = act(bias + masked dilated 'same' conv of x ``[N, Cin, H, W]`` over the active taps)."""
    table = _tap_table(tuple(taps), weight.shape[-1], dilation, x.device)
    packed = _pack_weight(weight, table)
    strides = (packed.stride(1), packed.stride(2))
    return _launch_conv(x, None, packed, strides, bias, table, weight.shape[0], negative_slope,
                        negative_slope is not None, False, x.dtype)


def _grad_input(grad_out, x, weight, out, table, negative_slope):
    """grad_x ``[N, Cin, H, W]``: the conv of gpre with mirrored taps and the transposed per-tap weight."""
    packed = _pack_weight(weight, table)
    strides = (packed.stride(2), packed.stride(1))
    gate = out if negative_slope is not None else None
    return _launch_conv(grad_out, gate, packed, strides, None, table, x.shape[1], negative_slope, False, True, x.dtype)


def _weight_grads(grad_out, x, out, table, k, negative_slope, want_w, want_b):
    """(grad_weight ``[Cout, Cin, k, k]``, grad_bias ``[Cout]``) in fp32 (fp64 for fp64): the kernel's
    per-split partial sums, summed over the splits in a fixed order."""
    n, c_in, h, w = x.shape
    c_out, taps = grad_out.shape[1], table.shape[1]
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    want_w = want_w and taps > 0
    pixels = n * h * w
    if pixels == 0 or not (want_w or want_b):
        return (torch.zeros((c_out, c_in, k, k), dtype=acc_dtype, device=x.device),
                torch.zeros((c_out,), dtype=acc_dtype, device=x.device))
    gate = out if negative_slope is not None else grad_out
    tap_rows = taps if want_w else 1
    splits = pixel_splits(pixels, tap_rows, x.device)
    gw = torch.empty((splits, taps if want_w else 0, c_out, c_in), dtype=acc_dtype, device=x.device)
    gb = torch.empty((splits, c_out if want_b else 0), dtype=acc_dtype, device=x.device)

    def grid(meta):
        return tap_rows * splits, triton.cdiv(c_out, meta["BLOCK_CO"]), triton.cdiv(c_in, meta["BLOCK_CI"])

    with on_device(x):
        wrap_triton(_weight_grad_kernel_tuned)[grid](
            grad_out, gate, x, gw, gb, table,
            n, h, w, c_in, c_out, taps, splits,
            *grad_out.stride(), *gate.stride(), *x.stride(),
            *_split_slope(negative_slope),
            GATE=negative_slope is not None, WANT_W=want_w, WANT_B=want_b, PRECISION=_dot_precision(x.dtype),
        )
    return _place_taps(gw.sum(0), table, k), gb.sum(0) if want_b else gb.new_zeros(c_out)


def _place_taps(tap_grads: torch.Tensor, table: torch.Tensor, k: int) -> torch.Tensor:
    """``[Cout, Cin, k, k]`` holding ``tap_grads`` ``[T, Cout, Cin]`` at the taps' positions, 0 elsewhere."""
    _, c_out, c_in = tap_grads.shape
    planes = tap_grads.new_zeros((k * k, c_out, c_in))
    if tap_grads.shape[0] > 0:
        planes.index_copy_(0, table[2].long(), tap_grads)
    return planes.permute(1, 2, 0).contiguous().view(c_out, c_in, k, k)


def backward(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask):
    """(grad_x, grad_weight, grad_bias) per docs/kernel-contract.md; unrequested ones are empty."""
    k = weight.shape[-1]
    table = _tap_table(tuple(taps), k, dilation, x.device)
    grad_x, grad_w, grad_b = x.new_empty(0), weight.new_empty(0), weight.new_empty(0)
    if output_mask[0]:
        grad_x = _grad_input(grad_out, x, weight, out, table, negative_slope)
    if output_mask[1] or output_mask[2]:
        gw, gb = _weight_grads(grad_out, x, out, table, k, negative_slope, output_mask[1], output_mask[2])
        grad_w = gw.to(weight.dtype) if output_mask[1] else grad_w
        grad_b = gb.to(weight.dtype) if output_mask[2] else grad_b
    return grad_x, grad_w, grad_b


def _signature(names_types: str) -> dict:
    return dict(item.split(":") for item in names_types.split())


def _target(name, fn, signature, constexprs):
    """One COMPILE_TARGETS entry: fp16 operands, tensor-core block sizes."""
    sig = dict(_signature(signature), **{key: "constexpr" for key in constexprs})
    return {"name": name, "fn": fn, "signature": sig, "constexprs": constexprs, "tensor_cores": True}


_CONV_SIG = (
    "src_ptr:*fp16 gate_ptr:*fp16 w_ptr:*fp16 bias_ptr:*fp16 out_ptr:*fp16 taps_ptr:*i32 "
    "N:i32 H:i32 W:i32 C_IN:i32 C_OUT:i32 T:i32 s_n:i32 s_c:i32 s_h:i32 s_w:i32 g_n:i32 g_c:i32 g_h:i32 g_w:i32 "
    "w_t:i32 w_r:i32 w_c:i32 slope_hi:fp32 slope_lo:fp32"
)
_WGRAD_SIG = (
    "g_ptr:*fp16 gate_ptr:*fp16 x_ptr:*fp16 gw_ptr:*fp32 gb_ptr:*fp32 taps_ptr:*i32 "
    "N:i32 H:i32 W:i32 C_IN:i32 C_OUT:i32 T:i32 SPLITS:i32 g_n:i32 g_c:i32 g_h:i32 g_w:i32 "
    "a_n:i32 a_c:i32 a_h:i32 a_w:i32 x_n:i32 x_c:i32 x_h:i32 x_w:i32 slope_hi:fp32 slope_lo:fp32"
)
_CONV_BLOCKS = dict(PRECISION="ieee", BLOCK_P=128, BLOCK_CO=64, BLOCK_CI=32)

COMPILE_TARGETS = [
    _target("conv_forward", _conv_kernel, _CONV_SIG,
            dict(MIRROR=False, GATE=False, HAS_BIAS=True, ACT=True, **_CONV_BLOCKS)),
    _target("conv_grad_input", _conv_kernel, _CONV_SIG,
            dict(MIRROR=True, GATE=True, HAS_BIAS=False, ACT=False, **_CONV_BLOCKS)),
    _target("conv_grad_weight_bias", _weight_grad_kernel, _WGRAD_SIG,
            dict(GATE=True, WANT_W=True, WANT_B=True, PRECISION="ieee", BLOCK_P=64, BLOCK_CO=64, BLOCK_CI=64)),
]
