"""Where the benchmarks run: device, our kernel backends, the per-call timer and same-run peaks.

On CUDA our kernels are the Triton and CUDA ones and times come from CUDA events; on the CPU
the C++ ones, timed with the wall clock. Peaks are measured in the same process and threads as
the benchmarks: the fastest large GEMM (``torch.matmul``, and oneDNN's as a 1x1 conv on the CPU;
FLOP/s) and a large tensor copy (bytes/s).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import time

import torch
import torch.nn.functional as F

import atbsn_kernels
from atbsn.train.memory import allocator_settings
from atbsn_kernels import available_backends
from atbsn_kernels.machine import describe_cpu


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def kernel_backends() -> list[str]:
    """Our kernel backends that run here (``atbsn info`` says why others do not): Triton and CUDA
    on a GPU, the C++ kernels on the CPU."""
    dev = device()
    status = available_backends(dev)
    return [name for name in (["triton", "cuda"] if dev == "cuda" else ["cpu"]) if status[name][0]]


def synchronize() -> None:
    if device() == "cuda":
        torch.cuda.synchronize()


def call_timer(dev: str):
    """``timer(fn) -> seconds`` of one call of ``fn``: CUDA events on a GPU (recorded around the
    call on the current stream), the wall clock on the CPU."""
    if dev != "cuda":
        def wall(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        return wall

    def events(fn) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return events


def conv_fp32_precision() -> str:
    """The precision PyTorch's fp32 convolutions use ("tf32" or "ieee"): the most specific
    ``fp32_precision`` setting that is not "none"."""
    b = torch.backends
    chain = (b.cudnn.conv.fp32_precision, b.cudnn.fp32_precision, b.fp32_precision)
    return next((p for p in chain if p != "none"), "ieee")


@contextlib.contextmanager
def _cuda_matmul_precision(precision: str):
    """Run CUDA fp32 matmuls at ``precision`` ("tf32" or "ieee") inside."""
    previous = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = precision
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = previous


def _best_seconds(fn, repeats: int, dev: str) -> float:
    """Fastest of ``repeats`` timed calls of ``fn`` after one warm-up call."""
    timer = call_timer(dev)
    fn()
    return min(timer(fn) for _ in range(repeats))


def gemm_candidates(n: int, dev: str) -> dict:
    """The fp32 ``n x n x n`` GEMMs a user's code reaches on ``dev``, by name: ``torch.matmul`` (the
    BLAS: MKL on the CPU, cuBLAS on a GPU) and, on the CPU, the same product as a 1x1 conv of ``n``
    channels over ``n`` pixels in NCHW and in channels-last (oneDNN's GEMMs). All count: MKL takes
    its AVX2 path on AMD CPUs (216 GFLOP/s on a 2-core EPYC Zen 5 where oneDNN's GEMM reaches 378
    with AVX-512)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev)
    b = torch.randn(n, n, generator=gen).to(dev)
    candidates = {"torch.matmul": lambda: torch.matmul(a, b)}
    if dev == "cpu":
        weight, pixels = a.view(n, n, 1, 1), b.view(1, n, n, 1)
        candidates["oneDNN 1x1 conv"] = lambda: F.conv2d(pixels, weight)
        weight_cl, pixels_cl = (t.contiguous(memory_format=torch.channels_last) for t in (weight, pixels))
        candidates["oneDNN 1x1 conv, channels-last"] = lambda: F.conv2d(pixels_cl, weight_cl)
    return candidates


def measure_peaks(dev: str, gemm_n: int | None = None, copy_mib: int | None = None) -> dict:
    """Same-run peaks on ``dev``: the fastest fp32 GEMM of :func:`gemm_candidates` in FLOP/s (at the
    precision fp32 convs use, so TF32 on a GPU by default; every candidate's rate is kept in
    ``gemm_flop_per_s``) and copy bandwidth (bytes read + written per second)."""
    gemm_n = gemm_n or (8192 if dev == "cuda" else 3072)
    copy_mib = copy_mib or (1024 if dev == "cuda" else 256)
    on_gpu = dev == "cuda"
    precision = conv_fp32_precision() if on_gpu else "ieee"
    with _cuda_matmul_precision(precision) if on_gpu else contextlib.nullcontext():
        rates = {name: 2 * gemm_n**3 / _best_seconds(gemm, 3, dev)
                 for name, gemm in gemm_candidates(gemm_n, dev).items()}
    best = max(rates, key=rates.get)
    src = torch.empty(copy_mib * 2**18, device=dev)
    dst = torch.empty_like(src)
    copy_s = _best_seconds(lambda: dst.copy_(src), 5, dev)
    others = ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in rates.items() if name != best)
    return {
        "peak_flop_per_s": rates[best],
        "gemm_flop_per_s": rates,
        "peak_bytes_per_s": 2 * src.numel() * src.element_size() / copy_s,
        "peak_method": f"fp32 {best} {gemm_n}x{gemm_n} ({precision})" + (f"; GFLOP/s of {others}" if others else "")
                       + f"; copy of {copy_mib} MiB; best of the run",
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def allocator() -> str:
    """The allocator settings of this run (they change how often fresh pages fault: the official
    code's training step by a third, see atbsn/train/memory.py); glibc's defaults when none is set."""
    settings = [f"{name}={value}" for name, value in allocator_settings().items()]
    return " ".join(settings) or "default (glibc malloc, its own thresholds)"


def describe() -> dict:
    """Device, the CPU's model and ISA flags (AVX2 / AVX-512 / AMX), threads, allocator and versions of this run."""
    info = {
        "device": device(), "cpu": describe_cpu(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "triton": _version("triton"), "atbsn": atbsn_kernels.__version__, "python": platform.python_version(),
        "allocator": allocator(),
    }
    if device() == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                    sms=props.multi_processor_count, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), conv_fp32_precision=conv_fp32_precision())
    return info
