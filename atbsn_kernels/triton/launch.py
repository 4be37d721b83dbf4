"""What every Triton launcher of the package needs around a launch."""

from __future__ import annotations

import contextlib

import torch


def on_device(t: torch.Tensor):
    """A context that makes ``t``'s GPU the current one: Triton launches on the current device, so a
    tensor on ``cuda:1`` would otherwise be read by a kernel running on ``cuda:0``. Nothing for CPU
    tensors (the interpreter) or while torch.compile traces (Inductor guards its own launches)."""
    if t.device.type != "cuda" or torch.compiler.is_compiling():
        return contextlib.nullcontext()
    return torch.cuda.device(t.device)
