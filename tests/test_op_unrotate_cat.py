"""``unrotate_cat`` (AT-BSN's head input: the four turns' features shifted down, turned back and
concatenated on the channels) on every backend that runs here, against the plain-PyTorch
reference, the official formulation (pad-crop shift, transposes and flips, ``torch.cat``) with
autograd, and ``torch.rot90`` itself: exact values and gradients over dtypes, sizes, shifts
(none, inside and beyond the image), empty batches and channels and layouts; the raw kernels on
sizes the public API refuses; argument errors, opcheck, float64 gradcheck and torch.compile.
Triton runs on the GPU when there is one, else in the interpreter on CPU tensors."""

import pytest
import torch
from backend_cases import (
    DTYPES,
    TRITON_DEVICE,
    TRITON_OPCHECK_UTILS,
    assert_auto_measures_both_directions,
    assert_compile_check_covers,
    assert_cuda_refuses_float64,
    assert_public_op_runs_the_requested_backend,
    backend_params,
)

import atbsn_kernels
from atbsn_kernels import reference, vendor
from atbsn_kernels.ops.unrotate_cat import IMPLEMENTATIONS, _dispatch, _dispatch_backward
from atbsn_kernels.triton import unrotate_cat as triton_kernels



def make(n=2, c=3, side=5, dtype=torch.float32, seed=0):
    """(features ``[4n, c, side, side]``, a gradient of the output ``[n, 4c, side, side]``), N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(4 * n, c, side, side, generator=g, dtype=torch.float64).to(dtype)
    grad = torch.randn(n, 4 * c, side, side, generator=g, dtype=torch.float64).to(dtype)
    return features, grad


def run(pair, features, shift, grad):
    """(out, grad_features) of the public op through autograd, on the backend's device, back on the CPU."""
    backend, device = pair
    leaf = features.to(device).detach().requires_grad_()
    out = atbsn_kernels.unrotate_cat(leaf, shift, backend=backend)
    out.backward(grad.to(device))
    return out.detach().cpu(), leaf.grad.cpu()


def official(features, shift, grad):
    """(out, grad_features) of the official formulation (the vendor's forward) through autograd."""
    leaf = features.detach().requires_grad_()
    out = vendor.unrotate_cat_forward(leaf, shift)
    out.backward(grad)
    return out.detach(), leaf.grad


def assert_exact(got, want):
    """Same dtype and shape, bit-equal values."""
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, atol=0, rtol=0, equal_nan=True)


def check(pair, features, shift, grad):
    """The backend equals the reference and the official formulation exactly; returns its results."""
    if pair[0] == "cuda" and features.dtype == torch.float64:
        pytest.xfail("the CUDA kernels take float16, bfloat16 and float32 (the public op refuses float64)")
    out, grad_features = ours = run(pair, features, shift, grad)
    assert out.is_contiguous()
    assert_exact(out, reference.unrotate_cat(features, shift))
    assert_exact(grad_features, reference.unrotate_cat_backward(grad, shift))
    for got, want in zip(ours, official(features, shift, grad)):
        assert_exact(got, want)
    return ours


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("side", [1, 2, 3, 6])
@pytest.mark.parametrize("shift", [0, 1, 2, 7])
def test_matches_reference(pair, dtype, side, shift):
    features, grad = make(side=side, dtype=dtype)
    check(pair, features, shift, grad)


def test_reference_is_rot90_of_the_shifted_turns():
    """Channel block k of the output is ``rot90(shift_down(turn k), k)``; shifted-out rows get no gradient."""
    features, grad = make(n=1, c=2, side=4)
    out = reference.unrotate_cat(features, 1)
    for k in range(4):
        assert_exact(out[:, 2 * k:2 * k + 2], torch.rot90(reference.shift_down(features[k:k + 1], 1), k, (2, 3)))
    assert torch.all(reference.unrotate_cat_backward(grad, 1)[:, :, -1] == 0)


