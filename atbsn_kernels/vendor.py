"""The ``"vendor"`` backend: PyTorch's own kernels (oneDNN on the CPU, cuDNN on a GPU) on the masked weight.

This is what a user would run instead of our kernels, done as well as PyTorch allows, with the
kernel-contract signatures (docs/kernel-contract.md):

- conv: ``F.conv2d`` / ``aten.convolution_backward`` on the weight cropped to the bounding box of
  the active taps, times 0 at the masked taps inside it; an off-centre box (AT-BSN's shifted conv)
  pads the input instead. The weight gradient is exactly 0 at masked taps.
- shifted max-pool: ``F.max_pool2d`` of the shifted input and ATen's max-pool backward.

A dense conv multiplies the masked taps by zero, so an inf or NaN that only masked taps see
would give NaN where the contract (masked taps are never read) gives a finite value. Each call
checks for what could have leaked and recomputes such a call with the reference, which follows
the contract:

- a NaN or inf weight at a masked tap (weight x 0 is NaN) makes every output of its output channel
  NaN (forward) and every pixel of its input channel's gradient (backward), so one pixel of every
  channel of the first image shows it (:func:`_finite_corner`);
- forward, a non-finite input pixel makes every output of its footprint non-finite (a zero weight
  times inf is NaN), so a sum over every s-th output row of channel 0 shows it, s as large as the
  footprint allows (:func:`_guard_rows`);
- backward, the output gradient is finite when its per-channel sums are, and those sums are the
  bias gradient, which oneDNN / cuDNN compute with the weight gradient; without a bias, one sum.
  The weight gradient gets its masked taps set to exactly 0 in place (``masked_fill_`` where the
  product with 0 is not finite).

Finite data, the normal case, pays one strided pass over a 1 / (s * Cout) slice of the output and
the corner pixels (and a device sync on a GPU). A tap set whose box holds no masked tap (a dense
conv, AT-BSN's shifted 3x3) multiplies nothing by zero, so it skips every check.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from atbsn_kernels import reference
from atbsn_kernels.taps import taps_to_mask

__all__ = ["all_finite", "conv_backward", "conv_forward", "pool_backward", "pool_forward", "unrotate_cat_backward",
           "unrotate_cat_forward", "upsample_cat_backward", "upsample_cat_forward"]


class _Geometry:
    """The vendor conv of a tap set: the active taps' bounding box, its weight and its padding."""

    def __init__(self, k: int, taps: tuple[int, ...], dilation: int, device: torch.device):
        c = self.centre = k // 2
        rows, cols = [t // k for t in taps], [t % k for t in taps]
        # The box must hold the centre tap's row and column: a box wholly to one side of the centre
        # would need a crop of the input, which images smaller than the crop do not allow.
        self.rows = slice(min(min(rows), c), max(max(rows), c) + 1)
        self.cols = slice(min(min(cols), c), max(max(cols), c) + 1)
        self.whole = self.rows == slice(0, k) and self.cols == slice(0, k)  # the box is the kernel
        mask = taps_to_mask(taps, k, device)[self.rows, self.cols]
        self.mask = mask if bool(mask.any()) else None  # masked taps inside the box
        self.keep = None if self.mask is None else ~mask  # active taps inside the box
        # zero padding (left, right, top, bottom) that keeps the output at the input's size
        self.pad = (dilation * (c - self.cols.start), dilation * (self.cols.stop - 1 - c),
                    dilation * (c - self.rows.start), dilation * (self.rows.stop - 1 - c))
        left, right, top, bottom = self.pad
        self.symmetric = left == right and top == bottom

    def weight(self, weight: torch.Tensor) -> torch.Tensor:
        """The box of ``weight`` [Cout, Cin, k, k] times 0 at its masked taps: a NaN or inf there
        becomes NaN, which the caller's :func:`_finite_corner` check sees."""
        box = weight if self.whole else weight[:, :, self.rows, self.cols]
        return box if self.mask is None else box * self.keep

    def zero_masked_(self, box: torch.Tensor) -> torch.Tensor:
        """``box`` [..., box rows, box cols] with its masked taps set to 0, in place: times the active
        taps (a third of ``masked_fill``'s time, and no new tensor), then ``masked_fill`` where that
        left a NaN (a NaN or inf times 0)."""
        if self.mask is not None and not all_finite(box.mul_(self.keep)):
            box.masked_fill_(self.mask, 0)
        return box

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.symmetric else F.pad(x, self.pad)

    @property
    def conv_padding(self) -> list[int]:
        return [self.pad[2], self.pad[0]] if self.symmetric else [0, 0]


@functools.lru_cache(maxsize=1024)
def _cached_geometry(k: int, taps: tuple[int, ...], dilation: int, device: torch.device) -> _Geometry:
    with torch.inference_mode(False):  # a normal mask tensor even when first built in inference mode
        return _Geometry(k, taps, dilation, device)


def _geometry(weight: torch.Tensor, taps, dilation: int) -> _Geometry:
    """The geometry of a call, cached per (kernel size, taps, dilation, device) in eager mode."""
    key = (weight.shape[-1], tuple(taps), dilation, weight.device)
    if torch.compiler.is_compiling():
        return _Geometry(*key)
    return _cached_geometry(*key)


def all_finite(t: torch.Tensor) -> bool:
    """True when every value of ``t`` is finite (a sum that overflows counts as non-finite).

    A sum in t's own dtype (ATen accumulates a bf16 sum in fp32, with fp32's range; asking for an
    fp32 result would first copy the whole tensor); fp16, whose sums overflow at 65504, takes its
    largest and smallest values instead (both NaN where any value is)."""
    if t.numel() == 0:
        return True
    if t.dtype == torch.float16:
        return math.isfinite(t.amax().item()) and math.isfinite(t.amin().item())
    return math.isfinite(t.sum().item())


@functools.lru_cache(maxsize=1024)
def _guard_rows(height: int, offsets: tuple[int, ...]) -> int:
    """The largest s <= len(offsets) such that every input row p has an output row p - a (a in
    ``offsets``, the row offsets the conv's box reads) inside the image that is a multiple of s:
    then a non-finite input value shows in every s-th output row. 1 when no larger s does."""
    for step in range(min(len(offsets), height), 1, -1):
        if all(any(0 <= p - a < height and (p - a) % step == 0 for a in offsets) for p in range(height)):
            return step
    return 1


def _finite_output(y: torch.Tensor, geometry: "_Geometry", dilation: int) -> bool:
    """True when the conv's input was finite: no non-finite value in every s-th row of ``y``'s first
    channel. Every output channel reads every input channel through every tap of the box (a masked
    tap as a zero weight, and ``0 * inf`` is NaN), so a non-finite input value shows in channel 0
    wherever it shows at all: the check reads 1 / (s * Cout) of the output."""
    offsets = tuple(dilation * (i - geometry.centre) for i in range(geometry.rows.start, geometry.rows.stop))
    return all_finite(y[:, :1, ::_guard_rows(y.shape[2], offsets)])


def _finite_corner(t: torch.Tensor) -> bool:
    """True when pixel (0, 0) of every channel of the first image of ``t`` [N, C, H, W] is finite.
    A non-finite weight makes every pixel of the channel it feeds non-finite (``0 * NaN`` and
    ``0 * inf`` are NaN), so this sees a NaN or inf at a masked tap."""
    return all_finite(t[:1, :, :1, :1])


def _activate(y: torch.Tensor, negative_slope) -> torch.Tensor:
    return y if negative_slope is None else F.leaky_relu_(y, negative_slope)


def conv_forward(x, weight, bias, taps, dilation, negative_slope):
    """``blind_spot_conv2d`` forward as ``F.conv2d`` on the masked weight: ``[N, Cout, H, W]`` contiguous."""
    n, _, h, w = x.shape
    if not taps:
        y = x.new_zeros((n, weight.shape[0], h, w))
        return _activate(y if bias is None else y + bias.view(1, -1, 1, 1), negative_slope)
    geometry = _geometry(weight, taps, dilation)
    y = F.conv2d(geometry.input(x), geometry.weight(weight), bias, padding=geometry.conv_padding, dilation=dilation)
    y = _activate(y.contiguous(), negative_slope)
    if geometry.mask is not None and not (_finite_corner(y) and _finite_output(y, geometry, dilation)):
        return reference.blind_spot_conv2d(x, weight, bias, taps, dilation, negative_slope).contiguous()
    return y


def _pre_activation_grad(grad_out, out, negative_slope):
    """``reference.pre_activation_grad`` in ATen's one-pass kernel, the one autograd runs after a
    ``leaky_relu_`` (grad where out > 0, grad * slope elsewhere)."""
    if negative_slope is None:
        return grad_out
    return torch.ops.aten.leaky_relu_backward(grad_out, out.to(grad_out.dtype), negative_slope, True)


def conv_backward(grad_out, x, weight, out, taps, dilation, negative_slope, output_mask):
    """``blind_spot_conv2d`` backward with ``aten.convolution_backward``; unrequested grads are empty."""
    want_x, want_w, want_b = output_mask
    gpre = _pre_activation_grad(grad_out, out, negative_slope)
    grad_x = grad_w = grad_b = None
    if taps and (want_x or want_w):
        geometry = _geometry(weight, taps, dilation)
        # the bias gradient is the vendor's, summed with the weight gradient (a separate sum over
        # the batch and pixels costs as much as a copy of the gradient); half types get theirs
        # rounded to their dtype, as from PyTorch's own conv
        gx, gw, gb = torch.ops.aten.convolution_backward(
            gpre, geometry.input(x), geometry.weight(weight), [weight.shape[0]] if want_b else None, [1, 1],
            geometry.conv_padding, [dilation, dilation], False, [0, 0], 1, [want_x, want_w, want_b])
        grad_b = gb if want_b else None
        if want_x:
            grad_x = gx if geometry.symmetric else F.pad(gx, [-p for p in geometry.pad])
            grad_x = grad_x.contiguous()
            if geometry.mask is not None and not (_finite_corner(grad_x)  # see the module docstring
                                                  and all_finite(grad_b if grad_b is not None else gpre)):
                grad_x = reference.blind_spot_conv2d_backward(grad_out, x, weight, out, taps, dilation,
                                                              negative_slope, (True, False, False))[0]
        if want_w:
            box_grad = geometry.zero_masked_(gw)  # gw is ours to change; channels-last when x is
            if geometry.whole:
                grad_w = box_grad.contiguous()
            else:  # the box's gradient into a zero gradient of the whole kernel
                grad_w = weight.new_zeros(weight.shape)
                grad_w[:, :, geometry.rows, geometry.cols] = box_grad
    if want_x and grad_x is None:
        grad_x = torch.zeros_like(x, memory_format=torch.contiguous_format)
    if want_w and grad_w is None:
        grad_w = torch.zeros_like(weight)
    if want_b and grad_b is None:
        grad_b = gpre.sum((0, 2, 3), dtype=reference.accumulation_type(gpre.dtype))
    return (grad_x if want_x else x.new_empty(0), grad_w if want_w else weight.new_empty(0),
            grad_b.to(weight.dtype) if want_b else weight.new_empty(0))


def pool_forward(x):
    """``shifted_max_pool2d`` forward: ``F.max_pool2d`` of x shifted down one row, ``[N, C, H//2, W//2]``."""
    return F.max_pool2d(reference.shift_down(x, 1), 2).contiguous()


def pool_backward(grad_out, x):
    """``shifted_max_pool2d`` backward: ATen's max-pool backward at the recomputed argmax, shifted back up."""
    shifted = reference.shift_down(x, 1)
    _, indices = torch.ops.aten.max_pool2d_with_indices(shifted, [2, 2], [2, 2])
    grad_shifted = torch.ops.aten.max_pool2d_with_indices_backward(
        grad_out, shifted, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)
    grad_x = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    grad_x[:, :, :-1] = grad_shifted[:, :, 1:]
    return grad_x


def upsample_cat_forward(x, skip):
    """``upsample_cat`` forward as a user writes it: ``torch.cat((F.interpolate(x, scale_factor=2), skip), 1)``
    (``F.interpolate`` refuses x without channels: then only skip's channels are copied)."""
    if x.shape[1] == 0:
        return skip.clone(memory_format=torch.contiguous_format)
    return torch.cat((F.interpolate(x, scale_factor=2, mode="nearest"), skip), 1).contiguous()


def upsample_cat_backward(grad_out, x_channels):
    """``upsample_cat`` backward: ATen's ``upsample_nearest2d_backward`` and a copy of the skip channels."""
    n, _, h, w = grad_out.shape
    grad_x = torch.ops.aten.upsample_nearest2d_backward(
        grad_out[:, :x_channels], [h, w], [n, x_channels, h // 2, w // 2], 2.0, 2.0)
    return grad_x.contiguous(), grad_out[:, x_channels:].clone(memory_format=torch.contiguous_format)


def _unturn(t: torch.Tensor, k: int) -> torch.Tensor:
    """Turn k of ``unrotate_cat`` turned back, as the official code writes it (``transpose`` and ``flip``)."""
    return (t, t.transpose(2, 3).flip(2), t.flip(2).flip(3), t.transpose(2, 3).flip(3))[k]


def unrotate_cat_forward(features, shift):
    """``unrotate_cat`` forward as the official code runs it: pad-and-crop shift, turns back, ``torch.cat``."""
    turns = features.chunk(4, 0) if features.shape[0] else [features] * 4
    return torch.cat([_unturn(reference.shift_down(t, shift), k) for k, t in enumerate(turns)], 1).contiguous()


def unrotate_cat_backward(grad_out, shift):
    """``unrotate_cat`` backward as autograd runs the official sequence backwards: each channel block
    turned forward again (the inverse transposes and flips) into the rows it came from, shifted back
    up, zeros in the rows that were shifted out."""
    n, c4, side, _ = grad_out.shape
    grad = grad_out.new_zeros((4 * n, c4 // 4, side, side))
    rows = max(0, side - shift)
    for k, g in enumerate(grad_out.chunk(4, 1) if c4 else [grad_out] * 4):
        grad[k * n:(k + 1) * n, :, :rows] = _unturn(g, (4 - k) % 4)[:, :, shift:]
    return grad
