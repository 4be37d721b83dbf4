"""DBSN: AP-BSN's dilated blind-spot network (DBSNl) on the fused kernels, PD done by dilation.

Layout for a network built with blind size b (b = 1 is AP-BSN's DBSNl: 3x3 / dilation 2 and
5x5 / dilation 3 branches); every conv is a fused ``BlindSpotConv2d`` with its ReLU fused::

    head     1x1 conv, ReLU                                        in_ch -> C
    branch   for s in (b + 1, b + 2):                               C -> C
               (2s - b) x (2s - b) conv with a centred b x b hole, ReLU
               two 1x1 convs, ReLU
               num_module residual blocks  x + conv1x1(ReLU(conv3x3 dilated by s)(x))
               1x1 conv, ReLU
    tail     concat branches; 1x1 convs with ReLU  2C -> C -> C/2 -> C/2 -> out_ch (no ReLU)

After a masked conv every layer of its branch reads offsets that are multiples of s, and the
masked conv's taps reach at most s - 1 - b//2 from the centre, so no path leads back into its
b x b hole: output pixel p never depends on the input's b x b square around p.
"""

from __future__ import annotations

import contextlib
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from atbsn_kernels.dilation import dilate_bsn
from atbsn_kernels.nn import BlindSpotConv2d

__all__ = ["DBSN"]

MAX_BLIND = 7  # the widest branch's masked kernel, 2 (b + 2) - b = b + 4, must stay <= 11


