"""``atbsn_kernels.shifted_conv2d`` (AT-BSN's half-plane 3x3 conv) on every backend available here
against ``reference.shifted_conv2d``: forward and gradients over sizes, dtypes, bias and slope;
its receptive field; bad arguments."""

import pytest
import torch

from atbsn_kernels import available_backends, reference, shifted_conv2d

BACKENDS = [name for name, (ok, _) in available_backends("cpu").items() if ok]
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}


def make(n=2, cin=3, cout=4, h=7, w=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64).to(dtype)
    weight = (torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float64) / 3).to(dtype)
    bias = torch.randn(cout, generator=g, dtype=torch.float64).to(dtype)
    return x, weight, bias


def run(fn, x, weight, bias, grad):
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    out = fn(*leaves)
    out.backward(grad)
    return [out.detach()] + [t.grad for t in leaves]


def test_backends_under_test_include_the_cpu_kernels():
    assert "cpu" in BACKENDS and "reference" in BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("n,h,w", [(2, 7, 5), (1, 1, 1), (1, 2, 9), (3, 16, 16)])
@pytest.mark.parametrize("slope", [0.1, None])
def test_matches_reference(backend, dtype, n, h, w, slope):
    x, weight, bias = make(n=n, h=h, w=w, dtype=dtype)
    grad = torch.randn(n, 4, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    got = run(lambda *a: shifted_conv2d(*a, negative_slope=slope, backend=backend), x, weight, bias, grad)
    want = run(lambda *a: reference.shifted_conv2d(*a, slope), *(t.double() for t in (x, weight, bias)), grad.double())
    for g, e in zip(got, want):
        assert g.dtype == dtype
        assert (g.double() - e).abs().max() <= TOLERANCES[dtype] * max(1.0, e.abs().max().item())


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_row_sees_only_rows_above_and_itself(backend):
    x, weight, bias = make(n=1, h=9, w=9, dtype=torch.float64)
    x.requires_grad_()
    out = shifted_conv2d(x, weight, bias, negative_slope=None, backend=backend)
    (grad,) = torch.autograd.grad(out[0, :, 4, 4].sum(), x)
    reached = grad[0].abs().sum(0) != 0
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