@pytest.mark.parametrize("n,c", [(0, 3), (2, 0), (1, 1)])
def test_empty_batches_and_channels(pair, n, c):
    features, grad = make(n=n, c=c, side=3)
    out, grad_features = check(pair, features, 1, grad)
    assert out.shape == (n, 4 * c, 3, 3) and grad_features.shape == (4 * n, c, 3, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_any_input_and_gradient_layout(pair, dtype):
    """Channels-last features, channel slices of a bigger tensor, channels-last and expanded gradients."""
    features, grad = make(c=4, side=5, dtype=dtype)
    check(pair, features.to(memory_format=torch.channels_last), 2, grad.to(memory_format=torch.channels_last))
    wide, _ = make(c=9, side=5, dtype=dtype, seed=1)
    check(pair, wide[:, ::2][:, :4], 2, grad)
    check(pair, features, 2, torch.ones((), dtype=dtype).expand(grad.shape))


def test_hand_worked_case(pair):
    """One 2x2 image per turn (values 4k + 0..3), shift 1: each turn keeps its top row, moved down one
    row, then is turned back by k quarter turns counter-clockwise."""
    features = torch.arange(16.0).view(4, 1, 2, 2)
    grad = torch.arange(16.0).view(1, 4, 2, 2) + 100
    out, grad_features = run(pair, features, 1, grad)
    assert_exact(out, torch.tensor([[[[0.0, 0.0], [0.0, 1.0]],
                                     [[0.0, 5.0], [0.0, 4.0]],
                                     [[9.0, 8.0], [0.0, 0.0]],
                                     [[12.0, 0.0], [13.0, 0.0]]]]))
    assert_exact(grad_features, torch.tensor([[[[102.0, 103.0], [0.0, 0.0]]], [[[107.0, 105.0], [0.0, 0.0]]],
                                              [[[109.0, 108.0], [0.0, 0.0]]], [[[112.0, 114.0], [0.0, 0.0]]]]))


@pytest.mark.parametrize("pair", backend_params(exclude=("reference", "vendor")))
def test_kernels_on_sizes_the_api_refuses(pair):
    """S = 0: the kernels give empty outputs and gradients, where the public API refuses."""
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    assert impl.forward(torch.randn(8, 3, 0, 0, device=device), 1).shape == (2, 12, 0, 0)
    assert impl.backward(torch.randn(2, 12, 0, 0, device=device), 1).shape == (8, 3, 0, 0)


def test_implementations_return_fresh_contiguous_tensors(pair):
    """Outputs never alias an input, even where a view would do (N = 1, shift 0, turn 0 only)."""
    backend, device = pair
    impl = IMPLEMENTATIONS[backend]
    features, grad = (t.to(device) for t in make(n=1, c=1, side=1))
    out, grad_features = impl.forward(features, 0), impl.backward(grad, 0)
    assert out.data_ptr() != features.data_ptr() and grad_features.data_ptr() != grad.data_ptr()
    assert out.is_contiguous() and grad_features.is_contiguous()


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_bad_inputs_raise_clear_errors(backend):
    features, _ = make()
    cases = [
        ((features.numpy(), 1), TypeError, "features must be a torch.Tensor"),
        ((features.int(), 1), TypeError, "features must have a floating dtype"),
        ((features[0], 1), ValueError, r"features must be 4-D \[4N, C, S, S\]"),
        ((features[:6], 1), ValueError, r"features must be \[4N, C, S, S\] \(the four turns on the batch"),
        ((features[..., :4], 1), ValueError, r"features must be \[4N, C, S, S\]"),
        ((features[..., :0, :0], 1), ValueError, r"S >= 1"),
        ((features, -1), ValueError, "shift must be an int >= 0"),
        ((features, 1.0), ValueError, "shift must be an int >= 0"),
        ((features, True), ValueError, "shift must be an int >= 0"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            atbsn_kernels.unrotate_cat(*args, backend=backend)


def test_bad_backend_names_the_allowed_values():
    with pytest.raises(ValueError, match="backend must be one of"):
        atbsn_kernels.unrotate_cat(make()[0], 1, backend="gpu")


def test_cuda_backend_refuses_float64():
    assert_cuda_refuses_float64(IMPLEMENTATIONS)


def test_public_op_runs_the_requested_backend(monkeypatch):
    assert_public_op_runs_the_requested_backend(
        monkeypatch, IMPLEMENTATIONS, lambda backend: atbsn_kernels.unrotate_cat(make()[0], 1, backend=backend))


def test_auto_measures_forward_and_backward_as_separate_signatures(monkeypatch):
    features, grad = make(c=7, side=3)
    assert_auto_measures_both_directions(monkeypatch, lambda: run(("auto", "cpu"), features, 1, grad), "unrotate_cat", 7)


def test_triton_module_is_compiled_by_compile_check():
    assert_compile_check_covers(triton_kernels)


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_gradcheck_float64(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    features, _ = make(n=1, c=2, side=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: atbsn_kernels.unrotate_cat(f, 1, backend=backend),
                                    (features.to(device).requires_grad_(),))


def opcheck_samples(device):
    features, grad = (t.to(device) for t in make())
    return [(features, grad), tuple(t.to(memory_format=torch.channels_last) for t in (features, grad)),
            tuple(t.to(device) for t in make(n=1, c=2, side=4, dtype=torch.float64))]


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_opcheck_dispatch_ops(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    utils = {"test_utils": TRITON_OPCHECK_UTILS} if backend == "triton" else {}
    for features, grad in opcheck_samples(device):
        torch.library.opcheck(_dispatch, (features.clone().requires_grad_(), 2, backend), **utils)
        torch.library.opcheck(_dispatch_backward, (grad, 2, backend), **utils)


@pytest.mark.parametrize("kind", ["cpp", "triton"])
def test_opcheck_kernel_ops(kind):
    impl = IMPLEMENTATIONS["cpu" if kind == "cpp" else "triton"]
    device = "cpu" if kind == "cpp" else TRITON_DEVICE
    kwargs = {} if kind == "cpp" else {"test_utils": TRITON_OPCHECK_UTILS}
    for features, grad in opcheck_samples(device):
        torch.library.opcheck(impl.forward, (features.clone().requires_grad_(), 2), **kwargs)
        torch.library.opcheck(impl.backward, (grad, 2), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["cpu", "auto"])
def test_torch_compile_fullgraph(backend, monkeypatch):
    monkeypatch.setenv("ATBSN_AUTOTUNE", "1")
    features, _ = make()

    def step(f):
        return atbsn_kernels.unrotate_cat(f, 2, backend=backend).square().sum()

    torch._dynamo.reset()
    leaf = features.clone().requires_grad_()
    loss = torch.compile(step, fullgraph=True)(leaf)
    loss.backward()
    expected = features.clone().requires_grad_()
    step(expected).backward()
    torch.testing.assert_close(loss.detach(), step(features))  # Inductor sums the squares in its own order
    assert_exact(leaf.grad, expected.grad)
