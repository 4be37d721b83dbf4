"""Small synthetic inputs for the CLI, weights and data-source tests: RGB image files written with
OpenCV directly (not through atbsn's writer), tiny models saved as weight files, noisy/clean pairs."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from atbsn.models import ATBSN, NBSN
from atbsn.models.weights import save_weights

WIDTH = 4  # the tiny models' width: fast on a CPU


def tiny_model(kind: str = "atbsn", seed: int = 0) -> ATBSN | NBSN:
    """A freshly initialised ATBSN(3, 4, 3) or NBSN(3, 4, 3) in eval mode, from a fixed seed."""
    torch.manual_seed(seed)
    model = (ATBSN if kind == "atbsn" else NBSN)(3, WIDTH, 3)
    return model.eval()


def tiny_weights(path: str | os.PathLike, kind: str = "atbsn", seed: int = 0) -> ATBSN | NBSN:
    """Save a tiny model (fp32 safetensors) to `path`; return the model."""
    model = tiny_model(kind, seed)
    save_weights(model, path)
    return model


def smooth_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth float64 (H, W, 3) image in [20, 235]: gradients and a blob, different per channel."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        centre_r, centre_c = rng.uniform(0, height), rng.uniform(0, width)
        blob = np.exp(-((rows - centre_r) ** 2 + (cols - centre_c) ** 2) / (0.1 * height * width))
        channels.append(a * rows / height + b * cols / width + c * blob)
    image = np.stack(channels, axis=2)
    image = (image - image.min()) / (image.max() - image.min())
    return 20 + 215 * image


def noisy_pair(height: int, width: int, seed: int = 0, sigma: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) uint8 (H, W, 3) RGB arrays: a smooth image and it plus Gaussian noise."""
    clean = smooth_rgb(height, width, seed)
    noise = np.random.default_rng(seed + 1000).normal(0, sigma, clean.shape)
    noisy = np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)
    return noisy, np.round(clean).astype(np.uint8)


def random_rgb(height: int, width: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """Uniformly random (H, W, 3) RGB pixels of `dtype` (uint8 or uint16)."""
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top + 1, size=(height, width, 3), dtype=dtype)


def write_rgb(path: str | os.PathLike, rgb: np.ndarray, params: tuple = ()) -> str:
    """Write an (H, W, 3) RGB (or (H, W) grey, (H, W, 4) RGBA) array with OpenCV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        pixels = rgb[:, :, ::-1]
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        pixels = rgb[:, :, [2, 1, 0, 3]]
    else:
        pixels = rgb
    assert cv2.imwrite(str(path), np.ascontiguousarray(pixels), list(params)), path
    return str(path)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file with OpenCV as written (bit depth kept), RGB channel order."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, path
    return pixels[:, :, ::-1] if pixels.ndim == 3 else pixels


def to_chw(rgb: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    """(H, W, 3) array -> (3, H, W) float32 tensor of rgb * scale (the float32 product, as a reader computes it)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32) * np.float32(scale))


def all_files(folder: str | os.PathLike) -> list[str]:
    """Every file under `folder` (hidden ones included), relative, sorted; [] if it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
