"""Argument validation shared by every backend: bad input fails here, before any kernel runs."""

from __future__ import annotations

import numbers

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# The largest kernel every implementation takes (the CUDA kernels' own limit is kMaxKernelSize in
# csrc/cuda/common.cuh).
MAX_KERNEL_SIZE = 11


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_4d_float(name: str, t, layout: str) -> None:
    """``t`` is a 4-D floating tensor; ``layout`` (e.g. "[N, C, H, W]") names its axes in the error."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype in {FLOAT_DTYPES}, got {t.dtype}")
    if t.dim() != 4:
        raise ValueError(f"{name} must be 4-D {layout}, got shape {tuple(t.shape)}")


def check_feature_tensors(x, weight, bias) -> None:
    """x ``[N, Cin, H, W]``, weight ``[Cout, Cin, k, k]`` (odd k <= 11), bias ``[Cout]`` or None."""
    check_4d_float("x", x, "[N, C, H, W]")
    check_4d_float("weight", weight, "[Cout, Cin, k, k]")
    if weight.dtype != x.dtype or weight.device != x.device:
        raise TypeError(f"weight must match x in dtype and device, got {weight.dtype}/{weight.device} vs {x.dtype}/{x.device}")
    cout, cin, kh, kw = weight.shape
    if cin != x.shape[1]:
        raise ValueError(f"weight has {cin} input channels (shape {tuple(weight.shape)}) but x has {x.shape[1]} channels")
    if kh != kw or kh % 2 == 0 or not 1 <= kh <= MAX_KERNEL_SIZE:
        raise ValueError(f"weight must hold a square odd kernel of size 1..{MAX_KERNEL_SIZE}, got {kh}x{kw}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if bias.shape != (cout,):
            raise ValueError(f"bias must have shape ({cout},) to match weight, got {tuple(bias.shape)}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise TypeError(f"bias must match x in dtype and device, got {bias.dtype}/{bias.device}")


def check_pool_input(x) -> None:
    """x: a floating ``[N, C, H, W]`` tensor with C >= 1 and H, W >= 2 (one 2x2 window fits)."""
    check_4d_float("x", x, "[N, C, H, W]")
    if x.shape[1] < 1 or x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"x must have C >= 1 and H, W >= 2 (one 2x2 window must fit), got shape {tuple(x.shape)}")


def check_upsample_cat_inputs(x, skip) -> None:
    """x ``[N, Cx, h, w]`` and skip ``[N, Cs, 2h, 2w]``: floating, on one device, h, w >= 1."""
    check_4d_float("x", x, "[N, Cx, h, w]")
    check_4d_float("skip", skip, "[N, Cs, 2h, 2w]")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"x must have h, w >= 1, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if skip.shape[0] != n or skip.shape[2:] != (2 * h, 2 * w):
        raise ValueError(f"skip must be [N, Cs, 2h, 2w] = [{n}, Cs, {2 * h}, {2 * w}] for x of shape {tuple(x.shape)}, "
                         f"got {tuple(skip.shape)}")
    if skip.device != x.device:
        raise ValueError(f"skip must be on x's device {x.device}, got {skip.device}")


def check_unrotate_cat_inputs(features, shift) -> int:
    """features ``[4N, C, S, S]`` (floating, square, the batch a multiple of 4) and an int shift >= 0."""
    check_4d_float("features", features, "[4N, C, S, S]")
    b, _, h, w = features.shape
    if b % 4 or h != w or h < 1:
        raise ValueError(f"features must be [4N, C, S, S] (the four turns on the batch, square, S >= 1), "
                         f"got shape {tuple(features.shape)}")
    if not is_int(shift) or shift < 0:
        raise ValueError(f"shift must be an int >= 0 (rows), got {shift!r}")
    return int(shift)


def check_dilation(dilation) -> int:
    if not is_int(dilation) or dilation < 1:
        raise ValueError(f"dilation must be an int >= 1, got {dilation!r}")
    return int(dilation)


def check_negative_slope(negative_slope):
    """None (no activation) or a float >= 0 (LeakyReLU; 0 is ReLU)."""
    if negative_slope is None:
        return None
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool):
        raise TypeError(f"negative_slope must be a float >= 0 or None, got {negative_slope!r}")
    if not negative_slope >= 0:
        raise ValueError(f"negative_slope must be >= 0 or None, got {negative_slope!r}")
    return float(negative_slope)


def check_blind(blind, kernel_size: int) -> int:
    """Blind size b: 0 (nothing masked) or odd with 1 <= b <= kernel_size."""
    if not is_int(blind):
        raise TypeError(f"blind must be an int, got {type(blind).__name__}")
    if blind < 0 or blind > kernel_size or (blind != 0 and blind % 2 == 0):
        raise ValueError(f"blind must be 0 or odd with 1 <= blind <= kernel size {kernel_size}, got {blind}")
    return int(blind)


def check_mask(mask, kernel_size: int) -> torch.Tensor:
    """A boolean ``[k, k]`` tap mask (True = masked tap) as a CPU bool tensor."""
    if isinstance(mask, torch.Tensor):
        tensor = mask.detach().cpu()
    else:
        try:
            tensor = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"mask must be a bool tensor, array or nested list of shape [k, k], got {type(mask).__name__}"
            ) from exc
    if tensor.dtype != torch.bool:
        raise TypeError(f"mask must have dtype bool (True = masked tap), got {tensor.dtype}")
    if tensor.shape != (kernel_size, kernel_size):
        raise ValueError(
            f"mask must have shape ({kernel_size}, {kernel_size}) to match the kernel, got {tuple(tensor.shape)}"
        )
    return tensor
