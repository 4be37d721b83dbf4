"""SIDD sRGB benchmark: write (and read back) the submission files for SIDD's benchmark.

Two files, the same blocks in both:

- ``SubmitSrgb.csv`` for the benchmark's Kaggle competition (kaggle.com/competitions/
  sidd-benchmark-srgb-psnr), as SIDD's authors' example script writes it: a header ``ID,BLOCK``,
  then one row per block in (image, block) order, ``ID`` counting from 0 and ``BLOCK`` the
  block's uint8 H x W x 3 bytes (C order) in base64;
- ``SubmitSrgb.mat``, as SIDD's MATLAB benchmark code saves it for the original benchmark page,
  with three variables:

- ``DenoisedBlocksSrgb``: an images x blocks cell array (40 x 32 for the benchmark); cell {i, b}
  is the denoised block b of image i, an H x W x 3 (256 x 256 x 3) uint8 array;
- ``TimeMPSrgb``: the denoising time in seconds per megapixel, a megapixel being 1024 x 1024
  pixels as SIDD's code counts it (total seconds x 1024 x 1024 / pixels denoised);
- ``OptionalData``: a struct of text fields describing the method (``MethodName``, ``Authors``,
  ``PaperTitle``, ``Venue``, ``MachineSpecs``; all optional).

SIDD's code saves with ``-v7.3``; this writes MATLAB's v5 format (zlib-compressed, as MATLAB 7
reads it), which MATLAB's ``load`` reads the same way. A numpy object array becomes a MATLAB cell
array, a dict a struct.
"""

from __future__ import annotations

import base64
import csv
import math
import os
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np
import scipy.io

from atbsn.data.atomic import atomic_path
from atbsn.data.sidd import require_mat_v5
from atbsn.errors import InputError

__all__ = ["CSV_NAME", "SUBMISSION_NAME", "SIDDSubmission", "read_sidd_csv", "read_sidd_submission",
           "seconds_per_megapixel_of", "write_sidd_csv", "write_sidd_submission"]

SUBMISSION_NAME = "SubmitSrgb.mat"
CSV_NAME = "SubmitSrgb.csv"
BLOCKS_KEY, TIME_KEY, OPTIONAL_KEY = "DenoisedBlocksSrgb", "TimeMPSrgb", "OptionalData"
PIXELS_PER_MEGAPIXEL = 1024 * 1024  # as SIDD's benchmark code counts them
_BLOCKS_SHAPE = "uint8 array of shape (images, blocks, height, width, 3), e.g. (40, 32, 256, 256, 3)"


@dataclass(frozen=True)
class SIDDSubmission:
    """A submission read back: ``blocks`` uint8 (images, blocks, H, W, 3), the time, the method's text fields."""

    blocks: np.ndarray
    seconds_per_megapixel: float
    optional_data: dict[str, str] = field(default_factory=dict)


def seconds_per_megapixel_of(seconds: float, pixels: int) -> float:
    """SIDD's ``TimeMPSrgb``: ``seconds`` spent denoising ``pixels`` pixels, per 1024 x 1024 pixels."""
    if pixels <= 0:
        raise ValueError(f"pixels must be positive, got {pixels}")
    return seconds * PIXELS_PER_MEGAPIXEL / pixels


def _check_blocks(denoised_blocks: object) -> np.ndarray:
    if not isinstance(denoised_blocks, np.ndarray):
        raise TypeError(f"denoised_blocks must be a numpy {_BLOCKS_SHAPE}, got {type(denoised_blocks).__name__}")
    if denoised_blocks.dtype != np.uint8:
        raise TypeError(f"denoised_blocks must be a {_BLOCKS_SHAPE}, got dtype {denoised_blocks.dtype}")
    if denoised_blocks.ndim != 5 or denoised_blocks.shape[4] != 3 or denoised_blocks.size == 0:
        raise ValueError(f"denoised_blocks must be a non-empty {_BLOCKS_SHAPE}, got shape {denoised_blocks.shape}")
    return denoised_blocks


def _check_time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"seconds_per_megapixel must be a real number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"seconds_per_megapixel must be finite and >= 0, got {value}")
    return float(value)


def write_sidd_submission(output_dir: str | os.PathLike, denoised_blocks: np.ndarray, seconds_per_megapixel: float,
                          method_name: str = "atbsn", authors: str | None = None, paper_title: str | None = None,
                          venue: str | None = None, machine_specs: str | None = None) -> str:
    """Write ``output_dir/SubmitSrgb.mat`` for SIDD's sRGB benchmark, atomically; return its path.

    ``denoised_blocks``: uint8 (images, blocks, H, W, 3), e.g. (40, 32, 256, 256, 3), block b of
    image i at ``[i, b]`` as in ``BenchmarkNoisyBlocksSrgb``. ``seconds_per_megapixel``: see
    ``seconds_per_megapixel_of()``. The text fields go into ``OptionalData`` (those given as None are left out).
    """
    blocks = _check_blocks(denoised_blocks)
    time_mp = _check_time(seconds_per_megapixel)
    if not isinstance(method_name, str):
        raise TypeError(f"method_name must be a str, got {type(method_name).__name__}")
    given = {"authors": authors, "paper_title": paper_title, "venue": venue, "machine_specs": machine_specs}
    for argument, value in given.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{argument} must be a str or None, got {type(value).__name__}")
    fields = {"MethodName": method_name, "Authors": authors, "PaperTitle": paper_title, "Venue": venue,
              "MachineSpecs": machine_specs}
    cell = np.empty(blocks.shape[:2], dtype=object)
    for image in range(blocks.shape[0]):
        for block in range(blocks.shape[1]):
            cell[image, block] = np.ascontiguousarray(blocks[image, block])
    contents = {BLOCKS_KEY: cell, TIME_KEY: time_mp,
                OPTIONAL_KEY: {name: value for name, value in fields.items() if value is not None}}
    path = Path(output_dir) / SUBMISSION_NAME
    with atomic_path(path) as temporary:
        scipy.io.savemat(temporary, contents, appendmat=False, do_compression=True)
    return str(path)


