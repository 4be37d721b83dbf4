"""Tap sets of a k x k kernel: which taps a blind-spot conv multiplies, and the masks that name them.

Two descriptions of the same set, used side by side:

- a *tap mask*: bool ``[k, k]``, ``True`` at the **masked** (blind, excluded) taps;
- *active taps*: the taps that are not masked, as sorted row-major flat indices ``i * k + j``
  (a tuple of ints). Every implementation of an op takes active taps (docs/kernel-contract.md).

The user-facing arguments (``blind``, ``mask``) are validated and turned into active taps here,
once, before any implementation runs.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from atbsn_kernels._checks import check_blind, check_mask

__all__ = [
    "SHIFTED_TAPS",
    "Lattice",
    "active_taps",
    "blind_spot_mask",
    "blind_taps",
    "lattice",
    "mask_from_multiplier",
    "resolve_taps",
    "taps_to_mask",
]

# AT-BSN's shifted 3x3 conv as a 5x5 masked conv: rows 0..2, columns 1..3 are active, so output
# row h reads input rows h-2..h and columns w-1..w+1 (docs/design.md, "Shifted convolution").
SHIFTED_TAPS = tuple(i * 5 + j for i in range(3) for j in range(1, 4))


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
    """Row-major flat indices ``i * k + j`` of the taps that are *not* masked in bool ``[k, k]`` ``mask``."""
    return tuple(tap for tap, masked in enumerate(mask.flatten().tolist()) if not masked)


def blind_taps(kernel_size: int, blind: int) -> tuple[int, ...]:
    """Active taps of a k x k kernel with a centred b x b blind square (b = 0: every tap)."""
    c, r = kernel_size // 2, blind // 2
    return tuple(
        i * kernel_size + j
        for i in range(kernel_size)
        for j in range(kernel_size)
        if blind == 0 or abs(i - c) > r or abs(j - c) > r
    )


def taps_to_mask(taps, kernel_size: int, device=None) -> torch.Tensor:
    """Bool ``[k, k]`` tap mask that is True everywhere except at the active ``taps``."""
    mask = torch.ones(kernel_size * kernel_size, dtype=torch.bool)
    mask[list(taps)] = False
    return mask.view(kernel_size, kernel_size).to(device)


def resolve_taps(kernel_size: int, blind, mask) -> tuple[int, ...]:
    """Active taps from either ``blind`` or an explicit ``mask`` (which takes precedence).

    Passing a mask together with a blind size other than the default 1 is ambiguous and refused.
    """
    if mask is None:
        return blind_taps(kernel_size, check_blind(blind, kernel_size))
    if blind != 1:
        raise ValueError(f"pass either blind or mask, not both (got blind={blind!r} and a mask)")
    return active_taps(check_mask(mask, kernel_size))


def mask_from_multiplier(multiplier: torch.Tensor) -> torch.Tensor | None:
    """Tap mask (True = masked) of a foreign weight multiplier (1 = keep, 0 = masked).

    The multiplier may be ``[k, k]`` or broadcast over channels (``[Cout, Cin, k, k]``); returns
    None when it differs between channels or is not at least 2-D.
    """
    if multiplier.dim() < 2:
        return None
    planes = multiplier.detach().cpu().reshape(-1, *multiplier.shape[-2:])
    if not bool((planes == planes[:1]).all()):
        return None
    return planes[0] == 0


class Lattice(NamedTuple):
    """A kernel's active taps as a smaller kernel at a larger dilation: tap (i, j) of the small
    kernel is tap (offset + step * i, offset + step * j) of the big one."""

    step: int
    offset: int
    kernel_size: int
    taps: tuple[int, ...]


def lattice(taps, kernel_size: int) -> Lattice:
    """The coarsest lattice holding every active tap: the largest step s that divides each active
    tap's row and column distance from the centre (LG-BPN's 21x21 kernel that keeps every second
    tap is an 11x11 kernel at twice the dilation). Step 1 (the kernel itself) when nothing coarser
    holds them, or when there are no active taps."""
    c = kernel_size // 2
    distances = [abs(t // kernel_size - c) for t in taps] + [abs(t % kernel_size - c) for t in taps]
    step = functools.reduce(math.gcd, distances, 0) or 1
    small = 2 * (c // step) + 1
    offset = c - step * (small // 2)
    small_taps = tuple(((t // kernel_size - offset) // step) * small + (t % kernel_size - offset) // step for t in taps)
    return Lattice(step, offset, small, small_taps)
