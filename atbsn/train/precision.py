"""Mixed precision for training: ``precision: bf16`` runs each step's forward and loss under
``torch.autocast`` to bf16 (the weights, their gradients and Adam stay fp32), where the device has
bf16 hardware; elsewhere it warns and trains in fp32."""

from __future__ import annotations

import warnings

import torch

from atbsn_kernels.machine import bf16_hardware, cpu_name

PRECISIONS = ("fp32", "bf16")


def bf16_unsupported(device: torch.device) -> str | None:
    """Why bf16 autocast would not speed up training on ``device``; None when it has bf16 hardware."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else f"{torch.cuda.get_device_name(device)} has no bf16 support"
    if bf16_hardware() is None:
        return f"this CPU ({cpu_name()}) has no AVX512-BF16 or AMX, so bf16 convolutions would be emulated"
    return None


def uses_bf16(precision: str, device: torch.device) -> bool:
    """True when a run of ``precision`` ("fp32" or "bf16") autocasts to bf16 on ``device``; a bf16
    run on a device without bf16 hardware warns and runs in fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return False
    reason = bf16_unsupported(device)
    if reason is not None:
        warnings.warn(f"precision=bf16: {reason}; training in fp32 instead", stacklevel=2)
        return False
    return True
