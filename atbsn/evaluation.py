"""Score a denoiser on noisy/clean pairs: PSNR and SSIM of the 8-bit-quantised output, as the
SIDD and DND benchmarks compute them. Used by training's validation and by `atbsn eval`."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from atbsn.data.embedded import NoisyImage
from atbsn.errors import InputError
from atbsn.inference import denoise_tiled
from atbsn.metrics import psnr, ssim
from atbsn.progress import progress as show_progress

# Images larger than this on a side are denoised in overlapping tiles (bounded memory).
TILE, TILE_OVERLAP = 512, 32


def quantise(image: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid in [0, 255], as a saved image would be."""
    return image.clamp(0, 255).round()


@torch.no_grad()
def denoise_image(denoise: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, device: torch.device,
                  tile: int = TILE, overlap: int = TILE_OVERLAP) -> torch.Tensor:
    """Denoise one image (3, H, W) in [0, 255] on `device`, in tiles when larger than `tile`; on the CPU."""
    batch = noisy.float().unsqueeze(0).to(device)
    return denoise_tiled(denoise, batch, tile=tile, overlap=overlap)[0].cpu()


def score_images(denoise: Callable[[torch.Tensor], torch.Tensor], images: Iterable[NoisyImage],
                 device: torch.device, progress: bool = False, tile: int = TILE,
                 overlap: int = TILE_OVERLAP) -> list[dict]:
    """One row per image: name, PSNR and SSIM of the noisy input and of the denoised output."""
    rows = []
    images = list(images)
    for image in show_progress(images, desc="evaluating", unit="image", disable=not progress):
        clean = image.clean.float()
        if image.noisy.shape != clean.shape:
            raise InputError(f"{image.name}: the noisy image is {tuple(image.noisy.shape[1:])} but its clean "
                             f"image is {tuple(clean.shape[1:])}; pairs must have the same size")
        denoised = quantise(denoise_image(denoise, image.noisy, device, tile, overlap))
        rows.append({
            "image": image.name,
            "noisy_psnr": float(psnr(image.noisy.float(), clean)),
            "noisy_ssim": float(ssim(image.noisy.float(), clean)),
            "psnr": float(psnr(denoised, clean)),
            "ssim": float(ssim(denoised, clean)),
        })
    return rows


def mean_scores(rows: list[dict]) -> dict:
    """The mean of every numeric column of `score_images` rows."""
    keys = [key for key in rows[0] if key != "image"]
    return {key: sum(row[key] for row in rows) / len(rows) for key in keys}
