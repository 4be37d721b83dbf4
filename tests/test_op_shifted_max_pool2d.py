"""``shifted_max_pool2d`` (AT-BSN's blind 2x2 max-pool) on every backend that runs here, against the
plain-PyTorch reference and its autograd: exact forward values and gradients over dtypes, odd and
even sizes, channels-last inputs, empty batches, ties, NaN and all-negative windows (the zero row
wins), plus hand-worked cases, the half-plane property, the raw ops on sizes the public API
refuses, argument errors, opcheck, float64 gradcheck and torch.compile.
Triton runs on the GPU when there is one, else in the interpreter on CPU tensors."""

import pytest
import torch
from backend_cases import (
    DTYPES,
    TRITON_DEVICE,
    TRITON_OPCHECK_UTILS,
    assert_cuda_refuses_float64,
    assert_public_op_runs_the_requested_backend,
    backend_params,
)

import atbsn_kernels
from atbsn_kernels import reference
from atbsn_kernels.ops.shifted_max_pool2d import (
    IMPLEMENTATIONS,
    _dispatch,
    _dispatch_backward,
)
from atbsn_kernels.triton import shifted_max_pool2d as triton_kernels

NAN = float("nan")


def make(n=2, c=3, h=6, w=5, dtype=torch.float32, seed=0, ties=False, nan=0.0):
    """x ``[n, c, h, w]``: N(0, 1) values, or small integers (many ties, zeros and negatives) with
    ``ties``; a fraction ``nan`` of the elements is NaN."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    if ties:
        x = (2 * x).round()
    x[torch.rand(x.shape, generator=g) < nan] = NAN
    return x.to(dtype)


def out_grad(x, seed=1):
    """A random gradient for the output of x, in x's dtype."""
    n, c, h, w = x.shape
    return torch.randn(n, c, h // 2, w // 2, generator=torch.Generator().manual_seed(seed)).to(x.dtype)


def run(pair, x, grad):
    """(out, grad_x) of the public op through autograd, on the backend's device, back on the CPU."""
    backend, device = pair
    leaf = x.to(device).detach().requires_grad_()
    out = atbsn_kernels.shifted_max_pool2d(leaf, backend=backend)
    out.backward(grad.to(out.device))
    return out.detach().cpu(), leaf.grad.cpu()


def definition(x, grad):
    """(out, grad_x) of ``reference.shifted_max_pool2d`` through autograd (F.max_pool2d's own)."""
    leaf = x.detach().requires_grad_()
    out = reference.shifted_max_pool2d(leaf)
    out.backward(grad)
    return out.detach(), leaf.grad


def assert_exact(got, want):
    """Same dtype and shape, bit-equal values up to NaN payloads and the sign of zero."""
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, atol=0, rtol=0, equal_nan=True)


def check(pair, x, grad=None):
    """The backend's (out, grad_x) equal the definition's exactly; returns the backend's."""
    if pair[0] == "cuda" and x.dtype == torch.float64:
        pytest.xfail("the CUDA kernels take float16, bfloat16 and float32 (the public op refuses float64)")
    grad = out_grad(x) if grad is None else grad
    ours = run(pair, x, grad)
    expected = definition(x, grad)
    assert ours[0].is_contiguous()
    for got, want in zip(ours, expected):
        assert_exact(got, want)
    return ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("h,w", [(2, 2), (2, 3), (3, 2), (3, 3), (4, 6), (5, 7), (8, 5)])
