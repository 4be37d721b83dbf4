"""Turn a `data` / `val_data` setting into images: the embedded photos, a folder of noisy
images, the official patch layout, a SIDD Medium folder or SIDD's validation .mat blocks."""

from __future__ import annotations

from pathlib import Path

import torch

from atbsn.data.embedded import NoisyImage, embedded_dataset
from atbsn.data.folders import noisy_patches, patch_pairs
from atbsn.data.images import from_hwc, list_images, read_image
from atbsn.data.sidd import load_sidd_blocks, sidd_medium_pairs
from atbsn.errors import InputError
from atbsn.progress import progress

SIDD_VALIDATION_NOISY = "ValidationNoisyBlocksSrgb.mat"
DATA_HELP = ("'embedded', a folder of noisy images, a patch root holding Noisy/<split>, a SIDD Medium "
             "folder holding Data/, or SIDD's ValidationNoisyBlocksSrgb.mat")


class TrainingImages(list):
    """Training images (3, H, W), a plain list of tensors, with ``names``: what each is (its file,
    "<file>.mat block <k>" or "embedded photo <name>"), for `CropSampler`'s errors."""

    def __init__(self, images: list[torch.Tensor], names: list[str]):
        super().__init__(images)
        self.names = list(names)


def _compact(pixels: torch.Tensor) -> torch.Tensor:
    """Keep 8-bit images as uint8 (4x less memory); anything finer stays float32."""
    if torch.equal(pixels, pixels.round()) and pixels.max() <= 255:
        return pixels.to(torch.uint8)
    return pixels


def _is_sidd_medium(root: Path) -> bool:
    return (root / "Data").is_dir() or (root.name == "Data" and root.is_dir())


def _mat_blocks(path: Path, key: str | None) -> list[torch.Tensor]:
    """The blocks of a SIDD .mat file as (3, H, W) tensors, in (image, block) order."""
    blocks = load_sidd_blocks(path, key)
    return [from_hwc(block) for image in blocks for block in image]


def _noisy_paths(root: Path) -> list[str]:
    if _is_sidd_medium(root):
        return [noisy for noisy, _clean in sidd_medium_pairs(root)]
    if (root / "Noisy" / "train").is_dir():
        return noisy_patches(root, "train")
    return list_images(root)


def _read_all(paths: list[str], what: str) -> list[torch.Tensor]:
    return [read_image(path).pixels for path in progress(paths, desc=f"reading {what}", unit="image", leave=False)]


def training_images(spec: str, realisations: int = 4, seed: int = 0, *,
                    mat_key: str | None = None, embedded_noise: str = "phone") -> TrainingImages:
    """Noisy training images (3, H, W) in [0, 255], uint8 where the source is 8-bit, with their names.

    `mat_key` names the key of a SIDD .mat file (default: its one known key); other sources ignore it.
    `embedded_noise` is the embedded data's kind of noise (`embedded.NOISE_KINDS`).
    """
    if spec == "embedded":
        dataset = embedded_dataset("train", realisations, seed, kind=embedded_noise)
        return TrainingImages([_compact(image.noisy) for image in dataset],
                              [f"embedded photo {image.name}" for image in dataset])
    root = Path(spec)
    if root.suffix.lower() == ".mat":
        images = _mat_blocks(root, mat_key)
        names = [f"{root} block {index}" for index in range(len(images))]
    elif root.is_dir():
        names = _noisy_paths(root)
        images = _read_all(names, "training images")
    else:
        raise InputError(f"data: {spec}: no such file or folder; expected {DATA_HELP}")
    return TrainingImages([_compact(image) for image in images], names)


def _sidd_validation(path: Path, mat_key: str | None) -> list[NoisyImage]:
    """SIDD's validation blocks: `path` is the noisy .mat (its clean twin has "Gt" for "Noisy") or their folder.

    `mat_key` is the noisy file's key; the clean file's is `mat_key` with "Noisy" replaced by "Gt".
    """
    noisy_file = path / SIDD_VALIDATION_NOISY if path.is_dir() else path
    if "Noisy" not in noisy_file.name:
        raise InputError(f"{noisy_file}: give the noisy blocks file (e.g. {SIDD_VALIDATION_NOISY}); its clean "
                         f"twin is found by replacing 'Noisy' with 'Gt' in the name")
    clean_file = noisy_file.with_name(noisy_file.name.replace("Noisy", "Gt"))
    clean_key = mat_key.replace("Noisy", "Gt") if mat_key is not None else None
    noisy, clean = _mat_blocks(noisy_file, mat_key), _mat_blocks(clean_file, clean_key)
    if len(noisy) != len(clean):
        raise InputError(f"{noisy_file} holds {len(noisy)} blocks but {clean_file} holds {len(clean)}")
    return [NoisyImage(f"block_{index:04d}", n, c) for index, (n, c) in enumerate(zip(noisy, clean))]


def read_pairs(pairs: list[tuple[str, str]]) -> list[NoisyImage]:
    """The images of (noisy path, clean path) pairs, named by the noisy file's stem."""
    return [NoisyImage(Path(noisy).stem, read_image(noisy).pixels, read_image(clean).pixels)
            for noisy, clean in progress(pairs, desc="reading image pairs", unit="image", leave=False)]


def validation_images(spec: str, max_images: int = 0, seed: int = 0, *,
                      mat_key: str | None = None, embedded_noise: str = "phone") -> list[NoisyImage]:
    """Validation images with their clean versions where the source has them; [] for "none".

    `max_images` > 0 keeps the first that many. `mat_key` names the key of SIDD's noisy .mat file
    (see `_sidd_validation`; default: the one known key of each file); other sources ignore it.
    `embedded_noise` is the embedded data's kind of noise (`embedded.NOISE_KINDS`).
    """
    if spec == "none":
        return []
    if spec == "embedded":
        images = embedded_dataset("held_out", 1, seed, kind=embedded_noise)
    else:
        path = Path(spec)
        if path.suffix.lower() == ".mat" or (path / SIDD_VALIDATION_NOISY).is_file():
            images = _sidd_validation(path, mat_key)
        elif _is_sidd_medium(path):
            images = read_pairs(sidd_medium_pairs(path))
        elif (path / "Noisy" / "valid").is_dir():
            images = read_pairs(patch_pairs(path, "valid"))
        elif path.is_dir():
            images = [NoisyImage(Path(p).stem, read_image(p).pixels, None) for p in list_images(path)]
        else:
            raise InputError(f"val_data: {spec}: no such file or folder; expected 'none' or {DATA_HELP}")
    return images[:max_images] if max_images > 0 else images

