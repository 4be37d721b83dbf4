"""Every kernel pair (forward, backward) against the reference: the C++ CPU kernels
(``torch.ops.atbsn.blind_spot_conv2d[_backward]``) and the Triton launchers (in the interpreter
on machines without a GPU). Forward and all gradients over kernel sizes, blind sizes, irregular
masks, dilations, odd sizes, dtypes, layouts and gradient subsets."""

import inspect
import itertools

import pytest
import torch

import atbsn_kernels._C  # noqa: F401  (the tests need the built extension: fail, never skip)
from atbsn_kernels import reference
from atbsn_kernels.triton import blind_spot_conv2d as triton_kernels

TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS = {
    "cpu": ("cpu", torch.ops.atbsn.blind_spot_conv2d, torch.ops.atbsn.blind_spot_conv2d_backward),
    "triton": (TRITON_DEVICE, triton_kernels.forward, triton_kernels.backward),
}


@pytest.fixture(params=sorted(KERNELS))
def kernels(request):
    """(device, forward, backward) of one implementation."""
    return KERNELS[request.param]

TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def masks(k):
    """(id, mask) pairs: every centred blind size plus irregular MM-BSN / AM-BSN shapes."""
    eye = torch.eye(k, dtype=torch.bool)
    plus = torch.zeros(k, k, dtype=torch.bool)
    plus[k // 2, :] = plus[:, k // 2] = True
    random = torch.rand(k, k, generator=torch.Generator().manual_seed(k)) < 0.4
    out = [(f"b{b}", reference.blind_spot_mask(k, b)) for b in range(0, k + 1) if b == 0 or b % 2]
    return out + [("x", eye | eye.flip(1)), ("plus", plus), ("random", random)]


def run_both(kernels, x, weight, bias, mask, dilation, slope, output_mask=(True, True, True)):
    """Returns (ours, reference): [out, grad_x, grad_w, grad_b], reference grads via autograd in fp64."""
    device, forward, backward = kernels
    leaves = [t.detach().double().requires_grad_() for t in (x, weight)] + (
        [bias.detach().double().requires_grad_()] if bias is not None else [None]
    )
    ref_out = reference.blind_spot_conv2d(*leaves, mask, dilation, slope)
    grad = torch.randn(ref_out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref_out.backward(grad)
    taps = list(reference.active_taps(mask))
    x, weight, grad = (t.to(device) for t in (x, weight, grad.to(x.dtype)))
    bias = bias.to(device) if bias is not None else None
    out = forward(x, weight, bias, taps, dilation, slope)
    wanted = [output_mask[0], output_mask[1], output_mask[2] and bias is not None]
    grads = backward(grad, x, weight, out, taps, dilation, slope, wanted)
    expected = [ref_out.detach()] + [None if t is None else t.grad for t in leaves]
    return [t.cpu() for t in (out, *grads)], expected


def magnitude(t):
    """Largest |value| (at least 1): tolerances scale with it."""
    return max(1.0, float(t.abs().max())) if t.numel() else 1.0


def assert_matches(ours, expected, dtype, output_mask=(True, True, True)):
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(ours[0].double(), expected[0], atol=tol * magnitude(expected[0]), rtol=tol)
    for got, want, wanted in zip(ours[1:], expected[1:], output_mask):
        if want is None or not wanted:
            assert got.numel() == 0
            continue
        torch.testing.assert_close(got.double(), want, atol=tol * magnitude(want), rtol=tol)


def make(n, cin, cout, h, w, k, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g).to(dtype)
    weight = (torch.randn(cout, cin, k, k, generator=g) / k).to(dtype)
    return x, weight, torch.randn(cout, generator=g).to(dtype)


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9, 11])
def test_every_mask_of_every_kernel_size(kernels, k):
    x, weight, bias = make(2, 3, 4, 9, 7, k, torch.float64)
    for _, mask in masks(k):
        ours, expected = run_both(kernels, x, weight, bias, mask, 1, None)
        assert_matches(ours, expected, torch.float64)
        assert torch.all(ours[2][:, :, mask] == 0), "masked taps must get exactly zero weight gradient"


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("slope", [None, 0.0, 0.1])
@pytest.mark.parametrize("h,w", [(7, 5), (1, 1), (13, 9), (2, 17)])
def test_dilation_activation_and_odd_sizes(kernels, dilation, slope, h, w):
    x, weight, bias = make(2, 3, 5, h, w, 5, torch.float64)
    ours, expected = run_both(kernels, x, weight, bias, reference.blind_spot_mask(5, 3), dilation, slope)
    assert_matches(ours, expected, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_layouts(kernels, dtype, channels_last):
    x, weight, bias = make(2, 6, 4, 11, 10, 3, dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ours, expected = run_both(kernels, x, weight, bias, reference.blind_spot_mask(3, 1), 2, 0.1)
    assert all(t.dtype == dtype for t in ours)
    assert ours[0].is_contiguous() and ours[1].is_contiguous()
    assert_matches(ours, expected, dtype)


@pytest.mark.parametrize("output_mask", list(itertools.product([True, False], repeat=3)))
def test_gradient_subsets(kernels, output_mask):
    x, weight, bias = make(1, 2, 3, 6, 5, 3, torch.float64)
    ours, expected = run_both(kernels, x, weight, bias, reference.blind_spot_mask(3, 1), 1, 0.1, output_mask)
    assert_matches(ours, expected, torch.float64, output_mask)


def test_no_bias_all_taps_masked_and_empty_batch(kernels):
    x, weight, _ = make(2, 3, 4, 5, 5, 3, torch.float64)
    ours, expected = run_both(kernels, x, weight, None, reference.blind_spot_mask(3, 3), 1, 0.1)
    assert_matches(ours, expected, torch.float64)
    assert torch.all(ours[0] == 0) and torch.all(ours[2] == 0)
    empty = torch.empty(0, 3, 5, 5, dtype=torch.float64)
    ours, expected = run_both(kernels, empty, weight, torch.zeros(4, dtype=torch.float64), reference.blind_spot_mask(3, 1), 1, None)
    assert ours[0].shape == (0, 4, 5, 5)
    assert_matches(ours, expected, torch.float64)


def test_larger_image_spanning_several_tiles(kernels):
    x, weight, bias = make(3, 8, 8, 67, 45, 5, torch.float32)
    ours, expected = run_both(kernels, x, weight, bias, reference.blind_spot_mask(5, 1), 2, 0.1)
    assert_matches(ours, expected, torch.float32)


def test_triton_blind_size_is_runtime_data():
    # The active taps are a runtime tensor and their count is never specialised on, so a new
    # blind size reuses the compiled kernels (at most one compile per dtype/config).
    for kernel in (triton_kernels._conv_kernel, triton_kernels._weight_grad_kernel):
        params = inspect.signature(kernel.fn).parameters  # the Python function, interpreted or compiled
        assert params["T"].annotation is inspect.Parameter.empty and "taps_ptr" in params
        not_specialised = getattr(kernel, "do_not_specialize", None) or kernel.kwargs["do_not_specialize"]
        assert "T" in not_specialised
    if torch.cuda.is_available():
        x, weight, bias = (t.cuda() for t in make(1, 4, 4, 8, 8, 5))
        compiled = []
        for blind in (1, 3, 5):
            triton_kernels.forward(x, weight, bias, tuple(reference.active_taps(reference.blind_spot_mask(5, blind))), 1, None)
            compiled.append(sum(len(c[0]) for c in triton_kernels._conv_kernel.device_caches.values()))
        assert compiled[0] == compiled[1] == compiled[2]
