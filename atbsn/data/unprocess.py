"""Realistic sRGB camera noise by unprocessing (after Brooks et al., CVPR 2019).

A clean sRGB image is turned back into a raw Bayer mosaic (inverse tone curve, inverse gamma,
sRGB -> camera colour matrix, inverse white balance, RGGB sampling), Poisson-Gaussian shot and
read noise is added there, and the mosaic is processed forward again (white balance, bilinear
demosaic, camera -> sRGB matrix, gamma, tone curve). Demosaicking and the colour matrix make the
noise spatially and chromatically correlated, as in real sRGB photos (SIDD, DND).

All functions take float tensors in [0, 1] of shape (3, H, W) with even H and W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from atbsn.errors import InputError

# Gradient-corrected demosaic (Malvar, He and Cutler, ICASSP 2004), 5x5 kernels over the Bayer
# plane, in units of 1/8: green at red/blue sites; red/blue at a green site whose row (or column)
# holds that colour; red at blue sites and blue at red sites.
_GREEN_AT_RED_BLUE = [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]
_ALONG_ROW = [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]]
_ACROSS = [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]
_GRADIENT_KERNELS = torch.tensor(
    [_GREEN_AT_RED_BLUE, _ALONG_ROW, [list(column) for column in zip(*_ALONG_ROW)], _ACROSS]) / 8
# Plain bilinear interpolation of the same four cases (the smoother, more correlating demosaic).
_CROSS = [[0, 0, 0, 0, 0], [0, 0, 2, 0, 0], [0, 2, 0, 2, 0], [0, 0, 2, 0, 0], [0, 0, 0, 0, 0]]
_PAIR = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 4, 0, 4, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
_CORNERS = [[0, 0, 0, 0, 0], [0, 2, 0, 2, 0], [0, 0, 0, 0, 0], [0, 2, 0, 2, 0], [0, 0, 0, 0, 0]]
_BILINEAR_KERNELS = torch.tensor([_CROSS, _PAIR, [list(column) for column in zip(*_PAIR)], _CORNERS]) / 8


@dataclass(frozen=True)
class CameraParams:
    """One random camera: colour matrix, white-balance gains and noise levels."""

    rgb_to_cam: torch.Tensor  # (3, 3), rows sum to 1
    rgb_gain: float
    red_gain: float
    blue_gain: float
    shot_noise: float  # variance per unit of signal
    read_noise: float  # signal-independent variance


@dataclass(frozen=True)
class NoiseRange:
    """Where `random_camera` draws the shot noise from (log-uniform); read noise follows it.

    The default spans moderate to strong noise, noisy sRGB PSNR roughly 21-29 dB, around
    SIDD's phone photos (23.7 dB on its validation blocks).
    """

    min_shot: float = 1e-3
    max_shot: float = 5e-3

    def __post_init__(self):
        if not 0 < self.min_shot <= self.max_shot:
            raise InputError(f"noise range: need 0 < min_shot <= max_shot, got {self.min_shot}, {self.max_shot}")


def random_camera(generator: torch.Generator, noise: NoiseRange = NoiseRange()) -> CameraParams:
    """Draw a camera: a random positive colour mixing matrix, gains and shot/read noise levels."""

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    mixing = torch.eye(3) + 0.1 + 0.4 * torch.rand(3, 3, generator=generator) * (1 - torch.eye(3))
    rgb_to_cam = mixing / mixing.sum(dim=1, keepdim=True)
    log_shot = uniform(math.log(noise.min_shot), math.log(noise.max_shot))
    log_read = 2.18 * log_shot + 1.20 + 0.26 * torch.randn((), generator=generator).item()
    return CameraParams(
        rgb_to_cam=rgb_to_cam,
        rgb_gain=1.0 / max(0.5, 0.8 + 0.1 * torch.randn((), generator=generator).item()),
        red_gain=uniform(1.9, 2.4),
        blue_gain=uniform(1.5, 1.9),
        shot_noise=math.exp(log_shot),
        read_noise=math.exp(log_read),
    )


def _apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jhw->ihw", matrix.to(image.dtype), image)


def _wb_gains(camera: CameraParams, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor([camera.red_gain, 1.0, camera.blue_gain], dtype=dtype).view(3, 1, 1) * camera.rgb_gain


def unprocess(image: torch.Tensor, camera: CameraParams) -> torch.Tensor:
    """sRGB (3, H, W) in [0, 1] -> linear camera RGB (3, H, W), before white balance."""
    linear = (0.5 - torch.sin(torch.asin(1.0 - 2.0 * image.clamp(0, 1)) / 3.0)).clamp_min(1e-8) ** 2.2
    cam = _apply_matrix(linear, camera.rgb_to_cam)
    gains = _wb_gains(camera, image.dtype)
    # Keep highlights: blend the inverse gain to 1 as the pixel nears saturation.
    grey = cam.mean(dim=0, keepdim=True)
    saturation = ((grey - 0.9).clamp_min(0) / 0.1) ** 2
    safe_inverse = torch.maximum(saturation + (1 - saturation) / gains, 1 / gains)
    return cam * safe_inverse


def mosaic(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> RGGB Bayer plane (H, W): each pixel keeps one colour."""
    bayer = image[1].clone()
    bayer[0::2, 0::2] = image[0, 0::2, 0::2]
    bayer[1::2, 1::2] = image[2, 1::2, 1::2]
    return bayer


