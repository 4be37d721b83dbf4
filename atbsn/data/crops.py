"""Random training crops with flips and rotations, drawn from one seeded generator so a resumed
run continues with exactly the batches it would have drawn."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from atbsn.errors import InputError


class CropSampler:
    """Batches (batch, 3, crop, crop) float32 in [0, 255] of random crops of `images`.

    Each crop comes from a uniformly chosen image at a uniform position, then one of the eight
    flips/rotations of the square. `state()` / `load_state()` save and restore the generator.
    """

    def __init__(self, images: Sequence[torch.Tensor], crop: int, batch: int, seed: int, *,
                 names: Sequence[str] | None = None):
        """`names[i]` names image i in errors (a file, "<file>.mat block k", "embedded photo <name>");
        by default `images.names` where `images` has them (see `sources.training_images`), else its index."""
        if not images:
            raise InputError("no training images")
        names = names if names is not None else getattr(images, "names", None)
        if names is not None and len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} images")
        for index, image in enumerate(images):
            name = f"training image {names[index] if names is not None else index}"
            if image.dim() != 3 or image.shape[0] != 3:
                raise InputError(f"{name} has shape {tuple(image.shape)}; expected (3, H, W) RGB")
            if min(image.shape[1:]) < crop:
                raise InputError(f"{name} is {image.shape[1]}x{image.shape[2]}, smaller than the crop {crop}; "
                                 f"lower 'crop' or drop the image")
            if image.is_floating_point() and not torch.isfinite(image).all():
                raise InputError(f"{name} holds NaN or infinite values")
        self.images, self.crop, self.batch = images, crop, batch
        self.generator = torch.Generator().manual_seed(seed)

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def _one(self) -> torch.Tensor:
        image = self.images[self._randint(len(self.images))]
        top = self._randint(image.shape[1] - self.crop + 1)
        left = self._randint(image.shape[2] - self.crop + 1)
        patch = image[:, top : top + self.crop, left : left + self.crop]
        orientation = self._randint(8)
        patch = torch.rot90(patch, orientation % 4, dims=(1, 2))
        return patch.flip(2) if orientation >= 4 else patch

    def next_batch(self) -> torch.Tensor:
        return torch.stack([self._one() for _ in range(self.batch)]).float()

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
