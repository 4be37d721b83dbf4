"""Plain-PyTorch definitions of every op in atbsn.

These functions are the ground truth: every fast kernel (Triton, C++ CPU, CUDA) is tested
against them and every benchmark times its fast path beside them. They favour clarity over
speed and do no argument checking beyond what PyTorch itself does (the public API in
``atbsn_kernels.ops`` validates first).

Conventions: tensors are ``[N, C, H, W]``; tap sets are the active taps of
:mod:`atbsn_kernels.taps` (sorted row-major flat indices), as every implementation takes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def accumulation_type(dtype: torch.dtype) -> torch.dtype:
    """The contract accumulates in fp32 (fp64 for fp64): half types compute in fp32 and round once."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tap_index(taps, device) -> torch.Tensor:
    return torch.tensor(list(taps), dtype=torch.long, device=device)


def _active_patches(x: torch.Tensor, k: int, index: torch.Tensor, dilation: int) -> torch.Tensor:
    """The input pixels each active tap reads, ``[N, Cin * T, H * W]`` (zero outside the image)."""
    n, cin, h, w = x.shape
    patches = F.unfold(x, k, dilation=dilation, padding=dilation * (k // 2)).view(n, cin, k * k, h * w)
    return patches.index_select(2, index).reshape(n, cin * len(index), h * w)


def _active_weight(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The weight of the active taps, ``[Cout, Cin * T]``."""
    return weight.flatten(2).index_select(2, index).reshape(weight.shape[0], -1)


def blind_spot_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    taps,
    dilation: int = 1,
    negative_slope: float | None = None,
) -> torch.Tensor:
    """Blind-spot 'same' convolution over the active taps only: stride 1, zero padding ``dilation * (k // 2)``.

    x ``[N, Cin, H, W]``, weight ``[Cout, Cin, k, k]``, bias ``[Cout]`` or None, ``taps`` the active
    taps (row-major flat indices ``i * k + j``, see :mod:`atbsn_kernels.taps`). Optional LeakyReLU
    with ``negative_slope``. Returns ``[N, Cout, H, W]``.

    The input pixels of the active taps are gathered (unfold, then index_select) and multiplied
    with the weight of those taps: masked taps are never read, so a NaN or inf there (in the
    weight, or in an input pixel only a masked tap would see) cannot reach the output, while
    non-finite values at active taps propagate as in ``F.conv2d`` (docs/kernel-contract.md). Half
    types are computed in fp32 and rounded once, as the contract accumulates.
    """
    n, _, h, w = x.shape
    cout, k = weight.shape[0], weight.shape[-1]
    index = _tap_index(taps, x.device)
    compute = accumulation_type(x.dtype)
    patches = _active_patches(x.to(compute), k, index, dilation)
    y = torch.matmul(_active_weight(weight.to(compute), index), patches).view(n, cout, h, w)
    if bias is not None:
        y = y + bias.to(compute).view(1, -1, 1, 1)
    if negative_slope is not None:
        y = F.leaky_relu(y, negative_slope)
    return y.to(x.dtype)


def pre_activation_grad(grad_out: torch.Tensor, out: torch.Tensor, negative_slope: float | None) -> torch.Tensor:
    """``grad_out * LeakyReLU'(pre)`` read from the forward output: 1 where ``out > 0``, else the slope."""
    return grad_out if negative_slope is None else torch.where(out > 0, grad_out, grad_out * negative_slope)


def blind_spot_conv2d_backward(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask):
    """(grad_x, grad_weight, grad_bias) of :func:`blind_spot_conv2d` as the kernels compute them
    (docs/kernel-contract.md). With gpre the pre-activation gradient (read from ``out``):
    grad_x scatters ``W_active^T @ gpre`` back to the pixels the active taps read (fold), grad_weight
    is ``gpre @ patches^T`` at the active taps and exactly 0 at masked ones, grad_bias the sum of gpre
    over N, H, W. A gradient not asked for in ``output_mask`` is an empty tensor."""
    n, cin, h, w = x.shape
    cout, k = weight.shape[0], weight.shape[-1]
    index = _tap_index(taps, x.device)
    grad_x, grad_w, grad_b = x.new_empty(0), weight.new_empty(0), weight.new_empty(0)
    compute = accumulation_type(x.dtype)
    gpre = pre_activation_grad(grad_out.to(compute), out, negative_slope)
    flat = gpre.reshape(n, cout, h * w)
    if output_mask[0]:
        active_weight = _active_weight(weight.to(compute), index)
        columns = torch.matmul(active_weight.t(), flat).view(n, cin, len(index), h * w)
        every_tap = columns.new_zeros(n, cin, k * k, h * w).index_copy_(2, index, columns)
        grad_x = F.fold(every_tap.view(n, cin * k * k, h * w), (h, w), k, dilation=dilation,
                        padding=dilation * (k // 2)).to(x.dtype)
    if output_mask[1]:
        patches = _active_patches(x.to(compute), k, index, dilation)
        active = torch.matmul(flat, patches.transpose(1, 2)).sum(0).view(cout, cin, -1)
        grad_w = flat.new_zeros(cout, cin, k * k).index_copy_(2, index, active).view(weight.shape).to(weight.dtype)
    if output_mask[2]:
        grad_b = gpre.sum((0, 2, 3)).to(weight.dtype)
    return grad_x, grad_w, grad_b


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
    """Official AT-BSN blind pool: shift down one row, then 2x2 max-pool (floor). ``[N,C,H//2,W//2]``, contiguous."""
    return F.max_pool2d(shift_down(x, 1), 2).contiguous()


def shifted_max_pool2d_backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad_x ``[N, C, H, W]`` of :func:`shifted_max_pool2d`: each window's ``grad_out`` goes to its
    argmax, found as ``F.max_pool2d`` finds it (slots in row-major order; a later slot wins when it is
    strictly greater or NaN), and is dropped where the zero row wins."""
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    shifted = shift_down(x, 1)[:, :, : 2 * ho, : 2 * wo]
    slots = shifted.reshape(n, c, ho, 2, wo, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, 4)
    best, argmax = slots[..., 0], torch.zeros(slots.shape[:-1], dtype=torch.long, device=x.device)
    for slot in range(1, 4):
        value = slots[..., slot]
        wins = (value > best) | torch.isnan(value)
        best, argmax = torch.where(wins, value, best), torch.where(wins, slot, argmax)
    windows = torch.zeros_like(slots).scatter_(-1, argmax.unsqueeze(-1), grad_out.unsqueeze(-1).to(x.dtype))
    grad_shifted = torch.zeros(n, c, h, w, dtype=x.dtype, device=x.device)
    grad_shifted[:, :, : 2 * ho, : 2 * wo] = windows.view(n, c, ho, wo, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(
        n, c, 2 * ho, 2 * wo)
    grad_x = torch.zeros_like(grad_shifted)
    grad_x[:, :, :-1] = grad_shifted[:, :, 1:]
    return grad_x


def upsample_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Nearest 2x upsampling of x ``[N, Cx, h, w]`` beside skip ``[N, Cs, 2h, 2w]``: ``[N, Cx + Cs, 2h, 2w]``,
    contiguous; ``out[:, c, i, j] = x[:, c, i // 2, j // 2]`` for c < Cx, then skip's channels."""
    return torch.cat((x.repeat_interleave(2, 2).repeat_interleave(2, 3), skip), 1).contiguous()


def upsample_cat_backward(grad_out: torch.Tensor, x_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x ``[N, Cx, H/2, W/2]``, grad_skip ``[N, Cs, H, W]``) of :func:`upsample_cat` from grad_out
    ``[N, Cx + Cs, H, W]``: each 2x2 block summed in row-major order in the accumulation type, rounded once."""
    n, _, h, w = grad_out.shape
    blocks = grad_out[:, :x_channels].to(accumulation_type(grad_out.dtype)).reshape(n, x_channels, h // 2, 2, w // 2, 2)
    grad_x = blocks[:, :, :, 0, :, 0] + blocks[:, :, :, 0, :, 1] + blocks[:, :, :, 1, :, 0] + blocks[:, :, :, 1, :, 1]
    return grad_x.to(grad_out.dtype).contiguous(), grad_out[:, x_channels:].clone(memory_format=torch.contiguous_format)


def unrotate_cat(features: torch.Tensor, shift: int) -> torch.Tensor:
    """AT-BSN's head input: features ``[4N, C, S, S]`` of the four turns (turn k =
    ``rot90(image, -k)`` in batch block k) shifted down ``shift`` rows and turned back
    (``rot90(., k)``), side by side on the channels: ``[N, 4C, S, S]``, contiguous."""
    turns = shift_down(features, shift).chunk(4, 0) if features.shape[0] else [features] * 4
    return torch.cat([torch.rot90(t, k, (2, 3)) for k, t in enumerate(turns)], 1).contiguous()


def unrotate_cat_backward(grad_out: torch.Tensor, shift: int) -> torch.Tensor:
    """grad_features ``[4N, C, S, S]`` of :func:`unrotate_cat` from grad_out ``[N, 4C, S, S]``: turned
    forward again, shifted back up, zero in the rows that were shifted out."""
    turned = torch.cat([torch.rot90(g, -k, (2, 3)) for k, g in enumerate(grad_out.chunk(4, 1))], 0)
    grad = torch.zeros_like(turned, memory_format=torch.contiguous_format)
    rows = turned.shape[2] - shift
    if rows > 0:
        grad[:, :, :rows] = turned[:, :, shift:]
    return grad


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
