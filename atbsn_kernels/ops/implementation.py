"""What every op module shares: an :class:`Implementation` record per backend, and :func:`choose`,
which turns the requested backend (maybe ``"auto"``) into the one that runs one direction of a call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from atbsn_kernels import _ext
from atbsn_kernels.backends import BackendUnavailableError, auto_candidates
from atbsn_kernels.tuning import TUNER, size_bucket

__all__ = ["ALL_DTYPES", "GPU_KERNEL_DTYPES", "Implementation", "choose", "cpp_kernel_ops", "describe_call",
           "register_op_pair", "tuner_key"]

ALL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
GPU_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class Implementation:
    """One backend of an op: ``forward`` and ``backward`` with the op's kernel-contract signatures
    (docs/kernel-contract.md), loaded on first use by ``load() -> (forward, backward)``, and the
    dtypes it takes."""

    def __init__(self, load: Callable[[], tuple[Callable, Callable]], dtypes: tuple[torch.dtype, ...] = ALL_DTYPES):
        self._load = load
        self.dtypes = dtypes

    @functools.cached_property
    def _pair(self) -> tuple[Callable, Callable]:
        return self._load()

    @property
    def forward(self) -> Callable:
        return self._pair[0]

    @property
    def backward(self) -> Callable:
        return self._pair[1]

    def check_dtype(self, name: str, dtype: torch.dtype) -> None:
        """TypeError naming the dtypes backend ``name`` takes, when it does not take ``dtype``."""
        if dtype not in self.dtypes:
            allowed = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            raise TypeError(f"backend {name!r} supports {allowed} tensors, got {str(dtype).removeprefix('torch.')}; "
                            "use backend='auto', 'vendor' or 'reference'")


def cpp_kernel_ops(op: str) -> tuple[Callable, Callable]:
    """The C++ kernel ops ``atbsn::<op>`` and ``atbsn::<op>_backward`` of the extension (schemas in
    csrc/ops, CPU and CUDA dispatch keys); BackendUnavailableError when it is not built."""
    if not _ext.extension_loaded():
        raise BackendUnavailableError(f"{_ext.LOAD_ERROR}; {_ext.BUILD_HINT}")
    return getattr(torch.ops.atbsn, op).default, getattr(torch.ops.atbsn, f"{op}_backward").default


def register_op_pair(ops: tuple[Callable, Callable], fakes: tuple[Callable, Callable],
                     register_autograd: Callable[[Callable, Callable], None]) -> None:
    """Give a (forward, backward) pair of custom ops (the dispatch ops, or one backend's kernel ops)
    their fake kernels ``fakes`` and the op's autograd."""
    for op, fake in zip(ops, fakes):
        torch.library.register_fake(op)(fake)
    register_autograd(*ops)


@functools.lru_cache(maxsize=4096)
def describe_call(op: str, dtype: torch.dtype, sizes: tuple[int, ...], channels_last: bool, **details: Any) -> str:
    """The signature of a call for the tuner: op, dtype, batch and spatial size buckets (powers of
    two), channel counts and the op's own details (taps, dilation, ...)."""
    n, c, h, w = sizes
    parts = [op, str(dtype).removeprefix("torch."), f"n{size_bucket(n)}", f"c{c}", f"h{size_bucket(h)}",
             f"w{size_bucket(w)}", "channels_last" if channels_last else "nchw"]
    parts += [f"{key}={value}" for key, value in sorted(details.items())]
    return " ".join(parts)


def tuner_key(signature: str, direction: str) -> str:
    """The tuner's key of one direction of a call with ``signature``."""
    return f"{signature} {direction}"


def choose(table: dict[str, Implementation], backend: str, x: torch.Tensor, signature: Callable[[], str],
           direction: str, call: Callable[[str], object]) -> str:
    """The backend that runs ``direction`` (such as "forward" or "backward") of a call on ``x``.

    A concrete ``backend`` runs as asked. ``"auto"`` asks the tuner about ``signature()`` (built
    only then), with the device's auto candidates that ``table`` holds and that take x's dtype;
    ``call(name)`` runs the direction on backend ``name`` when the tuner measures.
    """
    if backend != "auto":
        return backend
    order = tuple(n for n in auto_candidates(x.device.type) if n in table and x.dtype in table[n].dtypes)
    if not order:
        return "reference"
    return TUNER.choose(x.device, tuner_key(signature(), direction), lambda: {n: functools.partial(call, n) for n in order},
                        order)
