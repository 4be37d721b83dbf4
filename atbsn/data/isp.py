"""A phone camera's sRGB processing after the demosaic, and measured phone noise levels.

Real sRGB noise (SIDD, DND, your own phone photos) is raw shot/read noise shaped by the camera's
image signal processor: after demosaicking, phones reduce chroma noise strongly and luma noise
mildly, sharpen, and compress. Each step spreads the noise over several pixels, which is why
blind-spot networks need a hole (or a pixel-shuffle stride) larger than one pixel on such data.
`apply_isp` runs these steps on a (3, H, W) sRGB image in [0, 1]; `add_phone_noise` is
`atbsn.data.unprocess.add_camera_noise` with a measured phone noise level and these steps.

The steps, in order, each with the range `random_isp` draws its parameters from:

0. optics (`lens_blur`, on the clean photo before any noise): a Gaussian of `lens_sigma` in
   [0.8, 1.2] px. A Gaussian's MTF falls to 50% at 0.187 / sigma cycles per pixel, so this
   gives an MTF50 of 0.16-0.23 cycles/px, the softness of a phone's full-resolution image
   (small pixels behind a small lens); the photos bundled here were downsized and are sharper
   per pixel than that. The blurred photo is the ground truth;
1. demosaic (in `unprocess.process`): gradient-corrected (Malvar-He-Cutler) blended with
   bilinear, `demosaic_smoothing` in [0, 0.5];
2. chroma noise reduction: Cb and Cr (BT.601, full range) blurred by a Gaussian of
   `chroma_sigma` in [1.0, 2.0] px;
3. luma noise reduction: Y blended with its Gaussian blur (`luma_sigma` in [0.6, 1.0] px) by
   `luma_strength` in [0.3, 0.6];
4. unsharp-mask sharpening of Y: Y + `sharpen_amount` (in [0.3, 0.8]) x (Y - blur(Y,
   `sharpen_sigma` in [0.8, 1.5] px));
5. JPEG compression (OpenCV, 4:2:0 chroma) at `jpeg_quality` in [85, 95].

The ranges are mild on purpose: a phone's default rendering, not an aggressive filter. Steps
2-5 leave the noise correlated beyond one pixel: lag-1 / 2 / 3 autocorrelation 0.56 / 0.25 /
0.17 on the held-out photos (the raw pipeline alone: about 0.55 / 0.15 / 0.03), so a one-pixel
blind spot sees noise that shares the centre's (tests/test_isp.py asserts the ranges).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from atbsn.data.unprocess import CameraParams, add_camera_noise, random_camera

__all__ = ["DIGITAL_GAIN", "LENS_SIGMA", "PHONE_NOISE_PROFILES", "IspParams", "add_phone_noise", "apply_isp",
           "compress_jpeg", "lens_blur", "random_isp", "random_lens_sigma", "random_phone_camera",
           "reduce_chroma_noise", "reduce_luma_noise", "sharpen"]

# Poisson-Gaussian raw noise of phone cameras: variance = a * x + b for raw values x in [0, 1],
# green channel (the one white balance does not scale), at the higher ISOs where denoising
# matters. Measured values from darktable's camera noise profiles (darktable 4.2.1,
# data/noiseprofiles.json, as Debian packages it): (camera, ISO, a, b).
PHONE_NOISE_PROFILES = (
    ("LGE Nexus 5", 800, 1.07e-4, 8.89e-7),
    ("LGE Nexus 5", 1600, 2.11e-4, 3.38e-6),
    ("LGE Nexus 5", 3200, 4.24e-4, 1.27e-5),
    ("LGE Nexus 5X", 1600, 2.44e-4, 5.07e-6),
    ("LGE Nexus 5X", 3200, 6.34e-4, 1.32e-5),
    ("LGE Nexus 5X", 6400, 1.45e-3, 4.47e-5),
    ("OnePlus A6003", 1600, 8.80e-5, 5.44e-7),
    ("OnePlus A6003", 3200, 1.79e-4, 1.69e-6),
    ("OnePlus A6003", 6400, 3.13e-4, 2.85e-6),
)
# A dim scene brightened by the phone (digital gain k after the sensor's analog ISO): the raw
# noise of the brightened image is k * a * x + k^2 * b. k is drawn log-uniformly in
# DIGITAL_GAIN (two to four stops), chosen so that the noisy held-out photos
# average close to SIDD's noisy sRGB validation set (23.7 dB PSNR): 23.0 dB, spanning 16-30 dB.
DIGITAL_GAIN = (4.0, 16.0)
LENS_SIGMA = (0.8, 1.2)

# BT.601 full-range RGB -> YCbCr (Cb, Cr centred on 0), as JPEG uses.
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                           dtype=torch.float64)


@dataclass(frozen=True)
class IspParams:
    """One phone's processing after the raw noise (see the module docstring for each step)."""

    demosaic_smoothing: float
    chroma_sigma: float
    luma_sigma: float
    luma_strength: float
    sharpen_sigma: float
    sharpen_amount: float
    jpeg_quality: int

    def __post_init__(self):
        for name in ("demosaic_smoothing", "luma_strength"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("chroma_sigma", "luma_sigma", "sharpen_sigma", "sharpen_amount"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


def random_isp(generator: torch.Generator) -> IspParams:
    """Draw a phone's processing from the ranges of the module docstring."""

    def uniform(low: float, high: float) -> float:
        return _uniform(generator, low, high)

    return IspParams(demosaic_smoothing=uniform(0.0, 0.5), chroma_sigma=uniform(1.0, 2.0),
                     luma_sigma=uniform(0.6, 1.0), luma_strength=uniform(0.3, 0.6),
                     sharpen_sigma=uniform(0.8, 1.5), sharpen_amount=uniform(0.3, 0.8),
                     jpeg_quality=int(torch.randint(85, 96, (), generator=generator)))


def random_lens_sigma(generator: torch.Generator) -> float:
    """Step 0's blur, uniform in `LENS_SIGMA` px."""
    return _uniform(generator, *LENS_SIGMA)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One draw, uniform in [low, high]."""
    return low + (high - low) * torch.rand((), generator=generator).item()


def lens_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Step 0: a phone's optics on a clean photo (3, H, W) in [0, 1], a Gaussian of `sigma` px."""
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return _gaussian_blur(image, sigma).clamp(0, 1)


def random_phone_camera(generator: torch.Generator) -> CameraParams:
    """A random colour pipeline (`unprocess.random_camera`) with the noise of a phone.

    The level is one of `PHONE_NOISE_PROFILES`, chosen uniformly, brightened by a digital gain
    k drawn log-uniformly in `DIGITAL_GAIN`: shot variance x k, read variance x k^2.
    """
    camera = random_camera(generator)
    _name, _iso, shot, read = PHONE_NOISE_PROFILES[int(torch.randint(len(PHONE_NOISE_PROFILES), (),
                                                                     generator=generator))]
    low, high = DIGITAL_GAIN
    gain = low * (high / low) ** torch.rand((), generator=generator).item()
    return dataclasses.replace(camera, shot_noise=shot * gain, read_noise=read * gain**2)


def add_phone_noise(image: torch.Tensor, camera: CameraParams, isp: IspParams,
                    generator: torch.Generator) -> torch.Tensor:
    """Noisy version (3, H, W) in [0, 1] of a clean sRGB image (3, H, W) in [0, 1], H and W even.

    Raw shot/read noise of `camera`, demosaicked with `isp.demosaic_smoothing`, then shaped by
    `apply_isp`: the noise is ISP(processed noisy mosaic) - ISP(processed clean mosaic), added to
    the clean image, so the clean image stays the ground truth.
    """
    return add_camera_noise(image, camera, generator, smoothing=isp.demosaic_smoothing,
                            finish=lambda srgb: apply_isp(srgb, isp))


def _gaussian_blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W) planes, reflect-padded; sigma 0 returns them as they are."""
    if sigma == 0:
        return planes
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=planes.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = planes.shape[0]
    x = F.pad(planes[None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return x[0]


def _to_ycc(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, H, W) RGB -> luma (1, H, W), chroma (2, H, W) (BT.601 full range, chroma centred on 0)."""
    return torch.einsum("ij,jhw->ihw", _RGB_TO_YCC.to(image.dtype), image).split([1, 2])


def _to_rgb(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,jhw->ihw", torch.linalg.inv(_RGB_TO_YCC).to(luma.dtype), torch.cat([luma, chroma]))


def reduce_chroma_noise(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Step 2: blur Cb and Cr of (3, H, W) by a Gaussian of `sigma` px; luma is kept."""
    luma, chroma = _to_ycc(image)
    return _to_rgb(luma, _gaussian_blur(chroma, sigma))


def reduce_luma_noise(image: torch.Tensor, sigma: float, strength: float) -> torch.Tensor:
    """Step 3: blend Y of (3, H, W) with its Gaussian blur (`sigma` px) by `strength`; chroma is kept."""
    luma, chroma = _to_ycc(image)
    return _to_rgb(luma + strength * (_gaussian_blur(luma, sigma) - luma), chroma)


def sharpen(image: torch.Tensor, sigma: float, amount: float) -> torch.Tensor:
    """Step 4: unsharp mask on Y of (3, H, W): Y + amount * (Y - blur(Y, sigma)); chroma is kept."""
    luma, chroma = _to_ycc(image)
    return _to_rgb(luma + amount * (luma - _gaussian_blur(luma, sigma)), chroma)


def compress_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Step 5: encode and decode (3, H, W) in [0, 1] as an 8-bit JPEG (OpenCV's default 4:2:0 chroma)."""
    rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1).to(image.dtype) / 255


def apply_isp(image: torch.Tensor, params: IspParams) -> torch.Tensor:
    """Steps 2-5 of the module docstring on an sRGB image (3, H, W) in [0, 1]; returns (3, H, W) in [0, 1]."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"apply_isp: image must be (3, H, W), got {tuple(image.shape)}")
    image = reduce_chroma_noise(image, params.chroma_sigma)
    image = reduce_luma_noise(image, params.luma_sigma, params.luma_strength)
    image = sharpen(image, params.sharpen_sigma, params.sharpen_amount)
    return compress_jpeg(image.clamp(0, 1), params.jpeg_quality)
