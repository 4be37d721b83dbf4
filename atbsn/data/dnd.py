"""DND sRGB benchmark: read the crops to denoise (MATLAB v7.3 files) and write the upload bundle.

Layout: ``root/info.mat`` (group ``info``, dataset ``boundingboxes`` of references, one per image,
each to a box table) and ``root/images_srgb/0001.mat, 0002.mat, ...`` (dataset ``InoisySRGB``).
HDF5 holds MATLAB arrays transposed, so an (H, W, 3) image is stored as (3, W, H).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch

from atbsn.data.atomic import atomic_path
from atbsn.data.images import from_hwc, to_float_hwc
from atbsn.errors import InputError

__all__ = ["DNDCrop", "DNDImages", "write_dnd_submission"]


@dataclass(frozen=True)
class DNDCrop:
    """Crop ``crop_index`` of image ``image_index`` (both 0-based): ``pixels`` (3, h, w) float32 in [0, 255]."""

    image_index: int
    crop_index: int
    pixels: torch.Tensor


@contextmanager
def _open_mat_v73(path: Path) -> Iterator[h5py.File]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({error})") from error
    with file:
        yield file


def _dataset(file: h5py.File, key: str, path: Path) -> h5py.Dataset:
    node = file.get(key)
    if not isinstance(node, h5py.Dataset):
        raise InputError(f"{path}: no dataset {key!r}; expected the DND sRGB format")
    return node


def _box_slices(table: np.ndarray, path: Path, where: str) -> np.ndarray:
    """(K, 4) 1-based MATLAB boxes -> (K, 4) int [row_start, row_stop, col_start, col_stop], 0-based half-open."""
    if table.ndim != 2 or table.shape[1] != 4 or table.shape[0] == 0 or table.dtype.kind not in "iuf":
        raise InputError(f"{path}: {where} holds a {table.dtype} table of shape {table.shape}; "
                         f"expected a (boxes, 4) numeric table")
    if not (np.isfinite(table).all() and (table == np.round(table)).all()):
        raise InputError(f"{path}: {where} holds non-integer or NaN box corners")
    slices = table.astype(np.int64)[:, [0, 2, 1, 3]] - np.array([1, 0, 1, 0])
    if (slices[:, [0, 2]] < 0).any() or (slices[:, [1, 3]] <= slices[:, [0, 2]]).any():
        raise InputError(f"{path}: {where} holds empty or negative boxes; expected 1-based inclusive corners")
    return slices


def _read_boxes(path: Path) -> list[np.ndarray]:
    """Each image's box slices (see ``_box_slices``) from ``info.mat``."""
    with _open_mat_v73(path) as file:
        references = _dataset(file, "info/boundingboxes", path)
        if h5py.check_dtype(ref=references.dtype) is not h5py.Reference or references.ndim != 2 \
                or 1 not in references.shape:
            raise InputError(f"{path}: key 'info/boundingboxes' holds a {references.dtype} array of shape "
                             f"{references.shape}; expected (1, images) object references")
        boxes = []
        for image_index, reference in enumerate(references[()].reshape(-1)):
            where = f"key 'info/boundingboxes' entry {image_index}"
            try:
                table = np.array(file[reference]).T
            except (ValueError, KeyError, TypeError) as error:
                raise InputError(f"{path}: {where} is not a valid reference ({error})") from error
            boxes.append(_box_slices(table, path, where))
    return boxes


class DNDImages:
    """The DND sRGB images under ``root`` and their crops to denoise (20 per image in the real data)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._boxes = _read_boxes(self.root / "info.mat")
        for image_index in range(len(self)):
            if not Path(self.image_path(image_index)).is_file():
                raise InputError(f"{self.image_path(image_index)}: no such file; info.mat lists "
                                 f"{len(self)} images")

    def __len__(self) -> int:
        return len(self._boxes)

    def image_path(self, image_index: int) -> str:
        """Path of image ``image_index`` (0-based): ``root/images_srgb/%04d.mat`` of ``image_index + 1``."""
        return str(self.root / "images_srgb" / f"{image_index + 1:04d}.mat")

    def boxes(self, image_index: int) -> np.ndarray:
        """(crops, 4) int [row_start, row_stop, col_start, col_stop] of image ``image_index``, 0-based half-open."""
        return self._boxes[image_index].copy()

    def crops(self, image_index: int) -> list[DNDCrop]:
        """The crops of image ``image_index``, read from its file without loading the whole image."""
        path = Path(self.image_path(image_index))
        with _open_mat_v73(path) as file:
            image = _dataset(file, "InoisySRGB", path)
            if image.ndim != 3 or image.shape[0] != 3 or image.dtype.kind != "f":
                raise InputError(f"{path}: key 'InoisySRGB' holds a {image.dtype} array of stored shape "
                                 f"{image.shape}; expected a float (3, W, H) array (MATLAB H x W x 3, in [0, 1])")
            height, width = image.shape[2], image.shape[1]
            crops = []
            for crop_index, (row_start, row_stop, col_start, col_stop) in enumerate(self._boxes[image_index]):
                if row_stop > height or col_stop > width:
                    raise InputError(f"{path}: box {crop_index} from info.mat (rows {row_start}:{row_stop}, "
                                     f"cols {col_start}:{col_stop}) lies outside the {height} x {width} image")
                crop = image[:, col_start:col_stop, row_start:row_stop].T
                if not np.isfinite(crop).all():
                    raise InputError(f"{path}: key 'InoisySRGB' holds NaN or infinite values in box {crop_index}")
                crops.append(DNDCrop(image_index, crop_index, from_hwc(crop, scale=255)))
        return crops


def write_dnd_submission(out_dir: str | os.PathLike, denoised: Sequence[Sequence[torch.Tensor]]) -> list[str]:
    """Write DND's sRGB upload bundle; return the written paths.

    ``denoised[i][k]`` is crop k of image i as (3, h, w) float in [0, 255]. For each image,
    ``out_dir/bundled/%04d.mat`` (MATLAB v5) holds ``Idenoised`` (a cell of the crops as h x w x 3
    float32 in [0, 1], clamped), ``israw`` = False and ``eval_version`` = "1.0".
    """
    paths = []
    for image_index, crops in enumerate(denoised):
        cell = np.empty(len(crops), dtype=object)
        for crop_index, crop in enumerate(crops):
            cell[crop_index] = to_float_hwc(crop.clamp(0, 255), scale=1 / 255)
        path = Path(out_dir) / "bundled" / f"{image_index + 1:04d}.mat"
        with atomic_path(path) as temporary:
            scipy.io.savemat(temporary, {"Idenoised": cell, "israw": False, "eval_version": "1.0"}, appendmat=False)
        paths.append(str(path))
    return paths
