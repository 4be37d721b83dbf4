"""The raw C++ CPU ops ``torch.ops.atbsn.blind_spot_conv2d`` and ``..._backward`` against the
reference forward and its autograd gradients (computed in float64 from the same inputs): kernel
and blind sizes, irregular masks, dilations, odd image sizes, empty batches, bias, activation,
gradient subsets, dtypes and memory formats."""

import itertools

import pytest
import torch

import atbsn_kernels._C  # noqa: F401  (registers the ops; without the built extension these tests fail, never skip)
from atbsn_kernels import reference

FORWARD = torch.ops.atbsn.blind_spot_conv2d
BACKWARD = torch.ops.atbsn.blind_spot_conv2d_backward
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}
ALL_GRADS = (True, True, True)


def centre_masks(k):
    """(id, mask) of every centred blind square the API accepts: blind 0 and every odd size <= k."""
    return [(f"k{k}-b{b}", reference.blind_spot_mask(k, b)) for b in range(k + 1) if b == 0 or b % 2]


def irregular_masks(k):
    """(id, mask) of non-square masks: X, plus, a random one, and every tap masked (no active taps)."""
    eye = torch.eye(k, dtype=torch.bool)
    plus = torch.zeros(k, k, dtype=torch.bool)
    plus[k // 2, :] = plus[:, k // 2] = True
    random = torch.rand(k, k, generator=torch.Generator().manual_seed(k)) < 0.5
    full = torch.ones(k, k, dtype=torch.bool)
    return [(f"k{k}-x", eye | eye.flip(1)), (f"k{k}-plus", plus), (f"k{k}-random", random), (f"k{k}-all", full)]


def make_inputs(n, cin, cout, h, w, k, dtype=torch.float64, seed=0):
    """x [n, cin, h, w], weight [cout, cin, k, k] (unit-scale outputs) and bias [cout] of ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g).to(dtype)
    weight = (torch.randn(cout, cin, k, k, generator=g) / k).to(dtype)
    bias = torch.randn(cout, generator=g).to(dtype)
    return x, weight, bias


def reference_results(x, weight, bias, mask, dilation, slope, grad):
    """[out, grad_x, grad_weight, grad_bias] of the reference in float64 (grad_bias None without bias)."""
    leaves = [t.detach().double().requires_grad_() for t in (x, weight)]
    leaves.append(bias.detach().double().requires_grad_() if bias is not None else None)
    out = reference.blind_spot_conv2d(*leaves, mask, dilation, slope)
    out.backward(grad.double())
    return [out.detach()] + [t.grad if t is not None else None for t in leaves]


def kernel_results(x, weight, bias, mask, dilation, slope, grad, output_mask):
    """[out, grad_x, grad_weight, grad_bias] of the C++ ops."""
    taps = list(reference.active_taps(mask))
    out = FORWARD(x, weight, bias, taps, dilation, slope)
    return [out, *BACKWARD(grad, x, weight, out, taps, dilation, slope, list(output_mask))]


def assert_close(got, want, dtype):
    """``got`` equals the float64 ``want`` up to the dtype's tolerance, scaled by the largest |want|."""
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    torch.testing.assert_close(got.double(), want, atol=tol * scale, rtol=tol)


def check(x, weight, bias, mask, dilation=1, slope=None, output_mask=ALL_GRADS, grad=None):
    """Runs the ops and the reference on the same inputs and compares everything; returns the ops' results."""
    if bias is None:
        output_mask = (output_mask[0], output_mask[1], False)
    if grad is None:
        shape = (x.shape[0], weight.shape[0], x.shape[2], x.shape[3])
        grad = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    ours = kernel_results(x, weight, bias, mask, dilation, slope, grad, output_mask)
    expected = reference_results(x, weight, bias, mask, dilation, slope, grad)
    out = ours[0]
    assert out.dtype == x.dtype and out.is_contiguous()
    assert_close(out, expected[0], x.dtype)
    for got, want, like, wanted in zip(ours[1:], expected[1:], (x, weight, weight), output_mask):
        if not wanted:
            assert got.numel() == 0
            continue
        assert got.dtype == like.dtype
        assert_close(got, want, x.dtype)
    if output_mask[1]:
        assert torch.all(ours[2][:, :, mask] == 0), "masked taps must get exactly zero weight gradient"
    return ours


@pytest.mark.parametrize("mask", [m for k in (1, 3, 5, 7, 9, 11) for _, m in centre_masks(k)],
                         ids=[i for k in (1, 3, 5, 7, 9, 11) for i, _ in centre_masks(k)])
def test_kernel_and_blind_sizes(mask):
    x, weight, bias = make_inputs(2, 3, 4, 9, 7, mask.shape[0])
    check(x, weight, bias, mask)


@pytest.mark.parametrize("mask", [m for k in (3, 5, 7) for _, m in irregular_masks(k)],
                         ids=[i for k in (3, 5, 7) for i, _ in irregular_masks(k)])
def test_irregular_masks(mask):
    x, weight, bias = make_inputs(2, 3, 4, 8, 9, mask.shape[0])
    check(x, weight, bias, mask, slope=0.1)


def test_all_taps_masked_gives_activated_bias_and_zero_gradients():
    x, weight, bias = make_inputs(2, 3, 4, 5, 6, 3)
    out, grad_x, grad_w, _ = check(x, weight, bias, torch.ones(3, 3, dtype=torch.bool), slope=0.1)
    assert torch.equal(out, torch.nn.functional.leaky_relu(bias, 0.1).view(1, 4, 1, 1).expand_as(out))
    assert torch.all(grad_x == 0) and torch.all(grad_w == 0)


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("h,w", [(7, 5), (1, 1), (13, 9), (2, 17)])
def test_dilation_and_odd_image_sizes(dilation, h, w):
    x, weight, bias = make_inputs(2, 3, 5, h, w, 5)
    check(x, weight, bias, reference.blind_spot_mask(5, 3), dilation, slope=0.1)


@pytest.mark.parametrize("slope", [None, 0.0, 0.1])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_activation_and_bias(slope, with_bias):
    x, weight, bias = make_inputs(2, 4, 3, 6, 7, 3)
    check(x, weight, bias if with_bias else None, reference.blind_spot_mask(3, 1), slope=slope)


@pytest.mark.parametrize("output_mask", list(itertools.product([True, False], repeat=3)))
def test_gradient_subsets(output_mask):
    x, weight, bias = make_inputs(1, 2, 3, 6, 5, 3)
    check(x, weight, bias, reference.blind_spot_mask(3, 1), slope=0.1, output_mask=output_mask)


def test_empty_batch():
    x, weight, bias = make_inputs(0, 3, 4, 5, 5, 3)
    out, grad_x, grad_w, grad_b = check(x, weight, bias, reference.blind_spot_mask(3, 1), slope=0.1)
    assert out.shape == (0, 4, 5, 5) and grad_x.shape == x.shape
    assert torch.all(grad_w == 0) and torch.all(grad_b == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_dtypes_and_memory_formats(dtype, channels_last):
    x, weight, bias = make_inputs(2, 6, 4, 11, 10, 3, dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    grad_x = check(x, weight, bias, reference.blind_spot_mask(3, 1), dilation=2, slope=0.1)[1]
    assert grad_x.shape == x.shape


def test_broadcast_and_channels_last_grad_out():
    """Autograd hands the backward expanded (stride 0) or channels-last gradients."""
    x, weight, bias = make_inputs(2, 3, 4, 7, 6, 5, torch.float32)
    mask = reference.blind_spot_mask(5, 3)
    check(x, weight, bias, mask, slope=0.1, grad=torch.ones(()).expand(2, 4, 7, 6))
    grad = torch.randn(2, 4, 7, 6).to(memory_format=torch.channels_last)
    check(x, weight, bias, mask, slope=0.1, grad=grad)


@pytest.mark.parametrize("threads", [1, 2])
def test_many_bands_and_threads(threads):
    """Enough rows and channels for several bands per image, with one and with two threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, weight, bias = make_inputs(3, 24, 16, 45, 33, 9, torch.float32)
        check(x, weight, bias, reference.blind_spot_mask(9, 7), dilation=2, slope=0.1)
    finally:
        torch.set_num_threads(before)
