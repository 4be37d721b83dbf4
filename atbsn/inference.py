"""Tiled inference: run a denoiser on overlapping tiles of an image too big for one pass and blend them.

Along each axis, tiles start every ``tile - overlap`` pixels; the last one is moved back to end at
the image border (same size), and an axis shorter than a tile is covered by one tile. Where two
neighbouring tiles overlap by ``L`` pixels, the blend switches from one to the other with a linear
ramp over the middle half of the overlap: the ``~L/4`` pixels next to a tile's inner edge (whose
receptive field the tile border cuts off) get weight 0. The weights of each axis sum to 1 at every
pixel, and a tile's 2-D weight is the product of its two axis weights, so they sum to 1 too; the
image's own borders get full weight. An ``fn`` whose output at a pixel only depends on inputs within
``r`` pixels (zero padding at the image border) gives exactly the whole-image result once
``overlap >= 4 r - 2``.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm import tqdm

from atbsn.errors import InputError

__all__ = ["denoise_tiled"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along an axis of ``size`` pixels (one tile ``[0, size)`` if it fits)."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, tile - overlap)) + [size - tile]


def axis_weights(starts: list[int], length: int, size: int) -> list[torch.Tensor]:
    """Blend weights (float64, ``length`` each) of the tiles ``[s, s + length)`` of an axis; they sum to 1."""
    overlaps = [(nxt, start + length) for start, nxt in zip(starts, starts[1:])]  # [begin, end) of neighbours
    cuts = [(begin + end) / 2 for begin, end in overlaps]
    spacings = [nxt - cut for cut, nxt in zip(cuts, cuts[1:])]
    # each ramp spans the middle half of its overlap, narrowed so that one tile's two ramps never meet
    halves = [min([(end - begin) / 4] + [d / 2 for d in spacings[max(k - 1, 0) : k + 1]]) for k, (begin, end) in enumerate(overlaps)]
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    rises = [_ramp(centres, cut, half) for cut, half in zip(cuts, halves)]  # weight of the tile after each cut
    ones = torch.ones(size, dtype=torch.float64)
    ups, downs = [ones] + rises, [1 - rise for rise in rises] + [ones]
    return [(up * down)[start : start + length] for start, up, down in zip(starts, ups, downs)]


def _ramp(centres: torch.Tensor, cut: float, half: float) -> torch.Tensor:
    """0 before ``cut - half``, 1 after ``cut + half``, linear between (a step at ``cut`` if ``half`` is 0)."""
    if half == 0:
        return (centres > cut).to(torch.float64)
    return ((centres - cut) / (2 * half) + 0.5).clamp(0, 1)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")


def denoise_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None = None,
    overlap: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """``fn`` on overlapping tiles of ``x`` (N, C, H, W), blended back to (N, C, H, W).

    ``fn`` maps (N, C, h, w) to a tensor of the same shape. Tiles are at most ``tile`` x ``tile``
    and overlap by at least ``overlap`` pixels (``0 <= overlap < tile``); with ``tile=None``, or
    an image that fits in one tile, ``fn(x)`` is called once. Gradients flow through (wrap the
    call in ``torch.no_grad()`` for inference). ``progress`` shows a tqdm bar over the tiles.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise InputError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    _check_int("overlap", overlap, 0)
    if tile is not None:
        _check_int("tile", tile, 1)
        if overlap >= tile:
            raise InputError(f"overlap must be < tile ({tile}), got {overlap}")
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return fn(x)
    th, tw = min(tile, h), min(tile, w)
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    row_weights, col_weights = axis_weights(rows, th, h), axis_weights(cols, tw, w)
    out = None
    grid = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    for i, j in tqdm(grid, desc="tiles", unit="tile", disable=not progress):
        patch = x[..., rows[i] : rows[i] + th, cols[j] : cols[j] + tw]
        result = fn(patch)
        if not isinstance(result, torch.Tensor) or result.shape != patch.shape:
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise InputError(f"fn must return a tensor of its input's shape {tuple(patch.shape)}, got {got}")
        if out is None:
            out = result.new_zeros(x.shape)
        weight = (row_weights[i][:, None] * col_weights[j][None, :]).to(result)
        out[..., rows[i] : rows[i] + th, cols[j] : cols[j] + tw] += weight * result
    return out
