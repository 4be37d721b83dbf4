"""Read and write 8- and 16-bit RGB image files (PNG, JPEG, TIFF) as (3, H, W) float tensors in [0, 255]."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from atbsn.data.atomic import atomic_path
from atbsn.errors import InputError

__all__ = ["SUFFIXES", "Image", "read_image", "write_image", "list_images", "to_uint8_hwc", "to_float_hwc",
           "from_hwc"]

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_MAX_VALUE = {8: 255, 16: 65535}
_DTYPE = {8: np.uint8, 16: np.uint16}
_CV_LOGGING = getattr(getattr(cv2, "utils", None), "logging", None)  # absent from very old OpenCV builds
_quiet_lock = threading.Lock()
_quiet = {"depth": 0, "level": None}


@contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Silence OpenCV's own log lines (``[ WARN:0@...]`` / ``[ERROR:0@...]`` on fd 2) in the body.

    Our InputError says what went wrong once. The log level is process-wide, so nested or
    concurrent bodies share one silent spell; the first saves the level, the last restores it.
    """
    if _CV_LOGGING is None:
        yield
        return
    with _quiet_lock:
        if _quiet["depth"] == 0:
            _quiet["level"] = _CV_LOGGING.getLogLevel()
            _CV_LOGGING.setLogLevel(_CV_LOGGING.LOG_LEVEL_SILENT)
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if _quiet["depth"] == 0:
                _CV_LOGGING.setLogLevel(_quiet["level"])


@dataclass(frozen=True)
class Image:
    """An RGB image: ``pixels`` (3, H, W) float32 in [0, 255] whatever the file's ``bit_depth`` (8 or 16)."""

    pixels: torch.Tensor
    bit_depth: int
    path: str


def from_hwc(array: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    """(H, W, 3) numpy array of any numeric dtype -> (3, H, W) float32 tensor of ``array * scale``."""
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {array.shape}")
    chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw) * np.float32(scale)


def _check_chw(pixels: torch.Tensor) -> None:
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ValueError(f"expected (3, H, W) pixels, got shape {tuple(pixels.shape)}")
    if not torch.isfinite(pixels).all():
        raise ValueError("pixels contain NaN or infinite values")


def _quantized_hwc(pixels: torch.Tensor, bit_depth: int) -> np.ndarray:
    """(3, H, W) float in [0, 255] -> (H, W, 3) uint8 or uint16, clamped and rounded."""
    _check_chw(pixels)
    values = pixels.detach().to("cpu", torch.float64).clamp(0, 255) * (_MAX_VALUE[bit_depth] / 255)
    return values.round().permute(1, 2, 0).numpy().astype(_DTYPE[bit_depth])


def to_uint8_hwc(pixels: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor in [0, 255] -> (H, W, 3) uint8 numpy array (clamped, rounded)."""
    return _quantized_hwc(pixels, 8)


def to_float_hwc(pixels: torch.Tensor, scale: float = 1.0) -> np.ndarray:
    """(3, H, W) float tensor -> (H, W, 3) float32 numpy array of ``pixels * scale``."""
    _check_chw(pixels)
    return (pixels.detach().to("cpu", torch.float32) * scale).permute(1, 2, 0).contiguous().numpy()


def read_image(path: str | os.PathLike) -> Image:
    """Read an 8- or 16-bit RGB PNG/JPEG/TIFF file; 16-bit values are scaled by 255/65535."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    try:
        with open(path, "rb") as file:
            encoded = np.frombuffer(file.read(), dtype=np.uint8)
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror}); expected an image file") from error
    with _opencv_quiet():
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
    if decoded is None:
        raise InputError(f"{path}: not a readable image (empty, corrupt or an unknown format); "
                         f"expected one of {', '.join(SUFFIXES)}")
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels != 3:
        found = {1: "a grey image (1 channel)", 4: "an RGBA image (4 channels)"}.get(channels, f"{channels} channels")
        raise InputError(f"{path}: the models take 3-channel RGB images; found {found}")
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(decoded.dtype)
    if bit_depth is None:
        raise InputError(f"{path}: found {decoded.dtype} pixels; expected 8-bit or 16-bit integer pixels")
    pixels = from_hwc(decoded[:, :, ::-1], scale=255 / _MAX_VALUE[bit_depth])
    return Image(pixels=pixels, bit_depth=bit_depth, path=path)


def write_image(path: str | os.PathLike, pixels: torch.Tensor, bit_depth: int = 8) -> None:
    """Write (3, H, W) float pixels in [0, 255] as an RGB image, format from the suffix, atomically.

    Values are clamped and rounded; 16-bit files hold round(x * 65535 / 255). JPEG is 8-bit only.
    Missing parent folders are created.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: unknown image suffix {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if bit_depth not in _MAX_VALUE:
        raise InputError(f"{path}: bit depth {bit_depth} is not supported; expected 8 or 16")
    if bit_depth == 16 and suffix in _JPEG_SUFFIXES:
        raise InputError(f"{path}: JPEG holds 8-bit images only; use .png or .tif for 16-bit output")
    bgr = np.ascontiguousarray(_quantized_hwc(pixels, bit_depth)[:, :, ::-1])
    with atomic_path(path) as temporary:
        try:
            with _opencv_quiet():
                written = cv2.imwrite(temporary, bgr)
        except cv2.error as error:
            raise InputError(f"{path}: could not write the image ({error.err})") from error
        if not written:
            raise InputError(f"{path}: could not write the image")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of the image files directly in ``folder`` (no recursion; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    paths = sorted(str(entry) for entry in folder.iterdir()
                   if entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() in SUFFIXES)
    if not paths:
        raise InputError(f"{folder}: no image files; expected files ending in {', '.join(SUFFIXES)}")
    return paths
