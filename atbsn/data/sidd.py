"""SIDD: the Medium sRGB training folders and the validation/benchmark .mat block files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from atbsn.data.atomic import atomic_path
from atbsn.errors import InputError

__all__ = ["BLOCK_KEYS", "load_sidd_blocks", "require_mat_v5", "save_sidd_blocks", "sidd_medium_pairs"]

BLOCK_KEYS = ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb", "BenchmarkNoisyBlocksSrgb")
_NOISY_NAME = re.compile(r"(?P<image_id>.+)_NOISY_SRGB_(?P<number>\d+)(?P<suffix>\.png)", re.IGNORECASE)
_BLOCKS_SHAPE = "uint8 array of shape (images, blocks, height, width, 3)"
MAT_KEY_HINT = "name the key with --mat-key KEY (eval) or mat_key=KEY (train, distill)"


def sidd_medium_pairs(root: str | os.PathLike) -> list[tuple[str, str]]:
    """Sorted (noisy, ground truth) PNG paths of SIDD Medium sRGB.

    Layout: ``root/Data/<scene>/<id>_NOISY_SRGB_<nnn>.PNG`` beside ``<id>_GT_SRGB_<nnn>.PNG``;
    ``root`` may be the folder holding ``Data`` or ``Data`` itself.
    """
    root = Path(root)
    data = root / "Data" if (root / "Data").is_dir() else root
    if not data.is_dir():
        raise InputError(f"{root}: no such folder; expected the SIDD Medium folder holding Data/")
    pairs = []
    for scene in sorted(entry for entry in data.iterdir() if entry.is_dir()):
        files = sorted(entry for entry in scene.iterdir() if entry.is_file())
        files_by_lower_name = {file.name.lower(): file for file in files}
        for noisy in files:
            match = _NOISY_NAME.fullmatch(noisy.name)
            if match is None:
                continue
            gt_name = f"{match['image_id']}_GT_SRGB_{match['number']}{match['suffix']}"
            gt = files_by_lower_name.get(gt_name.lower())
            if gt is None:
                raise InputError(f"{noisy}: no ground truth beside it; expected {scene / gt_name}")
            pairs.append((str(noisy), str(gt)))
    if not pairs:
        raise InputError(f"{data}: no SIDD Medium images; expected <scene>/<id>_NOISY_SRGB_<nnn>.PNG files")
    return pairs


def _check_blocks(path: str | os.PathLike, key: str, blocks: object) -> np.ndarray:
    if not (isinstance(blocks, np.ndarray) and blocks.dtype == np.uint8 and blocks.ndim == 5
            and blocks.shape[4] == 3):
        found = (f"{blocks.dtype} array of shape {blocks.shape}" if isinstance(blocks, np.ndarray)
                 else type(blocks).__name__)
        raise InputError(f"{path}: key {key!r} holds a {found}; expected a {_BLOCKS_SHAPE}")
    if blocks.size == 0:
        raise InputError(f"{path}: key {key!r} holds no blocks (shape {blocks.shape})")
    return blocks


def require_mat_v5(path: str, expected: str) -> None:
    """InputError unless `path` is a file and not MATLAB v7.3 (HDF5); `expected` says what it should be."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        raise InputError(f"{path}: a MATLAB v7.3 (HDF5) file; expected {expected}")


def _unreadable_mat(path: str, error: Exception) -> InputError:
    return InputError(f"{path}: not a readable MATLAB v5 .mat file ({error})")


def _choose_key(path: str, found: list[str]) -> str:
    known = [key for key in found if key in BLOCK_KEYS]
    if len(known) != 1:
        raise InputError(f"{path}: found keys {found}; expected exactly one of {list(BLOCK_KEYS)}; "
                         f"{MAT_KEY_HINT}")
    return known[0]


def load_sidd_blocks(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Blocks from a SIDD MATLAB v5 .mat file: uint8 (images, blocks, H, W, 3), e.g. 40 x 32 x 256 x 256 x 3.

    With ``key=None`` the one known key (see ``BLOCK_KEYS``) in the file is read.
    """
    path = str(path)
    require_mat_v5(path, "a MATLAB v5 .mat file as SIDD ships")
    try:
        found = [name for name, _shape, _class in scipy.io.whosmat(path)]
    except Exception as error:  # scipy raises ValueError, OSError, MatReadError... for a bad file
        raise _unreadable_mat(path, error) from error
    if key is None:
        key = _choose_key(path, found)
    if key not in found:
        raise InputError(f"{path}: no key {key!r}; found keys {found}")
    try:
        blocks = scipy.io.loadmat(path, variable_names=[key])[key]
    except Exception as error:
        raise _unreadable_mat(path, error) from error
    return _check_blocks(path, key, blocks)


def save_sidd_blocks(path: str | os.PathLike, key: str, blocks: np.ndarray) -> None:
    """Write uint8 (images, blocks, H, W, 3) ``blocks`` under ``key`` to a MATLAB v5 .mat file, atomically."""
    _check_blocks(path, key, blocks)
    with atomic_path(path) as temporary:
        scipy.io.savemat(temporary, {key: blocks}, appendmat=False)
