"""What every op module shares: an :class:`Implementation` record per backend, :func:`choose`,
which turns the requested backend (maybe ``"auto"``) into the one that runs one direction of a call,
and :class:`DispatchOps`, the op's dispatch custom ops with their eager fast path."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from atbsn_kernels import _ext
from atbsn_kernels.backends import BackendUnavailableError, auto_candidates
from atbsn_kernels.tuning import TUNER, size_bucket

__all__ = ["ALL_DTYPES", "GPU_KERNEL_DTYPES", "AutogradRule", "DispatchOps", "Implementation", "choose",
           "cpp_kernel_ops", "describe_call", "register_op_pair", "tuner_key"]

ALL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
GPU_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

# An op's autograd: given its backward (a callable with the backward op's signature), the
# ``setup_context(ctx, inputs, output)`` and ``backward(ctx, *grad_outputs)`` of torch.library.
AutogradRule = Callable[[Callable], tuple[Callable, Callable]]


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
                     autograd_rule: AutogradRule) -> None:
    """Give a (forward, backward) pair of custom ops (the dispatch ops, or one backend's kernel ops)
    their fake kernels ``fakes`` and the op's autograd, with ``ops[1]`` as the backward."""
    for op, fake in zip(ops, fakes):
        torch.library.register_fake(op)(fake)
    setup_context, backward = autograd_rule(ops[1])
    torch.library.register_autograd(ops[0], backward, setup_context=setup_context)


_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def plain_eager_call(args: tuple) -> bool:
    """True for an eager call on plain tensors: not compiling or JIT tracing, no tensor subclass (fake
    or functional tensors), no Python dispatch or function mode, no functorch transform."""
    if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack() > 0
            or torch._C._is_torch_function_mode_enabled() or torch._C._functorch.peek_interpreter_stack() is not None):
        return False
    return all(type(a) in _PLAIN_TENSOR_TYPES for a in args if isinstance(a, torch.Tensor))


def _eager_function(op: str, forward: Callable, backward: Callable, autograd_rule: AutogradRule) -> type:
    """An autograd.Function running ``forward`` with the op's autograd rule over ``backward``. No
    double backward, as with the custom ops, whose backward op has no autograd."""
    setup_context, grads = autograd_rule(backward)

    class EagerOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):  # with ctx: a separate setup_context costs an inspect.signature per call
            # below autograd, as in a custom op's forward: the kernel ops' own autograd (for calls
            # on their own) would otherwise run in Python once more, only to redispatch
            with torch._C._AutoDispatchBelowAutograd():
                output = forward(*args)
            setup_context(ctx, args, output)
            return output

        @staticmethod
        def backward(ctx, *grad_outputs):
            if torch.is_grad_enabled():
                raise RuntimeError(f"atbsn::{op} has no double backward: its gradient cannot be differentiated "
                                   "(create_graph=True)")
            return grads(ctx, *grad_outputs)

    return EagerOp


class DispatchOps:
    """An op's dispatch custom ops ``atbsn::<op>_dispatch`` (``forward``) and ``..._backward``
    (``backward``), with fake kernels and autograd: what torch.compile, opcheck and tensor
    subclasses see. Calling the object runs an eager call on plain tensors (:func:`plain_eager_call`)
    through an autograd.Function with the same functions and rule instead, without the dispatcher's
    Python round trips (the custom ops' Python autograd and redispatch, twice per forward + backward)."""

    def __init__(self, op: str, forward: Callable, backward: Callable, fakes: tuple[Callable, Callable],
                 autograd_rule: AutogradRule):
        self.forward = torch.library.custom_op(f"atbsn::{op}_dispatch", forward, mutates_args=())
        self.backward = torch.library.custom_op(f"atbsn::{op}_dispatch_backward", backward, mutates_args=())
        register_op_pair((self.forward, self.backward), fakes, autograd_rule)
        self._eager_forward = forward
        self._function = _eager_function(op, forward, backward, autograd_rule)

    def __call__(self, *args):
        if not plain_eager_call(args):
            return self.forward(*args)
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return self._function.apply(*args)
        return self._eager_forward(*args)


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
