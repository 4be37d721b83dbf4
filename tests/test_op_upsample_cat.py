"""``upsample_cat`` (a U-Net decoder's input: nearest 2x upsampling of x beside skip) on every
backend that runs here, against the plain-PyTorch reference and against ``torch.cat`` of
``F.interpolate`` with autograd: exact forward values over dtypes, odd sizes, empty and one-sided
channel sets and layouts; exact 2x2 gradient sums (the vendor: ATen's own order, to rounding);
dtype promotion and autocast; the raw kernels on sizes the public API refuses; argument errors,
opcheck, float64 gradcheck and torch.compile. Triton runs on the GPU when there is one, else in
the interpreter on CPU tensors."""

import pytest
import torch
import torch.nn.functional as F
from backend_cases import (
    DTYPES,
    TRITON_DEVICE,
    TRITON_OPCHECK_UTILS,
    assert_close,
    assert_auto_measures_both_directions,
    assert_compile_check_covers,
    assert_cuda_refuses_float64,
    assert_public_op_runs_the_requested_backend,
    backend_params,
)

import atbsn_kernels
from atbsn_kernels import reference
from atbsn_kernels.ops.upsample_cat import IMPLEMENTATIONS, _dispatch, _dispatch_backward
from atbsn_kernels.triton import upsample_cat as triton_kernels

SIZES = [(1, 1), (1, 3), (2, 2), (3, 5), (4, 4), (5, 2)]
CHANNELS = [(3, 2), (1, 4), (0, 2), (3, 0)]  # (Cx, Cs)


def make(n=2, cx=3, cs=2, h=3, w=5, dtype=torch.float32, seed=0):
    """(x ``[n, cx, h, w]``, skip ``[n, cs, 2h, 2w]``, a gradient of the output), N(0, 1) in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cx, h, w, generator=g, dtype=torch.float64).to(dtype)
    skip = torch.randn(n, cs, 2 * h, 2 * w, generator=g, dtype=torch.float64).to(dtype)
    grad = torch.randn(n, cx + cs, 2 * h, 2 * w, generator=g, dtype=torch.float64).to(dtype)
    return x, skip, grad


def run(pair, x, skip, grad):
    """(out, grad_x, grad_skip) of the public op through autograd, on the backend's device, back on the CPU."""
    backend, device = pair
    leaves = [t.to(device).detach().requires_grad_() for t in (x, skip)]
    out = atbsn_kernels.upsample_cat(*leaves, backend=backend)
    out.backward(grad.to(device))
    return out.detach().cpu(), leaves[0].grad.cpu(), leaves[1].grad.cpu()


def official(x, skip, grad):
    """(out, grad_x, grad_skip) of what a user writes, ``torch.cat((F.interpolate(x), skip), 1)``, in fp64
    (``F.interpolate`` refuses x without channels: then the output is skip and grad_x is empty)."""
    leaves = [t.double().detach().requires_grad_() for t in (x, skip)]
    if x.shape[1] == 0:
        out = leaves[1] * 1
        out.backward(grad.double())
        return out.detach(), torch.zeros_like(leaves[0]), leaves[1].grad
    out = torch.cat((F.interpolate(leaves[0], scale_factor=2, mode="nearest"), leaves[1]), 1)
    out.backward(grad.double())
    return out.detach(), leaves[0].grad, leaves[1].grad


def assert_exact(got, want):
    """Same dtype and shape, bit-equal values."""
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, atol=0, rtol=0, equal_nan=True)


def check(pair, x, skip, grad):
    """The backend equals the reference exactly (the vendor's gradient sums: to rounding) and the
    official formulation in fp64 to the dtype's tolerance; returns the backend's results."""
    if pair[0] == "cuda" and x.dtype == torch.float64:
        pytest.xfail("the CUDA kernels take float16, bfloat16 and float32 (the public op refuses float64)")
    out, grad_x, grad_skip = ours = run(pair, x, skip, grad)
    assert out.is_contiguous()
    want_grad_x, want_grad_skip = reference.upsample_cat_backward(grad, x.shape[1])
    assert_exact(out, reference.upsample_cat(x, skip))
    assert_exact(grad_skip, want_grad_skip)
    if pair[0] == "vendor":
        assert_close(grad_x, want_grad_x.double(), x.dtype)
        assert grad_x.dtype == x.dtype
    else:
        assert_exact(grad_x, want_grad_x)
    for got, want in zip(ours, official(x, skip, grad)):
        assert_close(got, want, x.dtype)
    return ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("h,w", SIZES)
def test_matches_reference(pair, dtype, h, w):
    check(pair, *make(h=h, w=w, dtype=dtype))


