"""Plain-PyTorch definitions of every op in atbsn.

These functions are the ground truth: every fast kernel (Triton, C++ CPU, CUDA) is tested
against them and every benchmark times its fast path beside them. They favour clarity over
speed and do no argument checking beyond what PyTorch itself does (the public API in
``atbsn_kernels.ops`` validates first).

Conventions: tensors are ``[N, C, H, W]``; a *tap mask* is a bool ``[k, k]`` tensor that is
``True`` at the **masked** (blind, excluded) taps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def blind_spot_mask(kernel_size: int, blind: int, device=None) -> torch.Tensor:
    """Centre-square tap mask: ``True`` where ``|i - k//2| <= b//2`` and ``|j - k//2| <= b//2``.

    ``blind == 0`` masks nothing. Returns bool ``[k, k]``.
    """
    mask = torch.zeros(kernel_size, kernel_size, dtype=torch.bool, device=device)
    if blind > 0:
        lo, hi = kernel_size // 2 - blind // 2, kernel_size // 2 + blind // 2 + 1
        mask[lo:hi, lo:hi] = True
    return mask


def active_taps(mask: torch.Tensor) -> tuple[int, ...]:
    """Row-major flat indices ``i * k + j`` of the taps that are *not* masked."""
    return tuple(int(t) for t in torch.nonzero(~mask.flatten().cpu()).flatten().tolist())


def blind_spot_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor,
    dilation: int = 1,
    negative_slope: float | None = None,
) -> torch.Tensor:
    """Masked 'same' convolution, stride 1, zero padding ``dilation * (k // 2)``.

    x ``[N, Cin, H, W]``, weight ``[Cout, Cin, k, k]``, bias ``[Cout]`` or None,
    mask bool ``[k, k]`` (True = tap excluded). Optional LeakyReLU with ``negative_slope``.
    Returns ``[N, Cout, H, W]``.
    """
    k = weight.shape[-1]
    keep = (~mask).to(device=weight.device, dtype=weight.dtype)
    y = F.conv2d(x, weight * keep, bias, padding=dilation * (k // 2), dilation=dilation)
    if negative_slope is not None:
        y = F.leaky_relu(y, negative_slope)
    return y


def shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Move the image down by ``rows`` rows: zero rows enter at the top, the last rows drop."""
    if rows == 0:
        return x
    return F.pad(x, (0, 0, rows, 0))[..., : x.shape[-2], :]


def shifted_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, negative_slope: float | None = 0.1
) -> torch.Tensor:
    """Official AT-BSN half-plane conv: shift down one row, 3x3 conv (zero pad 1), crop, LeakyReLU.

    Output row h sees input rows h-2..h only. x ``[N, Cin, H, W]``, weight ``[Cout, Cin, 3, 3]``.
    """
    y = F.conv2d(F.pad(x, (1, 1, 2, 0)), weight, bias)
    if negative_slope is not None:
        y = F.leaky_relu(y, negative_slope)
    return y


def shifted_max_pool2d(x: torch.Tensor) -> torch.Tensor:
    """Official AT-BSN blind pool: shift down one row, then 2x2 max-pool (floor). ``[N,C,H//2,W//2]``."""
    return F.max_pool2d(shift_down(x, 1), 2)


def pd_downsample(x: torch.Tensor, factor: int, pad: int = 0, pad_value: float = 0.0) -> torch.Tensor:
    """AP-BSN pixel-shuffle downsampling into a mosaic of ``factor x factor`` sub-images.

    Each sub-image ``x[..., i::f, j::f]`` is padded by ``pad`` on every side with ``pad_value``
    and placed at mosaic cell (i, j). H and W must be divisible by ``factor``.
    ``[N, C, H, W] -> [N, C, H + 2*f*pad, W + 2*f*pad]``.
    """
    n, c, h, w = x.shape
    f = factor
    subs = F.pixel_unshuffle(x, f)
    if pad:
        subs = F.pad(subs, (pad, pad, pad, pad), value=pad_value)
    sh, sw = h // f + 2 * pad, w // f + 2 * pad
    return subs.view(n, c, f, f, sh, sw).permute(0, 1, 2, 4, 3, 5).reshape(n, c, f * sh, f * sw)


def pd_upsample(x: torch.Tensor, factor: int, pad: int = 0) -> torch.Tensor:
    """Inverse of :func:`pd_downsample`: drop the ``pad`` border of every cell, interleave back."""
    n, c, h, w = x.shape
    f = factor
    subs = x.view(n, c, f, h // f, f, w // f).permute(0, 1, 2, 4, 3, 5).reshape(n, c * f * f, h // f, w // f)
    if pad:
        subs = subs[..., pad:-pad, pad:-pad]
    return F.pixel_shuffle(subs, f)


def ideal_pd_split(x: torch.Tensor, factor: int) -> list[torch.Tensor]:
    """Ideal PD: the ``factor**2`` sub-images ``x[..., i::f, j::f]`` in row-major (i, j) order.

    Works for any H and W; sub-images then differ in size by at most one row/column.
    """
    return [x[..., i::factor, j::factor] for i in range(factor) for j in range(factor)]


def ideal_pd_merge(subs: list[torch.Tensor], factor: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`ideal_pd_split`: interleave the sub-images into ``[N, C, height, width]``."""
    n, c = subs[0].shape[:2]
    out = subs[0].new_empty(n, c, height, width)
    for idx, sub in enumerate(subs):
        i, j = divmod(idx, factor)
        out[..., i::factor, j::factor] = sub
    return out
