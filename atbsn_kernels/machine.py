"""What the CPU is: its name and the vector ISA extensions that decide which kernels are fast on it."""

from __future__ import annotations

import functools
import os
import platform

__all__ = ["ISA_FLAGS", "bf16_hardware", "cpu_isa", "cpu_name", "describe_cpu"]

# /proc/cpuinfo flags that matter for fp32/bf16 convolutions, in order of appearance in reports.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
# Environment variables that change which kernels run: caps on the ISA that oneDNN, MKL and ATen
# use (emulating an older CPU), and our own CPU kernels' ISA and cache-size overrides.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY",
            "ATBSN_CPU_ISA", "ATBSN_L1_BYTES", "ATBSN_L2_BYTES")


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name (``platform.processor()`` where /proc/cpuinfo is missing)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_isa() -> tuple[str, ...]:
    """The flags of :data:`ISA_FLAGS` that this CPU has."""
    flags = set(_cpuinfo().get("flags", "").split())
    return tuple(flag for flag in ISA_FLAGS if flag in flags)


def describe_cpu() -> str:
    """``name (isa flags; caps)``: e.g. ``AMD EPYC 7B13 (avx2 fma)``, caps such as ONEDNN_MAX_CPU_ISA when set."""
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    return f"{cpu_name()} ({' '.join(cpu_isa()) or 'no AVX2'}{'; ' + ' '.join(caps) if caps else ''})"


def bf16_hardware() -> str | None:
    """The CPU's bf16 matrix instructions, "AMX-BF16" or "AVX512-BF16", or None: without them
    oneDNN emulates bf16 convolutions, which then run slower than fp32 ones."""
    isa = cpu_isa()
    if "amx_bf16" in isa:
        return "AMX-BF16"
    if "avx512_bf16" in isa:
        return "AVX512-BF16"
    return None
