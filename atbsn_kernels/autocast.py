"""Autocast for the convs: under ``torch.autocast`` their operands are cast as ``F.conv2d``'s are.

PyTorch's autocast casts a conv's floating tensors other than float64 to the autocast dtype (bf16
by default on the CPU, fp16 on CUDA). Custom ops get no such rule of their own, so every public
conv (``blind_spot_conv2d``, ``shifted_conv2d``, ``dilated_conv2d``, the ``nn`` modules) calls
:func:`conv_operands` before checking its tensors: a model mixing them with ``nn.Conv2d`` runs under
autocast as it would with only ``nn.Conv2d``, and the casts are differentiable, so fp32 weights get
fp32 gradients. The measured ``auto`` backend then picks the fastest kernel for the half-precision
signature (on a CPU with AMX / AVX512-BF16 usually the vendor's oneDNN conv).

The implementations then run under :func:`off`: autocast would otherwise reach the ATen calls
inside them (the reference's fp32 accumulation would run in bf16), so that a call under autocast
gives exactly what the same call on cast operands gives without it.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["conv_operands", "off"]


def _cast(t, dtype: torch.dtype):
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype not in (torch.float64, dtype):
        return t.to(dtype)
    return t


def conv_operands(x, weight, bias):
    """``(x, weight, bias)``, cast to the autocast dtype when autocast is on for x's device type."""
    if not isinstance(x, torch.Tensor):
        return x, weight, bias
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(device)
    return _cast(x, dtype), _cast(weight, dtype), _cast(bias, dtype)


def off(device: torch.device):
    """A context with autocast off for ``device``'s type (a no-op where it is off already)."""
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
