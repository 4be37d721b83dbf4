"""AT-BSN (Chen et al., CVPR 2024) on the fused ops, and its distilled student NBSN.

Same parameters and outputs as the official models (every key and shape: ``tests/data/official_atbsn_state_dict.json``), plus:

- any H x W: the image is zero-padded at the bottom and right to multiples of 32, run, and
  cropped back. Zeros carry no signal, so the blind spot stays exact at the border (reflection
  would copy pixels of the hole into view). Square padded sizes run the four rotations as one
  batch, as the official code does; non-square ones run the 0/180 and the 90/270 turns as two
  batches (each turn at its own shape), which the official code cannot do.
- :meth:`ATBSN.forward_holes`: outputs for several hole sizes from one U-Net pass.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from atbsn.models.unet import DEPTH, SLOPE, UNet
from atbsn_kernels import blind_spot_conv2d, unrotate_cat
from atbsn_kernels.reference import shift_down

__all__ = ["ATBSN", "NBSN", "TEACHER_HOLES", "hole_shift", "init_official", "pad_to_multiple"]

TEACHER_HOLES = (0, 1, 3, 5, 7, 9, 11)  # the paper's seven meta-teachers
MULTIPLE = 2**DEPTH


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` at the bottom and right so that H and W divide by ``multiple``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple))


def hole_shift(hole_size) -> int:
    """Rows the features move away from the pixel for a hole size: ``(hole + 1) // 2``.

    ``hole_size`` is 0 (no blind spot) or odd >= 1 (a hole of about hole x hole pixels).
    """
    if not isinstance(hole_size, numbers.Integral) or isinstance(hole_size, bool):
        raise TypeError(f"hole_size must be an int (0 or odd >= 1), got {hole_size!r}")
    if hole_size < 0 or (hole_size and hole_size % 2 == 0):
        raise ValueError(f"hole_size must be 0 or odd >= 1 (the paper uses {TEACHER_HOLES}), got {hole_size}")
    return (int(hole_size) + 1) // 2


def _check_image(x, channels: int) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must be [N, {channels}, H, W] (pixel values 0..255), got shape {tuple(x.shape)}")


# The four turns (k quarter turns counter-clockwise in the official code's convention) and their
# inverses; a downward shift in turn k's frame is a shift towards SHIFT_DIRECTIONS[k] in the image.
def _turn(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x, x.transpose(2, 3).flip(3), x.flip((2, 3)), x.transpose(2, 3).flip(2))[k]


def _unturn(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x, x.transpose(2, 3).flip(2), x.flip((2, 3)), x.transpose(2, 3).flip(3))[k]


SHIFT_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # (rows, cols) per turn: down, right, up, left


def _add_shifted(acc: torch.Tensor, x: torch.Tensor, direction: tuple[int, int], amount: int) -> None:
    """``acc += x`` moved by ``amount`` pixels along ``direction``, zeros filling in (in place)."""
    dy, dx = direction[0] * amount, direction[1] * amount
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return
    target = acc[:, :, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    target += x[:, :, max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]


def init_official(module: nn.Module) -> None:
    """The official initialisation of every conv in ``module``: Kaiming-normal (a=0.1), zero bias."""
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=SLOPE)
                nn.init.zeros_(conv.bias)


class _OnUNet(nn.Module):
    """A model whose fused ops all run on the backend of its ``unet``."""

    @property
    def backend(self) -> str:
        return self.unet.backend

    @backend.setter
    def backend(self, value: str) -> None:
        self.unet.backend = value


class ATBSN(_OnUNet):
    """Asymmetric blind-spot network: ``forward(x, hole_size)`` with x ``[N, in_ch, H, W]`` in 0..255.

    A half-plane U-Net runs on the four rotations of the image; its features move ``(hole + 1) // 2``
    rows away from the pixel, turn back, are concatenated (4 x 2*mid channels; one
    :func:`atbsn_kernels.unrotate_cat` copy for square padded images) and mixed by three
    1x1 convs (``nin_A``, ``nin_B`` with LeakyReLU(0.1), ``nin_C``). The hole size only enters at
    that shift, so one set of weights serves every hole (train 9, infer 3). ``backend`` is passed
    to every fused op ("auto", "cpu", "triton", "cuda", "reference").
    """

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 3, *, backend: str = "auto"):
        super().__init__()
        self.in_ch, self.mid = in_ch, mid
        self.unet = UNet(in_ch, mid, 2 * mid, blind=True, backend=backend)
        self.nin_A = nn.Conv2d(8 * mid, 8 * mid, 1)
        self.nin_B = nn.Conv2d(8 * mid, 2 * mid, 1)
        self.nin_C = nn.Conv2d(2 * mid, out_ch, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation (:func:`init_official`), ``nin_C`` Kaiming-normal for a linear layer."""
        init_official(self)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.nin_C.weight, nonlinearity="linear")

    def _stacked_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """U-Net features ``[4N, 2*mid, S, S]`` of the four turns of square padded x, turn k in batch block k."""
        return self.unet(torch.cat([_turn(x, k) for k in range(4)], 0))

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """U-Net features of the four turns of padded x, each in its own turned frame."""
        if x.shape[2] == x.shape[3]:
            return list(self._stacked_trunk(x).chunk(4, 0))
        even, odd = (self.unet(torch.cat([_turn(x, k), _turn(x, k + 2)], 0)).chunk(2, 0) for k in (0, 1))
        return [even[0], odd[0], even[1], odd[1]]

    def _conv1x1(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, slope: float | None) -> torch.Tensor:
        return blind_spot_conv2d(x, weight, bias, blind=0, negative_slope=slope, backend=self.backend)

    def _tail(self, mixed: torch.Tensor) -> torch.Tensor:
        """``nin_B`` and ``nin_C`` on the output of ``nin_A`` (after its LeakyReLU)."""
        hidden = self._conv1x1(mixed, self.nin_B.weight, self.nin_B.bias, SLOPE)
        return self._conv1x1(hidden, self.nin_C.weight, self.nin_C.bias, None)

    def forward(self, x: torch.Tensor, hole_size: int = 1) -> torch.Tensor:
        """``[N, in_ch, H, W] -> [N, out_ch, H, W]`` at one hole size (0 or odd; official train 9, infer 3)."""
        _check_image(x, self.in_ch)
        shift = hole_shift(hole_size)
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x)
        if padded.shape[2] == padded.shape[3]:
            turned_back = unrotate_cat(self._stacked_trunk(padded), shift, backend=self.backend)
        else:
            features = self._trunk(padded)
            turned_back = torch.cat([_unturn(shift_down(f, shift), k) for k, f in enumerate(features)], 1)
        return self._tail(self._conv1x1(turned_back, self.nin_A.weight, self.nin_A.bias, SLOPE))[..., :h, :w]

    def forward_holes(self, x: torch.Tensor, holes=TEACHER_HOLES) -> list[torch.Tensor]:
        """Outputs for every hole size in ``holes`` from one U-Net pass: a list of ``[N, out_ch, H, W]``.

        ``nin_A`` is a 1x1 conv and commutes with a zero-filled shift, so its four 2*mid-channel
        blocks are applied once per turn; each hole then only sums four shifted maps and runs
        ``nin_B`` and ``nin_C``. Equals ``[self(x, hole) for hole in holes]``.
        """
        _check_image(x, self.in_ch)
        shifts = [hole_shift(hole) for hole in holes]
        h, w = x.shape[-2:]
        features = self._trunk(pad_to_multiple(x))
        blocks = self.nin_A.weight.chunk(4, 1)
        mixed_turns = [self._conv1x1(_unturn(f, k), block, None, None) for k, (f, block) in enumerate(zip(features, blocks))]
        outputs = []
        for shift in shifts:
            acc = self.nin_A.bias.view(1, -1, 1, 1).expand_as(mixed_turns[0]).clone()
            for direction, mixed in zip(SHIFT_DIRECTIONS, mixed_turns):
                _add_shifted(acc, mixed, direction, shift)
            outputs.append(self._tail(F.leaky_relu(acc, SLOPE))[..., :h, :w])
        return outputs


class NBSN(_OnUNet):
    """The distilled student: a plain (non-blind) U-Net, ``[N, in_ch, H, W] -> [N, out_ch, H, W]``.

    LeakyReLU(0.1) follows every conv, the last one included, as in the official model. Any H x W
    (zero-padded to multiples of 32 and cropped back).
    """

    def __init__(self, in_ch: int = 3, mid: int = 48, out_ch: int = 3, *, backend: str = "auto"):
        super().__init__()
        self.in_ch, self.mid = in_ch, mid
        self.unet = UNet(in_ch, mid, out_ch, blind=False, backend=backend)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation (:func:`init_official`)."""
        init_official(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.in_ch)
        h, w = x.shape[-2:]
        return self.unet(pad_to_multiple(x))[..., :h, :w]
