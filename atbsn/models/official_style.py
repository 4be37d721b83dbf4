"""Plain eager AT-BSN and student, laid out as the official implementation runs them.

This is the yardstick of the fast models: tests compare ``atbsn.models.ATBSN``/``NBSN`` with it
and the benchmarks time it as the baseline. Every blind 3x3 conv pads a zero row on top, convolves
with zero padding 1, crops the last row and applies an in-place LeakyReLU(0.1); every blind pool
shifts the same way before ``MaxPool2d(2)``; the input runs in four rotations stacked on the batch,
the U-Net features are shifted down by ``(hole + 1) // 2`` rows, un-rotated, concatenated on
channels and mixed by three 1x1 convs. Parameter names equal the official checkpoints' keys.
Square inputs with sides divisible by 32 only, as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atbsn_kernels.reference import shift_down

__all__ = ["OfficialStyleATBSN", "OfficialStyleNBSN", "OfficialStyleUNet"]


def _drop_last_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    return x[:, :, : x.shape[2] - rows, :]


class _ConvUnit(nn.Module):
    """3x3 conv + LeakyReLU(0.1); half-plane (shift, conv, crop) when ``blind``."""

    def __init__(self, cin: int, cout: int, blind: bool):
        super().__init__()
        self.blind = blind
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        if self.blind:
            x = _drop_last_rows(self.conv(F.pad(x, (0, 0, 1, 0))), 1)
        else:
            x = self.conv(x)
        return F.leaky_relu_(x, 0.1)


class _Encoder(nn.Module):
    def __init__(self, channels: int, blind: bool, pool: bool = True):
        super().__init__()
        self.blind, self.pool = blind, pool
        self.conv1 = _ConvUnit(channels, channels, blind)

    def forward(self, x):
        x = self.conv1(x)
        if not self.pool:
            return x
        return F.max_pool2d(shift_down(x, 1) if self.blind else x, 2)


class _Decoder(nn.Module):
    def __init__(self, cin: int, cmid: int, cout: int, blind: bool, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.conv1 = _ConvUnit(cin, cmid, blind)
        self.conv2 = _ConvUnit(cmid, cout, blind)

    def forward(self, x, skip):
        x = self.conv2(self.conv1(torch.cat((x, skip), 1)))
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x


class OfficialStyleUNet(nn.Module):
    """The official ``Blind_UNet``: intro conv, 6 encoders (5 pools), 5 decoders with skips.

    ``[N, in_ch, H, W] -> [N, out_ch, H, W]``, H and W divisible by 32.
    """

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 96, blind: bool = True):
        super().__init__()
        self.intro = _ConvUnit(in_ch, mid, blind)
        for i in range(1, 7):
            setattr(self, f"enc{i}", _Encoder(mid, blind, pool=i < 6))
        self.dec5 = _Decoder(2 * mid, 2 * mid, 2 * mid, blind)
        for i in (4, 3, 2):
            setattr(self, f"dec{i}", _Decoder(3 * mid, 2 * mid, 2 * mid, blind))
        self.dec1 = _Decoder(2 * mid + in_ch, 2 * mid, out_ch, blind, upsample=False)

    def forward(self, image):
        skips = [image]
        x = self.intro(image)
        for i in range(1, 6):
            x = getattr(self, f"enc{i}")(x)
            skips.append(x)
        x = F.interpolate(self.enc6(x), scale_factor=2, mode="nearest")
        for i in range(5, 0, -1):
            x = getattr(self, f"dec{i}")(x, skips[i - 1])
        return x


def rotations(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, S, S] -> [4N, C, S, S]``: the image turned by 0, 90, 180, 270 degrees, on the batch."""
    return torch.cat((x, x.transpose(2, 3).flip(3), x.flip(2).flip(3), x.transpose(2, 3).flip(2)), 0)


def unrotations(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotations`, the four turns concatenated on channels: ``[4N, C] -> [N, 4C]``."""
    r0, r90, r180, r270 = x.chunk(4, 0)
    return torch.cat((r0, r90.transpose(2, 3).flip(2), r180.flip(2).flip(3), r270.transpose(2, 3).flip(3)), 1)


class OfficialStyleATBSN(nn.Module):
    """AT-BSN as the official code runs it: ``forward(x, hole_size) -> [N, out_ch, S, S]``."""

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 3):
        super().__init__()
        self.unet = OfficialStyleUNet(in_ch, mid, 2 * mid, blind=True)
        self.nin_A = nn.Conv2d(8 * mid, 8 * mid, 1)
        self.nin_B = nn.Conv2d(8 * mid, 2 * mid, 1)
        self.nin_C = nn.Conv2d(2 * mid, out_ch, 1)

    def forward(self, x, hole_size: int = 1):
        features = shift_down(self.unet(rotations(x)), (hole_size + 1) // 2)
        y = F.leaky_relu_(self.nin_A(unrotations(features)), 0.1)
        return self.nin_C(F.leaky_relu_(self.nin_B(y), 0.1))


class OfficialStyleNBSN(nn.Module):
    """The official student: a non-blind U-Net, LeakyReLU after every conv (the last one too)."""

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 3):
        super().__init__()
        self.unet = OfficialStyleUNet(in_ch, mid, out_ch, blind=False)

    def forward(self, x):
        return self.unet(x)
