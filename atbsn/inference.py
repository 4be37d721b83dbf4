"""Tiled inference: run a denoiser on overlapping tiles of an image too big for one pass and blend them.

The shipped models are not translation invariant: their five 2x2 pools work on a grid of
``ALIGN = 32`` pixel cells that starts at the top-left corner of what they are given, and they
zero-pad their input at the bottom and right up to a multiple of 32 (``atbsn.models.atbsn``). So a
tile reproduces the whole-image pass only if it starts on that grid, and a tile that ends at the
bottom or right border of the image must end there (not be moved back into the image), so that the
model pads it exactly as it pads the whole image.

Along each axis, tiles start every ``stride`` pixels, ``stride`` being ``tile - overlap`` rounded
down to a multiple of ``ALIGN`` (when ``tile - overlap >= ALIGN``; otherwise ``tile - overlap`` and
no alignment), and the last tile is ``[s, size)`` with ``s`` the first grid line at or after
``size - tile``: it ends at the image border and is ``tile - ALIGN + 1`` to ``tile`` pixels long.
Neighbouring tiles overlap by at least ``overlap`` pixels. An axis that fits in a tile is one tile.

Where two neighbouring tiles overlap by ``L`` pixels, the blend switches from one to the other with
a linear ramp over the middle half of the overlap: the ``~L/4`` pixels next to a tile's inner edge
(whose context the cut removes) get weight 0. The weights of each axis sum to 1 at every pixel, and
a tile's 2-D weight is the product of its two axis weights, so they sum to 1 too; the image's own
borders get full weight.

What is exact: every tile takes real pixels from the image up to its edges, and padding only where
the image ends, the same padding on the same grid as the whole-image pass. An ``fn`` whose output at
a pixel depends on inputs within ``r`` pixels (and, like the models, on the pixel's position on the
32-pixel grid and on the zero padding beyond the image; the grid needs ``tile - overlap >= 32``)
therefore gives the whole-image result, to float rounding, at every pixel whose tiles of nonzero
weight reach ``r`` pixels past it on their inner sides, and everywhere once ``overlap >= 4 r - 2``.
Elsewhere, within about ``r`` pixels of a seam, the tiles lack context and the result approximates
the whole-image pass, the same along the image border as inside. The shipped architectures reach
``r = 157`` pixels (the NBSN student) and ``r = 314 + (hole + 1) // 2`` (AT-BSN: 316 at hole 3), at
any width, so no practical tile is exact everywhere (the student needs ``overlap >= 626``).
Measured with the shipped student on a noisy 3000 x 2000 photo, tile 512, overlap 32: the pixels
with 128 or more pixels of context (40 %) are exact, at the border as inside; elsewhere the
difference is up to 3.4 grey levels (mean over the image 0.07); 1.8 (0.02) at overlap 96, 0.8
(0.01) at 128. AT-BSN's seams are coarser (1200 x 800, tile 512, overlap 32: up to 51, mean 1.2),
as its reach exceeds half a tile.
"""

from __future__ import annotations

from typing import Callable

import torch

from atbsn.errors import InputError
from atbsn.progress import progress as show_progress

__all__ = ["ALIGN", "denoise_tiled"]

ALIGN = 32  # the models' pooling grid and padding multiple (2**DEPTH, atbsn.models.atbsn.MULTIPLE)


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the tiles along an axis of ``size`` pixels (one ``(0, size)`` if it fits).

    Starts are multiples of :data:`ALIGN` when ``tile - overlap >= ALIGN``; the last tile ends at
    ``size``; neighbours overlap by ``overlap`` pixels or more; no tile is longer than ``tile``.
    """
    if size <= tile:
        return [(0, size)]
    align = ALIGN if tile - overlap >= ALIGN else 1
    stride = (tile - overlap) // align * align
    last = -(-(size - tile) // align) * align  # the first grid line at or after size - tile
    return [(start, start + tile) for start in range(0, last, stride)] + [(last, size)]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along an axis (see :func:`tile_spans`)."""
    return [start for start, _ in tile_spans(size, tile, overlap)]


def axis_weights(spans: list[tuple[int, int]], size: int) -> list[torch.Tensor]:
    """Blend weights (float64, one per tile, of its length) of the tiles ``spans`` of an axis; they sum to 1."""
    overlaps = [(nxt, end) for (_, end), (nxt, _) in zip(spans, spans[1:])]  # [begin, end) of neighbours
    cuts = [(begin + end) / 2 for begin, end in overlaps]
    spacings = [nxt - cut for cut, nxt in zip(cuts, cuts[1:])]
    # each ramp spans the middle half of its overlap, narrowed so that one tile's two ramps never meet
    halves = [min([(end - begin) / 4] + [d / 2 for d in spacings[max(k - 1, 0) : k + 1]])
              for k, (begin, end) in enumerate(overlaps)]
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    rises = [_ramp(centres, cut, half) for cut, half in zip(cuts, halves)]  # weight of the tile after each cut
    ones = torch.ones(size, dtype=torch.float64)
    ups, downs = [ones] + rises, [1 - rise for rise in rises] + [ones]
    return [(up * down)[start:end] for (start, end), up, down in zip(spans, ups, downs)]


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
    call in ``torch.no_grad()`` for inference). ``progress`` reports progress over the tiles (`atbsn.progress`).

    Borders: tiles start on the models' 32-pixel grid (when ``tile - overlap >= 32``) and the
    last tile of a row or column ends at the image border, so each tile sees real image pixels
    up to its edges and padding only where the image ends, exactly as ``fn(x)`` does. Seams:
    a tile edge inside the image cuts off context; the blend gives weight 0 to the ``overlap/4``
    pixels next to such an edge and ramps across the middle half of the overlap. The result
    equals ``fn(x)`` to float rounding wherever the tiles that contribute reach ``fn``'s
    receptive-field radius ``r`` past the pixel (everywhere once ``overlap >= 4 r - 2``), at the
    image border as inside; within about ``r`` of a seam it approximates ``fn(x)``. The shipped
    models have ``r = 157`` (student) and ``314 + (hole + 1) // 2`` (AT-BSN), more than any
    practical overlap, so seams are approximate (errors measured in the module docstring).
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
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    row_weights, col_weights = axis_weights(rows, h), axis_weights(cols, w)
    out = None
    grid = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    for i, j in show_progress(grid, desc="tiles", unit="tile", disable=not progress):
        (top, bottom), (left, right) = rows[i], cols[j]
        patch = x[..., top:bottom, left:right]
        result = fn(patch)
        if not isinstance(result, torch.Tensor) or result.shape != patch.shape:
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise InputError(f"fn must return a tensor of its input's shape {tuple(patch.shape)}, got {got}")
        if out is None:
            out = result.new_zeros(x.shape)
        weight = (row_weights[i][:, None] * col_weights[j][None, :]).to(result)
        out[..., top:bottom, left:right] += weight * result
    return out
