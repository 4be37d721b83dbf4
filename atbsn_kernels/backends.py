"""Backend names, and which of them can run for a device here (and why not the others).

Backends (each op module holds a table ``{name: implementation}``, see ``atbsn_kernels.ops``):

- ``"reference"``: the plain-PyTorch definition (``atbsn_kernels.reference``), everywhere;
- ``"vendor"``: what a user would run instead, PyTorch's own kernels on the masked weight
  (oneDNN on the CPU, cuDNN on a GPU; ``atbsn_kernels.vendor``), everywhere;
- ``"cpu"``: the C++ kernels of the extension, CPU tensors;
- ``"cuda"``: the CUDA kernels of the extension, CUDA tensors;
- ``"triton"``: the Triton kernels, CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``).

``"auto"`` measures: the first call of a new signature times the candidates of
:func:`auto_candidates` and keeps the fastest (``atbsn_kernels.tuning``). The environment
variable ``ATBSN_BACKEND`` replaces ``"auto"`` with a fixed backend.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from atbsn_kernels import _ext

BACKENDS = ("auto", "reference", "vendor", "cpu", "cuda", "triton")
ENV_VAR = "ATBSN_BACKEND"
# Candidates of "auto" per device type, in the fixed order used when measuring is off
# (ATBSN_AUTOTUNE=0): our kernels first, then the vendor conv. The reference is a definition,
# not a candidate, and Triton on CPU tensors (the interpreter) is a test tool.
AUTO_ORDER = {"cpu": ("cpu", "vendor"), "cuda": ("triton", "cuda", "vendor")}


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot run on this machine or for this device."""


@functools.lru_cache(maxsize=None)
def triton_installed() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _device_status(device_type: str) -> tuple[bool, str]:
    """Whether tensors of ``device_type`` exist here at all."""
    if device_type == "cuda" and not torch.cuda.is_available():
        kind = "a CPU build of torch" if torch.version.cuda is None else "no CUDA device visible"
        return False, f"no CUDA tensors here ({kind}: torch.cuda.is_available() is False)"
    if device_type not in ("cpu", "cuda"):
        return False, f"atbsn runs on CPU and CUDA tensors, not {device_type}"
    return True, ""


def backend_status(backend: str, device_type: str) -> tuple[bool, str]:
    """Whether ``backend`` can run on tensors of ``device_type`` here, and why (not)."""
    if backend not in BACKENDS or backend == "auto":
        raise ValueError(f"backend must be one of {BACKENDS[1:]}, got {backend!r}")
    present, why_not = _device_status(device_type)
    if not present:
        return False, why_not
    if backend == "reference":
        return True, "plain PyTorch (atbsn_kernels.reference)"
    if backend == "vendor":
        library = "cuDNN" if device_type == "cuda" else "oneDNN"
        return True, f"PyTorch's conv/pool kernels on the masked weight ({library})"
    if backend in ("cpu", "cuda"):
        kind = "C++ CPU" if backend == "cpu" else "CUDA"
        if device_type != backend:
            return False, f"the {kind} kernels take {backend.upper()} tensors, not {device_type} tensors"
        if not _ext.extension_loaded():
            return False, f"{_ext.LOAD_ERROR}; {_ext.BUILD_HINT}"
        if backend == "cuda" and not _ext.cuda_kernels_built():
            return False, "atbsn_kernels._C was built without CUDA sources (rebuild with a CUDA toolkit and CUDA torch)"
        if backend == "cpu":
            usable, config = _ext.cpu_kernel_config()
            return usable, f"C++ CPU kernels of atbsn_kernels._C: {config}" if usable else config
        return True, f"{kind} kernels of atbsn_kernels._C"
    if not triton_installed():
        return False, "triton is not installed (pip install triton)"
    if device_type == "cuda":
        return True, "Triton kernels compiled for the GPU"
    if triton_interpreting():
        return True, "Triton kernels in the interpreter (TRITON_INTERPRET=1)"
    return False, f"Triton needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors), got {device_type}"


def check_backend_name(backend, source: str = "backend") -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else a ValueError naming ``source``."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def resolve_backend(backend: str, device: torch.device, source: str = "backend") -> str:
    """The backend that a call with ``backend`` runs for ``device``: a concrete name, or ``"auto"``
    (measured per signature when the op runs). ``ATBSN_BACKEND`` replaces ``"auto"``.

    Raises ``ValueError`` for an unknown name and ``BackendUnavailableError`` when the named
    backend cannot run here; the message names ``source`` (the argument or option the name came
    from, or the environment variable) and says why and how to fix it.
    """
    check_backend_name(backend, source)
    if backend == "auto":
        source = f"environment variable {ENV_VAR}"
        backend = check_backend_name(os.environ.get(ENV_VAR, "auto"), source)
        if backend == "auto":
            return "auto"
    ok, reason = backend_status(backend, device.type)
    if not ok:
        raise BackendUnavailableError(f"{source} {backend!r} is unavailable here: {reason}")
    return backend


def auto_candidates(device_type: str) -> tuple[str, ...]:
    """The backends ``"auto"`` chooses between for ``device_type``, in the fixed order."""
    return _auto_candidates(device_type, _ext.extension_loaded(), device_type == "cuda" and torch.cuda.is_available())


@functools.lru_cache(maxsize=None)
def _auto_candidates(device_type: str, extension_loaded: bool, cuda_available: bool) -> tuple[str, ...]:
    """:func:`auto_candidates` for one state of what can change while a process runs (the
    extension, the GPU); called once per state, not per op call."""
    return tuple(name for name in AUTO_ORDER.get(device_type, ()) if backend_status(name, device_type)[0])


def available_backends(device_type: str) -> dict[str, tuple[bool, str]]:
    """Status of every concrete backend for ``device_type``: ``{name: (available, reason)}``."""
    return {name: backend_status(name, device_type) for name in BACKENDS if name != "auto"}
