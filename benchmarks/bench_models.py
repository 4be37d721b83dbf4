"""What the model benchmarks and the training-step profile share: the official AT-BSN code loaded
from a path, the noisy input, the L1 loss and one Adam step."""

from __future__ import annotations

import importlib.util
import sys

import torch
from bench_device import device, synchronize


def load_official_atbsn(path: str):
    """The official ``arch_atbsn`` module, imported as it is from ``path`` (ValueError if that is
    not a Python file)."""
    spec = importlib.util.spec_from_file_location("official_arch_atbsn", path)
    if spec is None:
        raise ValueError(f"--official-atbsn {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def noisy(n: int, side: int) -> torch.Tensor:
    """``[n, 3, side, side]`` uniform in [0, 255) (seed 0), on the benchmark device."""
    return (torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 255).to(device())


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


def adam_step(params, compute_loss):
    """One optimiser step: zero grads, ``compute_loss()``, backward, Adam (lr 3e-4); returns the loss."""
    opt = torch.optim.Adam(params, 3e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = compute_loss()
        loss.backward()
        opt.step()
        synchronize()
        return loss.item()

    return step