@pytest.mark.parametrize("cx,cs", CHANNELS)
def test_channel_splits(pair, cx, cs):
    out, grad_x, grad_skip = check(pair, *make(cx=cx, cs=cs, h=2, w=3))
    assert out.shape == (2, cx + cs, 4, 6) and grad_x.shape == (2, cx, 2, 3) and grad_skip.shape == (2, cs, 4, 6)


def test_empty_batch(pair):
    out, grad_x, grad_skip = check(pair, *make(n=0))
    assert out.shape == (0, 5, 6, 10) and grad_x.shape == (0, 3, 3, 5) and grad_skip.shape == (0, 2, 6, 10)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_any_input_and_gradient_layout(pair, dtype):
    """Channels-last x and skip, channel slices of bigger tensors, channels-last and expanded gradients."""
    x, skip, grad = make(cx=4, cs=3, h=3, w=4, dtype=dtype)
    check(pair, x.to(memory_format=torch.channels_last), skip.to(memory_format=torch.channels_last),
          grad.to(memory_format=torch.channels_last))
    wide_x, wide_skip, _ = make(cx=6, cs=5, h=3, w=4, dtype=dtype, seed=1)
    check(pair, wide_x[:, 1:5], wide_skip[:, ::2], grad)
    check(pair, x, skip, torch.ones((), dtype=dtype).expand(grad.shape))


def test_hand_worked_case(pair):
    """Each pixel of x fills a 2x2 block; the gradient of x sums its block's gradients."""
    backend, device = pair
    x = torch.tensor([[[[1.0, 2.0]]]])
    skip = torch.tensor([[[[5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]]])
    grad = torch.arange(16.0).view(1, 2, 2, 4)
    out, grad_x, grad_skip = run(pair, x, skip, grad)
    assert_exact(out, torch.tensor([[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]],
                                     [[5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]]]))
    assert_exact(grad_x, torch.tensor([[[[0.0 + 1 + 4 + 5, 2.0 + 3 + 6 + 7]]]]))
    assert_exact(grad_skip, grad[:, 1:])


def test_gradient_sums_in_fp32_then_rounds_once(pair):
    """bf16 gradients 1, 2^-8, 2^-8, 2^-8: summed in bf16 each 2^-8 would be lost to rounding."""
    backend, device = pair
    small = 2.0**-8
    grad = torch.tensor([[[[1.0, small], [small, small]]]], dtype=torch.bfloat16)
    x, skip = torch.zeros(1, 1, 1, 1, dtype=torch.bfloat16), torch.zeros(1, 0, 2, 2, dtype=torch.bfloat16)
    _, grad_x, _ = run(pair, x, skip, grad)
    assert grad_x.item() == float(torch.tensor(1 + 3 * small).to(torch.bfloat16))


@pytest.mark.parametrize("pair", backend_params(exclude=("reference", "vendor")))
@pytest.mark.parametrize("shape", [(2, 3, 0, 2), (2, 3, 2, 0), (0, 3, 1, 2)])
def test_kernels_on_sizes_the_api_refuses(pair, shape):
    """h or w = 0: the kernels give empty outputs and gradients, where the public API refuses."""
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    n, c, h, w = shape
    out = impl.forward(torch.randn(shape, device=device), torch.randn(n, 2, 2 * h, 2 * w, device=device))
    assert out.shape == (n, c + 2, 2 * h, 2 * w)
    grad_x, grad_skip = impl.backward(torch.empty(out.shape, device=device), c)
    assert grad_x.shape == shape and grad_skip.shape == (n, 2, 2 * h, 2 * w)


def test_implementations_return_fresh_contiguous_tensors(pair):
    """Outputs never alias an input, even where a copy looks unnecessary (N = 1, Cx = 0)."""
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    x, skip, grad = (t.to(device) for t in make(n=1, cx=0, cs=3))
    out = impl.forward(x, skip)
    grad_x, grad_skip = impl.backward(grad, 0)
    assert out.data_ptr() != skip.data_ptr() and grad_skip.data_ptr() != grad.data_ptr()
    assert out.is_contiguous() and grad_x.is_contiguous() and grad_skip.is_contiguous()


def test_dtypes_are_promoted_as_torch_cat_promotes(pair):
    if pair[0] == "cuda":
        pytest.xfail("promotion to float64 needs the float64 kernels the CUDA backend does not have")
    backend, device = pair
    x, skip, grad = make()
    x = x.to(torch.bfloat16)
    out, grad_x, grad_skip = run(pair, x, skip, grad)
    assert out.dtype == torch.float32 == grad_skip.dtype and grad_x.dtype == torch.bfloat16
    assert_exact(out, torch.cat((F.interpolate(x.float(), scale_factor=2), skip), 1))


