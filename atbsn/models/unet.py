"""The AT-BSN U-Net on the fused ops: blind (half-plane) for the teacher, plain for the student.

Parameter names follow the official checkpoints (``intro.conv``, ``enc<i>.conv1.conv``,
``dec<i>.conv<j>.conv``), so official state dicts load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atbsn_kernels import blind_spot_conv2d, shifted_conv2d, shifted_max_pool2d, upsample_cat

__all__ = ["UNet", "SLOPE", "DEPTH"]

SLOPE = 0.1  # LeakyReLU slope after every 3x3 conv
DEPTH = 5  # 2x2 pools: H and W must be divisible by 2**DEPTH


class ConvSlot(nn.Module):
    """Holds one 3x3 conv's parameters as ``<name>.conv.weight/bias`` (the official key layout)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)


class Stage(nn.Module):
    """An encoder (``conv1``) or decoder (``conv1``, ``conv2``) stage's parameters."""

    def __init__(self, *channels: int):
        super().__init__()
        for i, (cin, cout) in enumerate(zip(channels, channels[1:]), start=1):
            setattr(self, f"conv{i}", ConvSlot(cin, cout))


class UNet(nn.Module):
    """U-Net of 3x3 convs + LeakyReLU(0.1), 5 max-pools, nearest upsampling and skip concats.

    ``blind=True``: every conv is the half-plane :func:`atbsn_kernels.shifted_conv2d` and every
    pool the shifted :func:`atbsn_kernels.shifted_max_pool2d`, so output row h sees input rows
    <= h only. ``blind=False``: plain 'same' convs and pools. ``[N, in_ch, H, W] -> [N, out_ch, H, W]``
    with H and W divisible by 32. ``backend`` is passed to every op.
    """

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 96, *, blind: bool = True, backend: str = "auto"):
        super().__init__()
        self.blind, self.backend = blind, backend
        self.intro = ConvSlot(in_ch, mid)
        for i in range(1, DEPTH + 2):
            setattr(self, f"enc{i}", Stage(mid, mid))
        self.dec5 = Stage(2 * mid, 2 * mid, 2 * mid)
        for i in range(DEPTH - 1, 1, -1):
            setattr(self, f"dec{i}", Stage(3 * mid, 2 * mid, 2 * mid))
        self.dec1 = Stage(2 * mid + in_ch, 2 * mid, out_ch)

    def conv(self, slot: ConvSlot, x: torch.Tensor) -> torch.Tensor:
        weight, bias = slot.conv.weight, slot.conv.bias
        if self.blind:
            return shifted_conv2d(x, weight, bias, negative_slope=SLOPE, backend=self.backend)
        return blind_spot_conv2d(x, weight, bias, blind=0, negative_slope=SLOPE, backend=self.backend)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_max_pool2d(x, backend=self.backend) if self.blind else F.max_pool2d(x, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.intro, image)
        skips = [image]
        for i in range(1, DEPTH + 1):
            x = self.pool(self.conv(getattr(self, f"enc{i}").conv1, x))
            skips.append(x)
        x = self.conv(getattr(self, f"enc{DEPTH + 1}").conv1, x)
        for i in range(DEPTH, 0, -1):
            stage = getattr(self, f"dec{i}")
            x = upsample_cat(x, skips[i - 1], backend=self.backend)
            x = self.conv(stage.conv2, self.conv(stage.conv1, x))
        return x
