"""``atbsn_kernels.shifted_conv2d`` (AT-BSN's half-plane 3x3 conv) on every backend available here
against ``reference.shifted_conv2d``: forward and gradients over sizes, dtypes, bias and slope;
its receptive field; bad arguments."""

import pytest
import torch
from backend_cases import DTYPES, assert_close

from atbsn_kernels import reference, shifted_conv2d


def make(n=2, cin=3, cout=4, h=7, w=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64).to(dtype)
    weight = (torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float64) / 3).to(dtype)
    bias = torch.randn(cout, generator=g, dtype=torch.float64).to(dtype)
    return x, weight, bias


def run(fn, x, weight, bias, grad, device="cpu"):
    """[out, grad_x, grad_w, grad_b] of ``fn`` through autograd on ``device``, back on the CPU."""
    leaves = [t.detach().clone().to(device).requires_grad_() for t in (x, weight, bias)]
    out = fn(*leaves)
    out.backward(grad.to(device))
    return [t.detach().cpu() for t in [out] + [leaf.grad for leaf in leaves]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,h,w", [(2, 7, 5), (1, 1, 1), (1, 2, 9), (3, 16, 16)])
@pytest.mark.parametrize("slope", [0.1, None])
def test_matches_reference(pair, dtype, n, h, w, slope):
    backend, device = pair
    if backend == "cuda" and dtype == torch.float64:
        pytest.xfail("the CUDA kernels take float16, bfloat16 and float32 (the public op refuses float64)")
    x, weight, bias = make(n=n, h=h, w=w, dtype=dtype)
    grad = torch.randn(n, 4, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    got = run(lambda *a: shifted_conv2d(*a, negative_slope=slope, backend=backend), x, weight, bias, grad, device)
    want = run(lambda *a: reference.shifted_conv2d(*a, slope), *(t.double() for t in (x, weight, bias)), grad.double())
    for g, e in zip(got, want):
        assert g.dtype == dtype
        assert_close(g, e, dtype)


def test_output_row_sees_only_rows_above_and_itself(pair):
    backend, device = pair
    x, weight, bias = (t.to(device) for t in make(n=1, h=9, w=9, dtype=torch.float64))
    x.requires_grad_()
    out = shifted_conv2d(x, weight, bias, negative_slope=None, backend=backend)
    (grad,) = torch.autograd.grad(out[0, :, 4, 4].sum(), x)
    reached = grad[0].abs().sum(0).cpu() != 0
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[2:5, 3:6] = True
    assert torch.equal(reached, expected)


def test_without_bias():
    x, weight, _ = make()
    assert torch.allclose(shifted_conv2d(x, weight, backend="cpu"), reference.shifted_conv2d(x, weight, None), atol=1e-5)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight=torch.zeros(4, 3, 5, 5)), ValueError, "3x3"),
    (dict(weight=torch.zeros(4, 2, 3, 3)), ValueError, "input channels"),
    (dict(negative_slope=-1.0), ValueError, "negative_slope"),
    (dict(backend="gpu"), ValueError, "backend"),
    (dict(x=torch.zeros(1, 3, 4, 4, dtype=torch.int32)), TypeError, "x must"),
])
def test_bad_arguments(kwargs, error, match):
    x, weight, bias = make()
    args = dict(x=x, weight=weight)
    args.update({k: v for k, v in kwargs.items() if k in ("x", "weight")})
    options = {k: v for k, v in kwargs.items() if k not in ("x", "weight")}
    with pytest.raises(error, match=match):
        shifted_conv2d(args["x"], args["weight"], **options)
