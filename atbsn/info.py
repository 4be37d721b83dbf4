"""What ``atbsn info`` reports: versions and which backends run here (and why not the others)."""

from __future__ import annotations

import os
import platform

import torch

import atbsn_kernels
from atbsn_kernels import _ext
from atbsn_kernels.backends import ENV_VAR, available_backends, triton_installed, triton_interpreting


def _triton_version() -> str:
    if not triton_installed():
        return "not installed"
    import triton

    return triton.__version__ + (" (interpreter: TRITON_INTERPRET=1)" if triton_interpreting() else "")


def info_lines() -> list[str]:
    """Human-readable lines: versions, extension status, backend table per device type."""
    lines = [
        f"atbsn            {atbsn_kernels.__version__}",
        f"python           {platform.python_version()} ({platform.machine()})",
        f"torch            {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}, "
        f"GPU available: {torch.cuda.is_available()}, threads: {torch.get_num_threads()})",
        f"triton           {_triton_version()}",
        "extension        " + ("loaded" + (" with CUDA kernels" if _ext.cuda_kernels_built() else ", CPU kernels only")
                               if _ext.extension_loaded() else f"missing: {_ext.LOAD_ERROR}"),
        f"{ENV_VAR:<16} {os.environ.get(ENV_VAR, '(unset: auto)')}",
        "backends:",
    ]
    for device_type in ("cpu", "cuda"):
        for name, (ok, reason) in available_backends(device_type).items():
            lines.append(f"  {device_type:<5} {name:<10} {'yes' if ok else 'no ':<4} {reason}")
    return lines
