"""What the per-op test files share: the (backend, device) pairs that run here, one tolerance
table and the comparison against the fp64 reference."""

import pytest
import torch

GPU = torch.cuda.is_available()
TRITON_DEVICE = "cuda" if GPU else "cpu"
# (backend, device) pairs under test; ids name the device only where it is not implied.
BACKENDS = [("reference", "cpu"), ("vendor", "cpu"), ("cpu", "cpu"), ("triton", TRITON_DEVICE)] + (
    [("reference", "cuda"), ("vendor", "cuda"), ("cuda", "cuda")] if GPU else [])
BACKEND_IDS = [name if device == {"cuda": "cuda", "triton": TRITON_DEVICE}.get(name, "cpu") else f"{name}-{device}"
               for name, device in BACKENDS]
# Tolerance per dtype, relative to the largest |value| of the expected tensor (at least 1), against
# the reference computed in fp64 from the same (rounded) inputs.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Under the interpreter Triton kernels are plain Python that AOTAutograd cannot trace, so the
# aot_dispatch checks of opcheck need a GPU; schema, fake-kernel and autograd checks run everywhere.
TRITON_OPCHECK_UTILS = (
    ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    if GPU else ("test_schema", "test_autograd_registration", "test_faketensor")
)


def backend_params(*, exclude=()):
    """pytest params over :data:`BACKENDS` as (backend, device)."""
    return [pytest.param(pair, id=bid) for pair, bid in zip(BACKENDS, BACKEND_IDS) if pair[0] not in exclude]


def magnitude(t: torch.Tensor) -> float:
    """Largest |value| (at least 1): tolerances scale with it."""
    return max(1.0, float(t.abs().max())) if t.numel() else 1.0


def assert_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    """``got`` equals the fp64 ``want`` up to ``TOLERANCES[dtype]`` of the largest |want|."""
    tol = TOLERANCES[dtype]
    assert got.shape == want.shape
    torch.testing.assert_close(got.cpu().double(), want.cpu().double(), atol=tol * magnitude(want), rtol=tol)


def assert_public_op_runs_the_requested_backend(monkeypatch, implementations: dict, call) -> None:
    """``call(backend)`` (the public op on CPU tensors) runs the forward of exactly that entry of the
    op's ``implementations``, and ``"auto"`` without measuring takes the fixed order (cpu first)."""
    calls = []
    for name, impl in implementations.items():
        if name != "cuda":
            spy = (lambda *args, _f=impl.forward, _n=name: calls.append(_n) or _f(*args))
            monkeypatch.setattr(impl, "_pair", (spy, impl.backward))
    monkeypatch.delenv("ATBSN_BACKEND", raising=False)
    for backend in ("cpu", "triton", "reference", "vendor", "auto"):
        call(backend)
    assert calls == ["cpu", "triton", "reference", "vendor", "cpu"], "auto without measuring takes the fixed order"


def assert_cuda_refuses_float64(implementations: dict) -> None:
    """The op's CUDA backend names the dtypes it takes when asked for float64."""
    with pytest.raises(TypeError, match="backend 'cuda' supports float16, bfloat16, float32 tensors, got float64"):
        implementations["cuda"].check_dtype("cuda", torch.float64)


def assert_auto_measures_both_directions(monkeypatch, call, op: str, channels: int) -> None:
    """With measuring on, ``call()`` (a forward and backward of ``op`` on CPU tensors with ``channels``
    output channels) leaves one tuner decision per direction."""
    from atbsn_kernels.tuning import TUNER

    monkeypatch.setenv("ATBSN_AUTOTUNE", "1")
    call()
    keys = [key for key in TUNER.decisions(torch.device("cpu")) if key.startswith(op) and f" c{channels} " in key]
    assert any(key.endswith(" forward") for key in keys) and any(key.endswith(" backward") for key in keys)


def assert_compile_check_covers(module) -> None:
    """``compile_check`` compiles a forward and a backward kernel of the Triton ``module``, whose
    ``BLOCK`` is a power of two (``tl.arange`` needs one)."""
    from atbsn_kernels.compile_check import triton_targets

    names = {t["name"] for t in triton_targets() if t["module"] == module.__name__.rsplit(".", 1)[-1]}
    assert any("forward" in name for name in names) and any("backward" in name for name in names)
    assert module.BLOCK & (module.BLOCK - 1) == 0, "tl.arange needs a power of two"
