"""Image folder layouts: AT-BSN's patch folders and pairs of noisy/clean folders."""

from __future__ import annotations

import os
from pathlib import Path

from atbsn.data.images import list_images
from atbsn.errors import InputError

__all__ = ["noisy_patches", "patch_pairs", "folder_pairs"]


def noisy_patches(root: str | os.PathLike, split: str) -> list[str]:
    """Sorted noisy patch paths of the official AT-BSN layout: ``root/Noisy/<split>/*``."""
    return list_images(Path(root) / "Noisy" / split)


def patch_pairs(root: str | os.PathLike, split: str) -> list[tuple[str, str]]:
    """(noisy, clean) patch paths of ``root/Noisy/<split>`` and ``root/GT/<split>``, paired in sorted order."""
    noisy = noisy_patches(root, split)
    clean = list_images(Path(root) / "GT" / split)
    if len(noisy) != len(clean):
        raise InputError(f"{Path(root) / 'Noisy' / split} holds {len(noisy)} images but "
                         f"{Path(root) / 'GT' / split} holds {len(clean)}; expected one clean patch per noisy patch")
    return list(zip(noisy, clean))


def folder_pairs(noisy_dir: str | os.PathLike, clean_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """(noisy, clean) paths pairing each image in ``noisy_dir`` with the same file name in ``clean_dir``."""
    clean_by_name = {Path(path).name: path for path in list_images(clean_dir)}
    pairs = []
    for noisy in list_images(noisy_dir):
        clean = clean_by_name.get(Path(noisy).name)
        if clean is None:
            raise InputError(f"{noisy}: no clean image of the same name; expected {Path(clean_dir) / Path(noisy).name}")
        pairs.append((noisy, clean))
    return pairs