def test_matches_reference(pair, dtype, h, w):
    check(pair, make(h=h, w=w, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_channels_last_input_and_gradient(pair, dtype):
    x = make(h=7, w=6, c=4, dtype=dtype, ties=True, nan=0.05).to(memory_format=torch.channels_last)
    check(pair, x, out_grad(x).to(memory_format=torch.channels_last))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ties_follow_max_pool2d(pair, dtype):
    for seed in range(3):
        check(pair, make(h=9, w=8, dtype=dtype, ties=True, seed=seed))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_follows_max_pool2d(pair, dtype):
    for seed in range(3):
        check(pair, make(h=8, w=7, dtype=dtype, ties=True, nan=0.3, seed=seed))


def test_hand_worked_windows(pair):
    """Slots in window order: row 2i-1 (left, right), then row 2i (left, right); row -1 is zero.

    Windows (0, 0) and (0, 2) tie with or lose to the zero row: output 0, gradient dropped. (0, 1):
    3 beats the zero row. (1, 0) holds two NaNs: the last gets the gradient. (1, 1) holds 3 twice:
    the first gets it. (1, 2) is -inf throughout: its first slot gets it. No window reads row 3.
    """
    inf = float("inf")
    x = torch.tensor([[[[0.0, -1.0, 3.0, 1.0, -inf, -inf],
                        [2.0, NAN, 3.0, 3.0, -inf, -inf],
                        [-5.0, NAN, -inf, -inf, -inf, -inf],
                        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]]]])
    grad = torch.tensor([[[[1.0, 2.0, 5.0], [3.0, 4.0, 6.0]]]])
    out, grad_x = run(pair, x, grad)
    assert_exact(out, torch.tensor([[[[0.0, 3.0, 0.0], [NAN, 3.0, -inf]]]]))
    assert_exact(grad_x, torch.tensor([[[[0.0, 0.0, 2.0, 0.0, 0.0, 0.0],
                                         [0.0, 0.0, 4.0, 0.0, 6.0, 0.0],
                                         [0.0, 3.0, 0.0, 0.0, 0.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]]]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_negative_inputs_zero_row_wins(pair, dtype):
    x = -make(h=6, w=6, dtype=dtype).abs() - 1
    out, grad_x = check(pair, x)
    assert torch.all(out[:, :, 0] == 0), "the zero row is the maximum of every first-row window"
    assert torch.all(grad_x[:, :, 0] == 0), "gradients of windows won by the zero row are dropped"
    assert torch.all((grad_x[:, :, 1:5] != 0).view(2, 3, 2, 2, 3, 2).sum(dim=(3, 5)) == 1)


def test_output_row_sees_only_rows_up_to_2i(pair):
    """Half-plane property: output row i depends on input rows 2i - 1 and 2i, never below."""
    backend, device = pair
    x = make(n=1, c=2, h=8, w=6, dtype=torch.float64, seed=3).to(device).requires_grad_()
    out = atbsn_kernels.shifted_max_pool2d(x, backend=backend)
    for i in range(out.shape[2]):
        (grad_x,) = torch.autograd.grad(out[:, :, i].sum(), x, retain_graph=True)
        assert torch.all(grad_x[:, :, 2 * i + 1:] == 0) and torch.all(grad_x[:, :, : max(0, 2 * i - 1)] == 0)
        assert torch.any(grad_x[:, :, 2 * i] != 0)


def test_empty_batch(pair):
    out, grad_x = check(pair, make(n=0, h=5, w=4))
    assert out.shape == (0, 3, 2, 2) and grad_x.shape == (0, 3, 5, 4)


@pytest.mark.parametrize("pair", backend_params(exclude=("reference", "vendor")))
@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (2, 3, 1, 4), (2, 3, 5, 1), (2, 0, 4, 4), (0, 3, 1, 2)])
def test_kernels_on_windowless_sizes(pair, shape):
    """H or W < 2 (or C = 0): the kernels give an empty output and an all-zero gradient, where the
    public API (like F.max_pool2d, hence the reference and the vendor) refuses."""
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    x = torch.randn(shape, device=device)
    out = impl.forward(x)
    assert out.shape == (shape[0], shape[1], shape[2] // 2, shape[3] // 2) and out.numel() == 0
    grad_x = impl.backward(torch.empty(out.shape, device=device), x)
    assert grad_x.shape == x.shape and grad_x.is_contiguous() and torch.all(grad_x == 0)


def test_implementations_take_expanded_and_channels_last_gradients(pair):
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    x = make(h=7, w=9, ties=True)
    for grad in (torch.ones(()).expand(2, 3, 3, 4), out_grad(x).to(memory_format=torch.channels_last)):
        assert_exact(impl.backward(grad.to(device), x.to(device)).cpu(), definition(x, grad)[1])
    assert_exact(impl.forward(x.to(device)).cpu(), reference.shifted_max_pool2d(x))


@pytest.mark.parametrize("shape", [(2, 3, 1, 4), (2, 3, 4, 1), (1, 0, 4, 4)])
def test_sizes_without_a_window_are_refused(pair, shape):
    backend, device = pair
    with pytest.raises(ValueError, match=r"x must have C >= 1 and H, W >= 2"):
        atbsn_kernels.shifted_max_pool2d(torch.randn(shape, device=device), backend=backend)


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_bad_inputs_raise_clear_errors(backend):
    x = make()
    cases = [
        (x.numpy(), TypeError, "x must be a torch.Tensor"),
        (x.int(), TypeError, "x must have a floating dtype"),
        (x[0], ValueError, r"x must be 4-D \[N, C, H, W\]"),
        (x[None], ValueError, r"x must be 4-D \[N, C, H, W\]"),
    ]
    for arg, error, match in cases:
        with pytest.raises(error, match=match):
            atbsn_kernels.shifted_max_pool2d(arg, backend=backend)


def test_bad_backend_names_the_allowed_values():
    with pytest.raises(ValueError, match="backend must be one of"):
        atbsn_kernels.shifted_max_pool2d(make(), backend="gpu")


def test_cuda_backend_refuses_float64():
    assert_cuda_refuses_float64(IMPLEMENTATIONS)


def test_public_op_runs_the_requested_backend(monkeypatch):
    assert_public_op_runs_the_requested_backend(
        monkeypatch, IMPLEMENTATIONS, lambda backend: atbsn_kernels.shifted_max_pool2d(make(), backend=backend))


def test_triton_module_is_compiled_by_compile_check():
    from atbsn_kernels.compile_check import triton_targets

    names = {t["name"] for t in triton_targets() if t["module"] == "shifted_max_pool2d"}
    assert {"pool_forward_fp32", "pool_backward_fp32", "pool_forward_bf16", "pool_backward_bf16"} <= names
    assert triton_kernels.BLOCK & (triton_kernels.BLOCK - 1) == 0, "tl.arange needs a power of two"


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_gradcheck_float64(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    x = make(n=1, c=2, h=7, w=6, dtype=torch.float64, seed=5).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: atbsn_kernels.shifted_max_pool2d(t, backend=backend), (x,))


def opcheck_samples(device):
    x = make(n=2, c=3, h=7, w=6, ties=True).to(device)
    return [x, x.to(memory_format=torch.channels_last), make(n=1, c=2, h=4, w=4, dtype=torch.float64).to(device)]


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_opcheck_dispatch_ops(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    utils = {"test_utils": TRITON_OPCHECK_UTILS} if backend == "triton" else {}
    for x in opcheck_samples(device):
        torch.library.opcheck(_dispatch, (x.clone().requires_grad_(), backend), **utils)
        torch.library.opcheck(_dispatch_backward, (out_grad(x).to(device), x, backend), **utils)


@pytest.mark.parametrize("kind", ["cpp", "triton"])
def test_opcheck_kernel_ops(kind):
    impl = IMPLEMENTATIONS["cpu" if kind == "cpp" else "triton"]
    device = "cpu" if kind == "cpp" else TRITON_DEVICE
    kwargs = {} if kind == "cpp" else {"test_utils": TRITON_OPCHECK_UTILS}
    for x in opcheck_samples(device):
        torch.library.opcheck(impl.forward, (x.clone().requires_grad_(),), **kwargs)
        torch.library.opcheck(impl.backward, (out_grad(x).to(device), x), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["cpu", "auto"])
def test_torch_compile_fullgraph(backend, monkeypatch):
    monkeypatch.setenv("ATBSN_AUTOTUNE", "1")
    x = make(h=8, w=6, ties=True)
    leaf = x.clone().requires_grad_()

    def step(t):
        return atbsn_kernels.shifted_max_pool2d(t, backend=backend).square().sum()

    torch._dynamo.reset()
    loss = torch.compile(step, fullgraph=True)(leaf)
    loss.backward()
    expected = x.clone().requires_grad_()
    step(expected).backward()
    assert_exact(loss.detach(), step(x))
    assert_exact(leaf.grad, expected.grad)
