"""Image quality metrics: PSNR and SSIM (Wang et al. 2004), per image, computed in float64.

Inputs are ``(N, C, H, W)`` or ``(C, H, W)`` tensors with values in ``[0, data_range]``; the
result has shape ``(N,)``, or is a scalar for 3-D input.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from atbsn.errors import InputError

__all__ = ["psnr", "ssim"]

SSIM_WINDOW = 11  # Gaussian taps: radius int(3.5 * sigma + 0.5) = 5, as in Wang et al. and skimage
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_batch(x, y, data_range) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a pair of images; return them as float64 ``(N, C, H, W)`` and whether they were 3-D."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.dtype == torch.bool or t.is_complex():
            kind = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a real-valued torch.Tensor, got {kind}")
    if x.shape != y.shape:
        raise InputError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() not in (3, 4) or 0 in x.shape[-3:]:
        raise InputError(f"images must be (N, C, H, W) or (C, H, W) with C, H, W >= 1, got shape {tuple(x.shape)}")
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real):
        raise TypeError(f"data_range must be a real number, got {type(data_range).__name__}")
    if not (0 < data_range < math.inf):
        raise InputError(f"data_range must be positive and finite, got {data_range}")
    single = x.dim() == 3
    x, y = (t.to(torch.float64) for t in (x, y))
    return (x[None], y[None], single) if single else (x, y, single)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; identical images give inf.

    ``(N, C, H, W) -> (N,)`` (MSE over C, H and W of each image), ``(C, H, W) -> ()``.
    """
    x, y, single = _as_batch(x, y, data_range)
    mse = (x - y).square().mean(dim=(1, 2, 3))
    value = 10 * torch.log10(float(data_range) ** 2 / mse)
    return value[0] if single else value


def _gaussian_window(device: torch.device) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``SSIM_WINDOW`` taps and std ``SSIM_SIGMA``, float64."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _gaussian_valid(maps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter without padding: ``(B, 1, H, W) -> (B, 1, H - 10, W - 10)``."""
    taps = _gaussian_window(maps.device)
    return F.conv2d(F.conv2d(maps, taps.view(1, 1, -1, 1)), taps.view(1, 1, 1, -1))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), mean over channels: ``(N, C, H, W) -> (N,)``, ``(C, H, W) -> ()``.

    Local statistics use an 11 x 11 Gaussian window (sigma 1.5) and population (co)variances;
    the SSIM map is averaged over the positions where the window lies inside the image
    ('valid', i.e. 5 border pixels left out on each side), per channel, then over channels.
    H and W must be at least 11.
    """
    x, y, single = _as_batch(x, y, data_range)
    n, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise InputError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got shape {tuple(x.shape[-3:])}")
    planes = torch.cat([x, y, x * x, y * y, x * y]).reshape(5 * n * c, 1, h, w)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = _gaussian_valid(planes).reshape(5, n, c, h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1)
    var_x, var_y, cov_xy = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    value = ssim_map.mean(dim=(2, 3)).mean(dim=1)
    return value[0] if single else value