def demosaic(bayer: torch.Tensor, smoothing: float = 0.3) -> torch.Tensor:
    """RGGB Bayer plane (H, W) -> (3, H, W).

    `smoothing` blends plain bilinear interpolation (1) with the gradient-corrected one (0). It
    sets how correlated the noise gets: through the whole pipeline the lag-1 autocorrelation of
    the sRGB noise is about 0.42 at 0, 0.53 at the default 0.3 and 0.6 at 1; real sRGB noise
    shows 0.4-0.6.
    """
    kernels = smoothing * _BILINEAR_KERNELS + (1 - smoothing) * _GRADIENT_KERNELS
    padded = F.pad(bayer[None, None], (2, 2, 2, 2), mode="reflect")
    # Reflection keeps the Bayer lattice at the border (it mirrors about the edge pixel).
    green_at_rb, along_row, along_column, across = F.conv2d(padded, kernels[:, None].to(bayer))[0]
    red, green, blue = bayer.new_empty(3, *bayer.shape)
    green.copy_(bayer)
    green[0::2, 0::2] = green_at_rb[0::2, 0::2]
    green[1::2, 1::2] = green_at_rb[1::2, 1::2]
    for plane, (row, col), (other_row, other_col) in ((red, (0, 0), (1, 1)), (blue, (1, 1), (0, 0))):
        plane[row::2, col::2] = bayer[row::2, col::2]
        plane[row::2, 1 - col::2] = along_row[row::2, 1 - col::2]
        plane[1 - row::2, col::2] = along_column[1 - row::2, col::2]
        plane[other_row::2, other_col::2] = across[other_row::2, other_col::2]
    return torch.stack([red, green, blue])


def process(bayer: torch.Tensor, camera: CameraParams, smoothing: float = 0.3) -> torch.Tensor:
    """RGGB Bayer plane (H, W) before white balance -> sRGB (3, H, W) in [0, 1] (`smoothing`: see `demosaic`)."""
    balanced = demosaic(bayer, smoothing) * _wb_gains(camera, bayer.dtype)
    rgb = _apply_matrix(balanced.clamp(0, 1), torch.linalg.inv(camera.rgb_to_cam.double()))
    gamma = rgb.clamp_min(1e-8) ** (1 / 2.2)
    gamma = gamma.clamp(0, 1)
    return 3 * gamma**2 - 2 * gamma**3


def add_camera_noise(image: torch.Tensor, camera: CameraParams, generator: torch.Generator, *,
                     smoothing: float = 0.3, finish: Callable[[torch.Tensor], torch.Tensor] | None = None
                     ) -> torch.Tensor:
    """Noisy version (3, H, W) in [0, 1] of a clean sRGB image (3, H, W) in [0, 1], H and W even.

    The noise is what the camera pipeline makes of raw shot and read noise: the processed noisy
    mosaic minus the processed clean mosaic. It is added to the clean image itself, so the clean
    image stays the ground truth (the demosaic's own blur is not part of the noise).
    `smoothing` is the demosaic's (see `demosaic`); `finish`, if given, maps both processed sRGB
    images (3, H, W) in [0, 1] further, e.g. a phone's processing (`atbsn.data.isp.apply_isp`).
    """
    if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] % 2 or image.shape[2] % 2:
        raise InputError(f"add_camera_noise: image must be (3, H, W) with even H and W, got {tuple(image.shape)}")
    bayer = mosaic(unprocess(image.double(), camera))
    variance = bayer * camera.shot_noise + camera.read_noise
    noisy_bayer = bayer + variance.sqrt() * torch.randn(bayer.shape, generator=generator, dtype=bayer.dtype)
    noisy_srgb, clean_srgb = process(noisy_bayer, camera, smoothing), process(bayer, camera, smoothing)
    if finish is not None:
        noisy_srgb, clean_srgb = finish(noisy_srgb), finish(clean_srgb)
    noise = noisy_srgb - clean_srgb
    return (image + noise).clamp(0, 1).to(image.dtype)


def noise_autocorrelation(noise: torch.Tensor, lag: int = 1) -> float:
    """Mean autocorrelation at `lag` pixels (horizontal and vertical) of a noise image (C, H, W)."""
    return float(channel_autocorrelation(noise, lag).mean())


def channel_autocorrelation(noise: torch.Tensor, lag: int = 1) -> torch.Tensor:
    """Autocorrelation at `lag` pixels of each channel of a noise image (C, H, W): (C,), the mean of
    the horizontal and vertical correlation coefficients, each channel's mean removed."""
    if lag < 1 or min(noise.shape[1:]) <= lag:
        raise ValueError(f"lag must be >= 1 and smaller than the image, got {lag} for shape {tuple(noise.shape)}")
    centred = noise - noise.mean(dim=(1, 2), keepdim=True)
    variance = (centred * centred).mean(dim=(1, 2))
    horizontal = (centred[:, :, lag:] * centred[:, :, :-lag]).mean(dim=(1, 2))
    vertical = (centred[:, lag:, :] * centred[:, :-lag, :]).mean(dim=(1, 2))
    return (horizontal + vertical) / (2 * variance)