def _blocks_from_cell(path: str, cell: np.ndarray) -> np.ndarray:
    where = f"{path}: key {BLOCKS_KEY!r}"
    if cell.dtype != object:  # some tools write one 5-D array instead of the cell array
        if cell.dtype == np.uint8 and cell.ndim == 5 and cell.shape[4] == 3 and cell.size:
            return cell
        raise InputError(f"{where} holds a {cell.dtype} array of shape {cell.shape}; expected an images x blocks "
                         f"cell array of H x W x 3 uint8 blocks")
    if cell.ndim != 2 or cell.size == 0:
        raise InputError(f"{where} holds a cell array of shape {cell.shape}; expected images x blocks")
    first = cell[0, 0]
    for (image, block), entry in np.ndenumerate(cell):
        if not (isinstance(entry, np.ndarray) and entry.dtype == np.uint8 and entry.ndim == 3
                and entry.shape[2] == 3 and entry.shape == first.shape):
            found = f"a {entry.dtype} array of shape {entry.shape}" if isinstance(entry, np.ndarray) \
                else type(entry).__name__
            raise InputError(f"{where} cell ({image + 1}, {block + 1}) holds {found}; expected an H x W x 3 uint8 "
                             f"block of the same shape as cell (1, 1), {first.shape}")
    return np.stack([np.stack(list(row)) for row in cell])


def _text(value: object) -> str:
    """A MATLAB char array as loadmat gives it (a 1-element or empty str array) -> str."""
    if isinstance(value, np.ndarray):
        return "".join(str(item) for item in value.reshape(-1)) if value.dtype.kind == "U" else str(value)
    return str(value)


def _optional_data(path: str, contents: dict) -> dict[str, str]:
    struct = contents.get(OPTIONAL_KEY)
    if struct is None:
        return {}
    if not (isinstance(struct, np.ndarray) and struct.dtype.names is not None and struct.size == 1):
        raise InputError(f"{path}: key {OPTIONAL_KEY!r} is not a 1 x 1 struct")
    entry = struct.reshape(-1)[0]
    return {name: _text(entry[name]) for name in struct.dtype.names}


def read_sidd_submission(path: str | os.PathLike) -> SIDDSubmission:
    """Read a ``SubmitSrgb.mat`` (MATLAB v5) as ``write_sidd_submission`` writes it."""
    path = str(path)
    require_mat_v5(path, "the MATLAB v5 file atbsn writes")
    try:
        contents = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises ValueError, OSError, MatReadError... for a bad file
        raise InputError(f"{path}: not a readable MATLAB v5 .mat file ({error})") from error
    missing = [key for key in (BLOCKS_KEY, TIME_KEY) if key not in contents]
    if missing:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise InputError(f"{path}: no key {missing[0]!r}; found keys {found}; expected a SIDD sRGB submission")
    blocks = _blocks_from_cell(path, contents[BLOCKS_KEY])
    time_mp = contents[TIME_KEY]
    if not (isinstance(time_mp, np.ndarray) and time_mp.size == 1 and time_mp.dtype.kind in "iuf"):
        raise InputError(f"{path}: key {TIME_KEY!r} is not one number (seconds per megapixel)")
    return SIDDSubmission(blocks, float(time_mp.item()), _optional_data(path, contents))


def write_sidd_csv(output_dir: str | os.PathLike, denoised_blocks: np.ndarray) -> str:
    """Write ``output_dir/SubmitSrgb.csv`` (the Kaggle form, see the module docstring), atomically; return its path."""
    blocks = _check_blocks(denoised_blocks)
    path = Path(output_dir) / CSV_NAME
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "BLOCK"])
        flat = blocks.reshape(-1, *blocks.shape[2:])
        for index, block in enumerate(flat):
            writer.writerow([index, base64.b64encode(np.ascontiguousarray(block).tobytes()).decode("ascii")])
    return str(path)


def read_sidd_csv(path: str | os.PathLike, images: int, blocks: int, height: int, width: int) -> np.ndarray:
    """The blocks of a ``SubmitSrgb.csv``: uint8 (images, blocks, height, width, 3); InputError if it does not fit."""
    path = str(path)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    if not rows or rows[0] != ["ID", "BLOCK"]:
        raise InputError(f"{path}: expected the header ID,BLOCK")
    count, size = images * blocks, height * width * 3
    if len(rows) - 1 != count:
        raise InputError(f"{path}: {len(rows) - 1} blocks; expected {images} x {blocks} = {count}")
    out = np.empty((count, size), np.uint8)
    for index, row in enumerate(rows[1:]):
        try:
            data = base64.b64decode(row[1], validate=True) if len(row) == 2 and row[0] == str(index) else b""
        except ValueError:
            data = b""
        if len(data) != size:
            raise InputError(f"{path}: row {index + 1} is not block {index} of {height} x {width} x 3 uint8 "
                             f"in base64")
        out[index] = np.frombuffer(data, np.uint8)
    return out.reshape(images, blocks, height, width, 3)