def _check_int(value, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_choice(value, name: str, allowed: tuple[int, ...], meaning: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, one of {allowed} ({meaning}), got {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed} ({meaning}), got {value!r}")
    return int(value)


def _conv(cin: int, cout: int, k: int = 1, *, dilation: int = 1, blind: int = 0, relu: bool = True,
          backend: str) -> BlindSpotConv2d:
    """k x k conv (1x1 by default) with ``blind`` masked centre taps and a fused ReLU."""
    slope = 0.0 if relu else None
    return BlindSpotConv2d(cin, cout, k, dilation=dilation, blind=blind, negative_slope=slope, backend=backend)


class _Residual(nn.Module):
    """``x + conv1x1(ReLU(conv3x3 dilated by s)(x))``: ``[N, C, H, W] -> [N, C, H, W]``."""

    def __init__(self, channels: int, dilation: int, backend: str):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, dilation=dilation, backend=backend),
            _conv(channels, channels, relu=False, backend=backend),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _branch(channels: int, num_module: int, dilation: int, blind: int, backend: str) -> nn.Sequential:
    """Masked conv first (index 0), then 1x1 convs and dilated residual blocks: C -> C channels."""
    return nn.Sequential(
        _conv(channels, channels, 2 * dilation - blind, blind=blind, backend=backend),
        _conv(channels, channels, backend=backend),
        _conv(channels, channels, backend=backend),
        *(_Residual(channels, dilation, backend) for _ in range(num_module)),
        _conv(channels, channels, backend=backend),
    )


class DBSN(nn.Module):
    """Dilated blind-spot network (AP-BSN's DBSNl) with a tunable hole and PD as dilation.

    Args:
        in_ch, out_ch: image channels in and out.
        base_ch: feature channels C (even).
        num_module: residual blocks per branch (AP-BSN: 9).
        blind: the b x b hole the network is built for, odd in 1..7; the branches get dilations
            s = b + 1 and s = b + 2 and masked kernels of size 2s - b. ``model.blind`` can later be set to
            any smaller odd size or 0 (no hole) with the same weights: asymmetric blind spots.
        pd: PD factor r >= 1, applied as dilation (:func:`atbsn_kernels.dilate_bsn`): the
            network then works as on the r x r PD sub-images, with no pixel shuffle. Settable
            (``model.pd = 2``): train at 5, infer at 2 with the same weights.
        backend: backend of every conv (see ``atbsn_kernels.blind_spot_conv2d``).

    ``forward``: ``[N, in_ch, H, W] -> [N, out_ch, H, W]``, any H, W >= 1.
    ``denoise``: AP-BSN inference (PD pass, then random-replacing refinement R3).
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base_ch: int = 128, num_module: int = 9,
                 blind: int = 1, pd: int = 1, *, backend: str = "auto"):
        super().__init__()
        in_ch, out_ch = _check_int(in_ch, "in_ch", 1), _check_int(out_ch, "out_ch", 1)
        base_ch, num_module = _check_int(base_ch, "base_ch", 2), _check_int(num_module, "num_module", 0)
        if base_ch % 2:
            raise ValueError(f"base_ch must be even (the tail halves it), got {base_ch}")
        blind = _check_choice(blind, "blind", tuple(range(1, MAX_BLIND + 1, 2)), "the network's b x b hole")
        self.built_blind = blind
        self.head = _conv(in_ch, base_ch, backend=backend)
        self.branches = nn.ModuleList(_branch(base_ch, num_module, blind + i, blind, backend) for i in (1, 2))
        self.tail = nn.Sequential(
            _conv(2 * base_ch, base_ch, backend=backend),
            _conv(base_ch, base_ch // 2, backend=backend),
            _conv(base_ch // 2, base_ch // 2, backend=backend),
            _conv(base_ch // 2, out_ch, relu=False, backend=backend),
        )
        self._pd = 1
        self.pd = pd

    @property
    def pd(self) -> int:
        """PD factor r, run as dilation: every conv's dilation and padding are r times their own."""
        return self._pd

    @pd.setter
    def pd(self, value: int) -> None:
        self._pd = _check_int(value, "pd", 1)
        dilate_bsn(self, self._pd)

    @property
    def blind(self) -> int:
        """Current hole size b of the masked convs (0: none); at most ``built_blind``."""
        return self.branches[0][0].blind

    @blind.setter
    def blind(self, value: int) -> None:
        allowed = (0, *range(1, self.built_blind + 1, 2))
        value = _check_choice(value, "blind", allowed, f"at most the built hole {self.built_blind}, 0 for none")
        for branch in self.branches:
            branch[0].blind = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in_ch, H, W] -> [N, out_ch, H, W]`` at the current ``pd`` and ``blind``."""
        x = self.head(x)
        return self.tail(torch.cat([branch(x) for branch in self.branches], dim=1))

    @contextlib.contextmanager
    def _pd_as(self, pd: int):
        previous = self.pd
        self.pd = pd
        try:
            yield
        finally:
            self.pd = previous

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, *, pd: int | None = None, r3: bool = True, r3_t: int = 8, r3_p: float = 0.16,
                r3_pad: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
        """AP-BSN inference: one pass at PD factor ``pd`` (default: ``self.pd``), then R3.

        R3 (random-replacing refinement) runs ``r3_t`` times: each pixel of the first result
        (every channel separately) is replaced by the noisy input's with probability ``r3_p``,
        the result is reflect-padded by ``r3_pad``, run at pd 1 and cropped; the runs are averaged.
        ``x [N, in_ch, H, W] -> [N, out_ch, H, W]``; R3 needs ``in_ch == out_ch``. ``generator``
        draws the replacement masks. ``self.pd`` is unchanged afterwards.
        """
        pd = self.pd if pd is None else _check_int(pd, "pd", 1)
        height, width = x.shape[-2:]
        if r3:
            self._check_r3(r3_t, r3_p, r3_pad, height, width)
        with self._pd_as(pd):
            first = self(x)
        if not r3:
            return first
        total = torch.zeros_like(first)
        with self._pd_as(1):
            for _ in range(r3_t):
                replace = torch.rand(x.shape, generator=generator, device=x.device) < r3_p
                mixed = F.pad(torch.where(replace, x, first), (r3_pad,) * 4, mode="reflect")
                total += self(mixed)[..., r3_pad:r3_pad + height, r3_pad:r3_pad + width]
        return total / r3_t

    def _check_r3(self, r3_t, r3_p, r3_pad, height: int, width: int) -> None:
        _check_int(r3_t, "r3_t", 1)
        _check_int(r3_pad, "r3_pad", 0)
        if not isinstance(r3_p, numbers.Real) or isinstance(r3_p, bool) or not 0.0 <= r3_p <= 1.0:
            raise ValueError(f"r3_p must be a probability in [0, 1], got {r3_p!r}")
        if r3_pad >= min(height, width):
            raise ValueError(f"r3_pad must be smaller than the image's height and width {height}x{width}, got {r3_pad}")
        in_ch, out_ch = self.head.in_channels, self.tail[-1].out_channels
        if in_ch != out_ch:
            raise ValueError(
                f"R3 replaces output pixels by input pixels, so out_ch must equal in_ch; got {in_ch} -> {out_ch}"
            )

    def extra_repr(self) -> str:
        return f"blind={self.blind} (built for {self.built_blind}), pd={self.pd}"
