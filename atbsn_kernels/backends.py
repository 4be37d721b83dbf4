"""Backend selection: which implementation of an op runs for a given device.

Backends: ``"reference"`` (plain PyTorch, always there), ``"cpu"`` (C++ kernels of the
extension, CPU tensors), ``"cuda"`` (CUDA kernels of the extension, CUDA tensors) and
``"triton"`` (Triton kernels: CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).
``"auto"`` picks the fastest one available for the tensor's device (CUDA: triton, cuda,
reference; CPU: cpu, reference) and logs why at debug level on the ``atbsn_kernels`` logger.
The environment variable ``ATBSN_BACKEND`` replaces ``"auto"`` with a fixed backend.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import torch

from atbsn_kernels import _ext

BACKENDS = ("auto", "triton", "cuda", "cpu", "reference")
ENV_VAR = "ATBSN_BACKEND"
_AUTO_ORDER = {"cuda": ("triton", "cuda", "reference"), "cpu": ("cpu", "reference")}

logger = logging.getLogger("atbsn_kernels")


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot run on this machine or for this device."""


def triton_installed() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def backend_status(backend: str, device_type: str) -> tuple[bool, str]:
    """Whether ``backend`` can run on tensors of ``device_type`` here, and why (not)."""
    if backend == "reference":
        return True, "plain PyTorch runs everywhere"
    if backend in ("cpu", "cuda"):
        kind = "C++ CPU" if backend == "cpu" else "CUDA"
        if device_type != backend:
            return False, f"the {kind} kernels take {backend.upper()} tensors, not {device_type} tensors"
        if not _ext.extension_loaded():
            return False, f"{_ext.LOAD_ERROR}; {_ext.BUILD_HINT}"
        if backend == "cuda" and not _ext.cuda_kernels_built():
            return False, "atbsn_kernels._C was built without CUDA sources (rebuild with a CUDA toolkit and CUDA torch)"
        return True, f"{kind} kernels of atbsn_kernels._C"
    if backend == "triton":
        if not triton_installed():
            return False, "triton is not installed (pip install triton)"
        if device_type == "cuda":
            return True, "Triton kernels compiled for the GPU"
        if device_type == "cpu" and triton_interpreting():
            return True, "Triton kernels in the interpreter (TRITON_INTERPRET=1)"
        return False, f"Triton needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors), got {device_type}"
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _check_name(backend, source: str) -> None:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS}, got {backend!r}")


def _auto(device_type: str) -> str:
    for candidate in _AUTO_ORDER.get(device_type, ("reference",)):
        ok, reason = backend_status(candidate, device_type)
        if ok:
            if not torch.compiler.is_compiling():
                logger.debug("backend auto -> %s for %s tensors: %s", candidate, device_type, reason)
            return candidate
        if not torch.compiler.is_compiling():
            logger.debug("backend auto skips %s for %s tensors: %s", candidate, device_type, reason)
    return "reference"


def resolve_backend(backend: str, device: torch.device) -> str:
    """Turn a requested backend (maybe ``"auto"``) into the one that runs for ``device``.

    Raises ``ValueError`` for an unknown name and ``BackendUnavailableError`` when the named
    backend cannot run here; the message says why and how to fix it.
    """
    _check_name(backend, "backend")
    source = "backend"
    if backend == "auto":
        override = os.environ.get(ENV_VAR, "auto")
        _check_name(override, f"environment variable {ENV_VAR}")
        if override == "auto":
            return _auto(device.type)
        backend, source = override, f"{ENV_VAR}={override}"
    ok, reason = backend_status(backend, device.type)
    if not ok:
        raise BackendUnavailableError(f"{source}: backend {backend!r} is unavailable: {reason}")
    return backend


def available_backends(device_type: str) -> dict[str, tuple[bool, str]]:
    """Status of every concrete backend for ``device_type``: ``{name: (available, reason)}``."""
    return {name: backend_status(name, device_type) for name in BACKENDS if name != "auto"}
