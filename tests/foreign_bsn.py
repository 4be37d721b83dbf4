"""Small blind-spot networks in the style of foreign BSN codebases, written here from the papers'
descriptions and the habits of public BSN code (no code copied): AP-BSN (centre-masked 3x3 / 5x5
first convs masked in place, in-place ReLUs, dilated branches), MM-BSN (several mask shapes
applied as weight * mask), AM-BSN (an X-shaped 5x5 masked through a forward pre-hook), LG-BPN
(a 9x9 diamond and a 21x21 kernel keeping every second tap, reflect padding, a residual added in
place). Used by tests/test_convert.py and benchmarks/test_convert.py."""

import torch
import torch.nn.functional as F
from torch import nn


class CentreMaskedConv(nn.Conv2d):
    """AP-BSN style: a weight-shaped 0/1 buffer, zero at the centre, applied by editing the weight."""

    def __init__(self, channels, k):
        super().__init__(channels, channels, k, padding=k // 2)
        self.register_buffer("mask", torch.ones_like(self.weight))
        self.mask[:, :, k // 2, k // 2] = 0

    def forward(self, x):
        self.weight.data *= self.mask
        return super().forward(x)


class APStyleBSN(nn.Module):
    """Two branches (3x3 and 5x5 centre-masked first conv), dilated 3x3 convs, 1x1 head."""

    def __init__(self, channels=8):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 1)
        self.branches = nn.ModuleList(
            nn.Sequential(CentreMaskedConv(channels, 2 * s - 1), nn.ReLU(inplace=True),
                          nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True),
                          nn.Conv2d(channels, channels, 3, padding=s, dilation=s), nn.ReLU(inplace=True))
            for s in (2, 3)
        )
        self.tail = nn.Conv2d(2 * channels, 3, 1)

    def forward(self, x):
        x = F.relu(self.head(x))
        return self.tail(torch.cat([b(x) for b in self.branches], 1))


def mm_masks(k):
    """MM-BSN's shapes as 0/1 multipliers: centre, middle row, middle column, '+', diagonal, X."""
    c, eye = k // 2, torch.eye(k)
    shapes = [torch.zeros(k, k) for _ in range(4)] + [eye, ((eye + eye.flip(1)) > 0).float()]
    shapes[0][c, c] = 1
    shapes[1][c, :] = 1
    shapes[2][:, c] = 1
    shapes[3][c, :] = shapes[3][:, c] = 1
    return [1 - s for s in shapes]


class MultiMaskConv(nn.Conv2d):
    """MM-BSN style: a [k, k] mask buffer applied as F.conv2d(x, weight * mask)."""

    def __init__(self, cin, cout, keep):
        super().__init__(cin, cout, keep.shape[0], padding=keep.shape[0] // 2)
        self.register_buffer("mask", keep.clone())

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class MMStyleBSN(nn.Module):
    def __init__(self, k=5, channels=4):
        super().__init__()
        self.masked = nn.ModuleList(MultiMaskConv(3, channels, keep) for keep in mm_masks(k))
        self.fuse = nn.Conv2d(channels * len(self.masked), 3, 1)

    def forward(self, x):
        return self.fuse(torch.cat([F.leaky_relu(m(x), 0.1) for m in self.masked], 1))


def am_style_bsn():
    """AM-BSN style: an X-shaped 5x5 mask applied by a forward pre-hook on a plain conv."""
    conv = nn.Conv2d(3, 6, 5, padding=2)
    eye = torch.eye(5)
    conv.register_buffer("x_mask", 1 - ((eye + eye.flip(1)) > 0).float())

    def apply_mask(module, inputs):
        module.weight.data.mul_(module.x_mask)

    conv.register_forward_pre_hook(apply_mask)
    return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(6, 3, 1))


class InPlaceMaskedConv(nn.Conv2d):
    """LG-BPN style: a [k, k] 0/1 buffer applied to the weight in place before nn.Conv2d's forward
    (which pads as ``padding_mode`` says)."""

    def __init__(self, cin, cout, keep, padding_mode="reflect"):
        super().__init__(cin, cout, keep.shape[0], padding=keep.shape[0] // 2, padding_mode=padding_mode)
        self.register_buffer("mask", keep.clone())

    def forward(self, x):
        self.weight.data *= self.mask
        return super().forward(x)


class ChoppedMaskedConv(InPlaceMaskedConv):
    """LG-BPN's DSPMC style: forward(x, refine, dict=...) masks in place and convolves in training;
    in eval mode it convolves the image in two overlapping halves (a chopped forward) and stitches."""

    def forward(self, x, refine=False, dict=None):
        self.weight.data *= self.mask
        if self.training:
            return super().forward(x)
        margin, half = self.padding[0], x.shape[-1] // 2
        left = super().forward(x[..., :half + margin])[..., :half]
        right = super().forward(x[..., half - margin:])[..., margin:]
        return torch.cat([left, right], -1)


def diamond_keep(k=9, radius=4):
    """1 outside the diamond |di| + |dj| <= radius, 0 inside."""
    c = k // 2
    return torch.tensor([[float(abs(i - c) + abs(j - c) > radius) for j in range(k)] for i in range(k)])


def lattice_keep(k=21, step=2, hole=1):
    """1 at every ``step``-th tap from the centre, except the centre (hole x hole lattice taps)."""
    keep = torch.zeros(k, k)
    keep[::step, ::step] = 1
    c, h = k // 2, hole // 2 * step
    keep[c - h:c + h + 1, c - h:c + h + 1] = 0
    return keep


class LGStyleBSN(nn.Module):
    """A 9x9 diamond-masked branch and a 21x21 every-second-tap branch, both reflect-padded, a
    replicate-padded centre-masked 3x3, and a residual added in place to a masked conv's output."""

    def __init__(self, channels=4):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 1)
        self.diamond = InPlaceMaskedConv(channels, channels, diamond_keep())
        self.sparse = ChoppedMaskedConv(channels, channels, lattice_keep())
        keep = torch.ones(3, 3)
        keep[1, 1] = 0
        self.centre = InPlaceMaskedConv(channels, channels, keep, padding_mode="replicate")
        self.tail = nn.Conv2d(2 * channels, 3, 1)

    def forward(self, x):
        x = self.head(x)
        local = self.centre(x)
        local += x
        branches = [torch.relu_(self.diamond(local)), torch.relu_(self.sparse(x, False, dict=None))]
        return self.tail(torch.cat(branches, 1))
