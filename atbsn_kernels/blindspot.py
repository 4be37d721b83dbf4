"""Check the blind-spot property of any model: which input pixels reach an output pixel."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["reachable_pixels"]


def reachable_pixels(model: nn.Module, input_shape: tuple[int, int, int], pixel: tuple[int, int], *, trials: int = 2) -> torch.Tensor:
    """Bool ``[H, W]``: True where input pixel (i, j) influences output pixel ``pixel = (y, x)``.

    ``input_shape`` is ``(C, H, W)``. Influence is a nonzero gradient of the output pixel (all
    channels summed) for at least one of ``trials`` random inputs, in the model's dtype and
    device and its current train/eval mode. A blind-spot network must return False over its
    blind region around ``pixel``; masked taps in the fused kernels give exactly zero there.
    """
    if len(input_shape) != 3 or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must be (C, H, W) positive ints, got {input_shape!r}")
    channels, height, width = input_shape
    y, x = pixel
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"pixel must lie inside the {height}x{width} image, got {pixel!r}")
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    reached = torch.zeros(height, width, dtype=torch.bool, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(trials):
        probe = torch.randn(1, channels, height, width, device=device, dtype=dtype, generator=generator).requires_grad_()
        (grad,) = torch.autograd.grad(model(probe)[0, :, y, x].sum(), probe)
        reached |= grad[0].abs().sum(0) != 0
    return reached.cpu()
