"""Drop-in modules built on the fused ops.

``BlindSpotConv2d`` is an ``nn.Conv2d`` (same constructor, same ``weight``/``bias`` parameters,
same state dict) whose masked taps are skipped by the fused kernels::

    conv = BlindSpotConv2d(48, 48, 5, blind=3, negative_slope=0.1)   # 5x5, centre 3x3 blind
    y = conv(x)                       # [N, 48, H, W], LeakyReLU fused
    conv.blind = 1                    # asymmetric blind spot: same weights, smaller hole
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atbsn_kernels import _checks, autocast, taps
from atbsn_kernels.backends import check_backend_name
from atbsn_kernels.ops.blind_spot_conv2d import blind_spot_conv2d_taps

__all__ = ["BlindSpotConv2d", "masked_conv", "tap_lattice"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def tap_lattice(active: tuple[int, ...], k: int) -> taps.Lattice:
    """How a ``k x k`` kernel with these active taps runs: itself for k <= 11, else on the coarsest
    lattice of its taps (ValueError when that is still larger than 11)."""
    if k <= _checks.MAX_KERNEL_SIZE:
        return taps.Lattice(1, 0, k, tuple(active))
    grid = taps.lattice(active, k)
    if grid.kernel_size > _checks.MAX_KERNEL_SIZE:
        raise ValueError(
            f"kernel_size {k} needs active taps on a lattice that makes it at most {_checks.MAX_KERNEL_SIZE} "
            f"(every s-th tap from the centre); these taps make it {grid.kernel_size}")
    return grid


def masked_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, grid: taps.Lattice, dilation: int,
                padding_mode: str, negative_slope: float | None, backend: str) -> torch.Tensor:
    """The 'same' conv of x ``[N, Cin, H, W]`` with ``weight`` ``[Cout, Cin, k, k]`` over the active taps
    of ``grid`` (:func:`tap_lattice`), padded as ``padding_mode`` says: ``[N, Cout, H, W]``."""
    k = weight.shape[-1]
    if grid.step > 1:
        end = grid.offset + grid.step * (grid.kernel_size - 1) + 1
        weight = weight[:, :, grid.offset:end:grid.step, grid.offset:end:grid.step]
    pad = dilation * (k // 2)
    if padding_mode != "zeros" and pad > 0:
        x = F.pad(x, (pad, pad, pad, pad), mode=padding_mode)
    x, weight, bias = autocast.conv_operands(x, weight, bias)
    _checks.check_feature_tensors(x, weight, bias)
    y = blind_spot_conv2d_taps(x, weight, bias, grid.taps, dilation * grid.step, negative_slope, backend)
    if padding_mode != "zeros" and pad > 0:
        y = y[:, :, pad:-pad, pad:-pad]
    return y


def _pair_value(value, name: str) -> int:
    """An int or a pair of equal ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name} must be an int or a pair of equal ints, got {value!r}")
        value = value[0]
    if not _checks.is_int(value):
        raise TypeError(f"{name} must be an int or a pair of equal ints, got {value!r}")
    return int(value)