def test_autocast_leaves_values_and_dtypes_alone():
    """Copies need no autocast rule: under CPU autocast the result is the result without it (the
    unfused ``F.interpolate`` + ``torch.cat`` gives the same values, in fp32)."""
    x, skip, grad = make()
    x = x.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = atbsn_kernels.upsample_cat(x, skip, backend="cpu")
        unfused = torch.cat((F.interpolate(x, scale_factor=2, mode="nearest"), skip), 1)
    assert_exact(fused, atbsn_kernels.upsample_cat(x, skip, backend="cpu"))
    assert_exact(fused, unfused.to(fused.dtype))


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_bad_inputs_raise_clear_errors(backend):
    x, skip, _ = make()
    cases = [
        ((x.numpy(), skip), TypeError, "x must be a torch.Tensor"),
        ((x, skip.int()), TypeError, "skip must have a floating dtype"),
        ((x[0], skip), ValueError, r"x must be 4-D \[N, Cx, h, w\]"),
        ((x, skip[0]), ValueError, r"skip must be 4-D \[N, Cs, 2h, 2w\]"),
        ((x, skip[:1]), ValueError, r"skip must be \[N, Cs, 2h, 2w\] = \[2, Cs, 6, 10\]"),
        ((x, skip[..., :-1]), ValueError, r"skip must be \[N, Cs, 2h, 2w\]"),
        ((x[:, :, :0], skip[:, :, :0]), ValueError, "x must have h, w >= 1"),
        ((x, skip.to("meta")), ValueError, "skip must be on x's device cpu"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            atbsn_kernels.upsample_cat(*args, backend=backend)


def test_bad_backend_names_the_allowed_values():
    with pytest.raises(ValueError, match="backend must be one of"):
        atbsn_kernels.upsample_cat(*make()[:2], backend="gpu")


def test_cuda_backend_refuses_float64():
    assert_cuda_refuses_float64(IMPLEMENTATIONS)


def test_public_op_runs_the_requested_backend(monkeypatch):
    assert_public_op_runs_the_requested_backend(
        monkeypatch, IMPLEMENTATIONS, lambda backend: atbsn_kernels.upsample_cat(*make()[:2], backend=backend))


def test_auto_measures_forward_and_backward_as_separate_signatures(monkeypatch):
    assert_auto_measures_both_directions(monkeypatch, lambda: run(("auto", "cpu"), *make(cx=5, cs=7, h=3, w=3)), "upsample_cat", 12)


def test_triton_module_is_compiled_by_compile_check():
    assert_compile_check_covers(triton_kernels)


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_gradcheck_float64(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    x, skip, _ = (t.to(device) for t in make(n=1, cx=2, cs=1, h=2, w=3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a, b: atbsn_kernels.upsample_cat(a, b, backend=backend),
                                    (x.requires_grad_(), skip.requires_grad_()))


def opcheck_samples(device):
    x, skip, grad = (t.to(device) for t in make())
    channels_last = [t.to(memory_format=torch.channels_last) for t in (x, skip, grad)]
    return [(x, skip, grad), channels_last, tuple(t.to(device) for t in make(n=1, cx=2, cs=0, dtype=torch.float64))]


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_opcheck_dispatch_ops(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    utils = {"test_utils": TRITON_OPCHECK_UTILS} if backend == "triton" else {}
    for x, skip, grad in opcheck_samples(device):
        torch.library.opcheck(_dispatch, (x.clone().requires_grad_(), skip.clone().requires_grad_(), backend), **utils)
        torch.library.opcheck(_dispatch_backward, (grad, x.shape[1], backend), **utils)


@pytest.mark.parametrize("kind", ["cpp", "triton"])
def test_opcheck_kernel_ops(kind):
    impl = IMPLEMENTATIONS["cpu" if kind == "cpp" else "triton"]
    device = "cpu" if kind == "cpp" else TRITON_DEVICE
    kwargs = {} if kind == "cpp" else {"test_utils": TRITON_OPCHECK_UTILS}
    for x, skip, grad in opcheck_samples(device):
        torch.library.opcheck(impl.forward, (x.clone().requires_grad_(), skip.clone().requires_grad_()), **kwargs)
        torch.library.opcheck(impl.backward, (grad, x.shape[1]), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["cpu", "auto"])
def test_torch_compile_fullgraph(backend, monkeypatch):
    monkeypatch.setenv("ATBSN_AUTOTUNE", "1")
    x, skip, _ = make()

    def step(a, b):
        return atbsn_kernels.upsample_cat(a, b, backend=backend).square().sum()

    torch._dynamo.reset()
    leaves = [t.clone().requires_grad_() for t in (x, skip)]
    loss = torch.compile(step, fullgraph=True)(*leaves)
    loss.backward()
    expected = [t.clone().requires_grad_() for t in (x, skip)]
    step(*expected).backward()
    torch.testing.assert_close(loss.detach(), step(x, skip))  # Inductor sums the squares in its own order
    for got, want in zip(leaves, expected):
        assert_exact(got.grad, want.grad)
