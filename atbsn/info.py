"""What ``atbsn info`` reports: versions and which backends run here (and why not the others)."""

from __future__ import annotations

import os
import platform

import torch

import atbsn_kernels
from atbsn_kernels import _ext
from atbsn_kernels.backends import ENV_VAR, auto_candidates, available_backends, triton_installed, triton_interpreting
from atbsn_kernels.machine import bf16_hardware, describe_cpu
from atbsn_kernels.tuning import AUTOTUNE_ENV, TUNER, autotune_enabled, cache_path, environment_key
from atbsn_kernels.versions import MINIMUMS, version_problems


def _triton_version() -> str:
    if not triton_installed():
        return "not installed"
    import triton

    return triton.__version__ + (" (interpreter: TRITON_INTERPRET=1)" if triton_interpreting() else "")


def _bf16_line() -> str:
    hardware = bf16_hardware()
    if hardware:
        return f"fast on this CPU ({hardware}: oneDNN's bf16 convs; `precision: bf16` trains with it)"
    return "slow on this CPU (no AVX512-BF16 or AMX: bf16 convs are emulated; `precision: bf16` falls back to fp32)"


def info_lines() -> list[str]:
    """Human-readable lines: versions, extension status, backend table per device type."""
    lines = [
        f"atbsn            {atbsn_kernels.__version__}",
        f"python           {platform.python_version()} ({platform.machine()})",
        f"cpu              {describe_cpu()}",
        f"torch            {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}, "
        f"GPU available: {torch.cuda.is_available()}, threads: {torch.get_num_threads()})",
        f"triton           {_triton_version()}",
        "bf16 autocast    " + _bf16_line(),
        "extension        " + ("loaded" + (" with CUDA kernels" if _ext.cuda_kernels_built() else ", CPU kernels only")
                               if _ext.extension_loaded() else f"missing: {_ext.LOAD_ERROR}"),
        f"{ENV_VAR:<16} {os.environ.get(ENV_VAR, '(unset: auto)')}",
        f"{AUTOTUNE_ENV:<16} {'on: auto measures each new signature' if autotune_enabled() else 'off: auto takes the fixed order'}",
        "auto chooses     " + "; ".join(f"{d}: {', '.join(auto_candidates(d)) or 'nothing (no such tensors here)'}"
                                        for d in ("cpu", "cuda")),
        f"supported        torch >= {MINIMUMS['torch']}, triton >= {MINIMUMS['triton']}: "
        + ("; ".join(version_problems()) or "the installed versions are in range"),
        "backends:",
    ]
    for device_type in ("cpu", "cuda"):
        for name, (ok, reason) in available_backends(device_type).items():
            lines.append(f"  {device_type:<5} {name:<10} {'yes' if ok else 'no ':<4} {reason}")
    return lines


def tuning_lines() -> list[str]:
    """What ``auto`` chose on this machine (the tuning cache for this CPU, and the GPU if any)."""
    lines = ["tuning:", f"  cache            {cache_path()}"]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        decisions = TUNER.decisions(device)
        lines.append(f"  {environment_key(device)}: {len(decisions)} choice(s)")
        for signature, d in decisions.items():
            times = ", ".join(f"{name} {ms:.3g} ms" for name, ms in sorted(d.median_ms.items(), key=lambda kv: kv[1]))
            failed = "".join(f"; {name} failed: {error}" for name, error in d.failed.items())
            lines.append(f"    {d.choice:<8} {signature}  [{times or 'not timed'}; tuning {d.tuning_ms:.0f} ms{failed}]")
    return lines