class BlindSpotConv2d(nn.Conv2d):
    """``nn.Conv2d`` drop-in with a blind spot: stride 1, 'same' padding, masked taps skipped.

    Same constructor as ``nn.Conv2d`` plus ``blind`` (centred b x b blind square, 0 = none),
    ``mask`` (bool ``[k, k]``, True = masked; replaces ``blind``), ``negative_slope`` (fused
    LeakyReLU, None = none) and ``backend``. ``padding`` defaults to ``"same"``; an int must equal
    ``dilation * (k // 2)``. ``stride`` must be 1, ``groups`` 1. Input ``[N, Cin, H, W]`` -> output
    ``[N, Cout, H, W]``.

    ``padding_mode`` as in ``nn.Conv2d``: "zeros" runs the fused op's own zero padding; "reflect",
    "replicate" and "circular" pad the input with ``F.pad`` and crop the fused op's output to the
    valid conv of the padded input, which is what ``nn.Conv2d`` computes (the border outputs that
    the crop drops are extra work, small on large images).

    ``kernel_size`` is 1..11, or larger when the active taps lie on a lattice that makes it 11 or
    less (``atbsn_kernels.taps.lattice``: LG-BPN's 21x21 kernel keeping every second tap runs as
    an 11x11 kernel at twice the dilation). ``weight`` keeps the full size either way, so the
    state dict is that of the ``nn.Conv2d``; the taps off the lattice are masked and get zero gradient.

    The state dict holds ``weight`` and ``bias`` only; a state dict that also carries a ``mask``
    buffer (AP-BSN style: 1 = keep, 0 = masked) loads when that mask equals this module's.
    Modules made by :func:`atbsn_kernels.convert_bsn` keep the foreign mask buffer under its own
    name (``mask_buffer_name``), so that checkpoints round-trip with the original model; loading
    such a buffer then sets the tap mask, as it would in the original.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding="same",
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        blind: int = 1,
        mask=None,
        negative_slope: float | None = None,
        backend: str = "auto",
    ):
        k = _pair_value(kernel_size, "kernel_size")
        d = _checks.check_dilation(_pair_value(dilation, "dilation"))
        if _pair_value(stride, "stride") != 1:
            raise ValueError(f"stride must be 1 for a blind-spot conv, got {stride!r}")
        if groups != 1:
            raise ValueError(f"groups must be 1 for a blind-spot conv, got {groups!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if padding != "same" and _pair_value(padding, "padding") != d * (k // 2):
            raise ValueError(f"padding must be 'same' or dilation * (kernel_size // 2) = {d * (k // 2)}, got {padding!r}")
        if k % 2 == 0 or k < 1:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size!r}")
        check_backend_name(backend)
        super().__init__(in_channels, out_channels, k, 1, d * (k // 2), d, 1, bias, padding_mode, device, dtype)
        self.negative_slope = _checks.check_negative_slope(negative_slope)
        self.backend = backend
        self.mask_buffer_name: str | None = None
        self.taps = taps.resolve_taps(k, blind, mask)

    @property
    def taps(self) -> tuple[int, ...]:
        """The active taps of the ``k x k`` kernel (row-major flat indices)."""
        return self._taps

    @taps.setter
    def taps(self, value: tuple[int, ...]) -> None:
        self._lattice = tap_lattice(tuple(value), self.kernel_size[0])
        self._taps = tuple(value)

    def keep_mask_buffer(self, name: str, multiplier: torch.Tensor) -> None:
        """Hold a foreign weight multiplier (1 = keep, 0 = masked) as buffer ``name`` and take
        the tap mask from it; the buffer then travels with the state dict."""
        tap_mask = taps.mask_from_multiplier(multiplier)
        if tap_mask is None or tap_mask.shape != (self.kernel_size[0],) * 2:
            raise ValueError(f"{name} must be a [k, k] or channel-uniform weight multiplier, got shape {tuple(multiplier.shape)}")
        self.register_buffer(name, multiplier.detach().clone())
        self.mask_buffer_name = name
        self.set_mask(tap_mask)

    @property
    def tap_mask(self) -> torch.Tensor:
        """Bool ``[k, k]``: True at masked taps."""
        return taps.taps_to_mask(self.taps, self.kernel_size[0])

    @property
    def blind(self) -> int | None:
        """Blind size b when the mask is a centred b x b square, else None."""
        k = self.kernel_size[0]
        for b in range(0, k + 1, 1):
            if (b == 0 or b % 2) and taps.blind_taps(k, b) == self.taps:
                return b
        return None

    @blind.setter
    def blind(self, value: int) -> None:
        self.taps = taps.blind_taps(self.kernel_size[0], _checks.check_blind(value, self.kernel_size[0]))

    def set_mask(self, mask) -> None:
        """Replace the tap mask (bool ``[k, k]``, True = masked); the weights are unchanged."""
        self.taps = taps.resolve_taps(self.kernel_size[0], 1, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_conv(x, self.weight, self.bias, self._lattice, self.dilation[0], self.padding_mode,
                           self.negative_slope, self.backend)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if self.mask_buffer_name is not None:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
            tap_mask = taps.mask_from_multiplier(getattr(self, self.mask_buffer_name))
            if tap_mask is None:
                error_msgs.append(f"{prefix}{self.mask_buffer_name}: the mask differs between channels")
            else:
                self.set_mask(tap_mask)
            return
        foreign_mask = state_dict.get(prefix + "mask")
        if foreign_mask is not None:
            tap_mask = taps.mask_from_multiplier(foreign_mask)
            if tap_mask is None or not torch.equal(tap_mask, self.tap_mask):
                error_msgs.append(
                    f"{prefix}mask: the checkpoint's mask (0 = masked) does not match this module's tap mask "
                    f"{self.tap_mask.int().tolist()} (1 = masked)"
                )
            state_dict = {key: value for key, value in state_dict.items() if key != prefix + "mask"}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        blind = self.blind
        holes = f"blind={blind}" if blind is not None else f"mask={self.tap_mask.int().tolist()}"
        grid = self._lattice
        lattice = f", runs as {grid.kernel_size}x{grid.kernel_size} at dilation x{grid.step}" if grid.step > 1 else ""
        return (f"{super().extra_repr()}, {holes}, negative_slope={self.negative_slope}, backend={self.backend!r}"
                f"{lattice}")
