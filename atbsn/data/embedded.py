"""The embedded default data: clean colour photos bundled in scikit-image's wheel (and one in
matplotlib's), with camera noise made by `atbsn.data.isp` / `atbsn.data.unprocess`. Nothing is
downloaded.

Training uses `TRAIN_IMAGES`; `HELD_OUT_IMAGES` are kept for evaluation (the demo's table).
Each clean image gets several noisy versions, each from its own random camera, all from one seed,
so the data set is the same on every machine. Two kinds of noise (`NOISE_KINDS`): "phone" (the
default), the photo softened by a phone's optics (its ground truth then) with measured phone
noise levels shaped by a phone's processing (`atbsn.data.isp`: chroma and luma noise
reduction, sharpening, JPEG), which correlates the noise over several pixels as real sRGB
noise is; and "raw", raw shot/read noise through a plain camera pipeline only
(`atbsn.data.unprocess`), nearly white beyond one pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from atbsn.data.isp import add_phone_noise, lens_blur, random_isp, random_lens_sigma, random_phone_camera
from atbsn.data.unprocess import NoiseRange, add_camera_noise, random_camera

# File names inside skimage/data (the ones its wheel ships, never the ones it fetches), and
# matplotlib's sample photo (MATPLOTLIB_IMAGES).
TRAIN_IMAGES = ("astronaut.png", "rocket.jpg", "ihc.png", "motorcycle_left.png", "hubble_deep_field.jpg")
HELD_OUT_IMAGES = ("chelsea.png", "coffee.png", "grace_hopper.jpg", "retina.jpg")
SPLITS = {"train": TRAIN_IMAGES, "held_out": HELD_OUT_IMAGES}
MATPLOTLIB_IMAGES = ("grace_hopper.jpg",)
# (top, bottom, left, right) kept of an image: retina.jpg's fundus without its black surround
CROPS = {"retina.jpg": (354, 1058, 354, 1058)}
NOISE_KINDS = ("phone", "raw")


@dataclass(frozen=True)
class NoisyImage:
    """One noisy image (3, H, W) float32 in [0, 255] and its clean image (same shape) if known."""

    name: str
    noisy: torch.Tensor
    clean: torch.Tensor | None


def skimage_data_dir() -> str:
    import skimage.data

    return os.path.dirname(skimage.data.__file__)


def _bundled_path(file_name: str) -> str:
    if file_name in MATPLOTLIB_IMAGES:
        import matplotlib.cbook

        return str(matplotlib.cbook.get_sample_data(file_name, asfileobj=False))
    return os.path.join(skimage_data_dir(), file_name)


def clean_image(file_name: str) -> torch.Tensor:
    """A bundled photo as (3, H, W) float32 in [0, 1]: its `CROPS` region if any, cropped to even H and W."""
    import skimage.io

    pixels = skimage.io.imread(_bundled_path(file_name))[..., :3]
    if file_name in CROPS:
        top, bottom, left, right = CROPS[file_name]
        pixels = pixels[top:bottom, left:right]
    pixels = np.ascontiguousarray(pixels)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    return image[:, : image.shape[1] // 2 * 2, : image.shape[2] // 2 * 2].contiguous()


def embedded_dataset(split: str = "train", realisations: int = 4, seed: int = 0,
                     noise: NoiseRange = NoiseRange(), kind: str = "phone") -> list[NoisyImage]:
    """`realisations` noisy versions of each image of `split` ("train" or "held_out").

    `kind`: one of `NOISE_KINDS`; `noise` (the shot-noise range) applies to "raw" only, "phone"
    takes measured phone levels.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if realisations < 1:
        raise ValueError(f"realisations must be >= 1, got {realisations}")
    generator = torch.Generator().manual_seed(seed + (0 if split == "train" else 1_000_003))
    images = []
    for file_name in SPLITS[split]:
        clean = clean_image(file_name)
        for index in range(realisations):
            if kind == "phone":
                truth = lens_blur(clean, random_lens_sigma(generator))
                noisy = add_phone_noise(truth, random_phone_camera(generator), random_isp(generator), generator)
            else:
                truth = clean
                noisy = add_camera_noise(clean, random_camera(generator, noise), generator)
            name = f"{os.path.splitext(file_name)[0]}_{index}"
            images.append(NoisyImage(name, (noisy * 255).round(), truth * 255))
    return images
