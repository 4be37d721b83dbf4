"""Public ``blind_spot_conv2d``: validation on every backend, agreement of every backend with the
reference through autograd, float64 gradcheck, opcheck of the registered ops, torch.compile."""

import pytest
import torch

import atbsn_kernels
from atbsn_kernels import reference
from atbsn_kernels._custom_ops import CPP_OPS, TRITON_OPS

BACKENDS = ["reference", "cpu", "triton"]
# Triton runs on the GPU when there is one, else in the interpreter on CPU tensors (conftest.py).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Under the interpreter Triton kernels are plain Python that AOTAutograd cannot trace, so the
# aot_dispatch checks of opcheck need a GPU; schema, fake-kernel and autograd checks run everywhere.
TRITON_OPCHECK_UTILS = (
    ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    if torch.cuda.is_available() else ("test_schema", "test_autograd_registration", "test_faketensor")
)


def device_for(backend):
    return TRITON_DEVICE if backend == "triton" else "cpu"


def make_inputs(n=2, cin=3, cout=4, h=7, w=6, k=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g).to(dtype)
    weight = (torch.randn(cout, cin, k, k, generator=g) * 0.3).to(dtype)
    bias = torch.randn(cout, generator=g).to(dtype)
    return x, weight, bias


BAD_CALLS = [
    (dict(blind=2), ValueError, "blind"),
    (dict(blind=-1), ValueError, "blind"),
    (dict(blind=5), ValueError, "blind"),
    (dict(blind=1.0), TypeError, "blind"),
    (dict(blind=True), TypeError, "blind"),
    (dict(mask=torch.zeros(5, 5, dtype=torch.bool)), ValueError, "mask"),
    (dict(mask=torch.zeros(3, 3)), TypeError, "mask"),
    (dict(mask="centre"), TypeError, "mask"),
    (dict(mask=torch.zeros(3, 3, dtype=torch.bool), blind=3), ValueError, "either blind or mask"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(dilation=1.5), ValueError, "dilation"),
    (dict(negative_slope=-0.1), ValueError, "negative_slope"),
    (dict(negative_slope="0.1"), TypeError, "negative_slope"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs,error,match", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(backend, kwargs, error, match):
    x, weight, bias = make_inputs()
    with pytest.raises(error, match=match):
        atbsn_kernels.blind_spot_conv2d(x, weight, bias, backend=backend, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_tensors_raise_clear_errors(backend):
    x, weight, bias = make_inputs()
    conv = atbsn_kernels.blind_spot_conv2d
    cases = [
        ((x[0], weight, bias), ValueError, "x must be 4-D"),
        ((x, weight[:, :2], bias), ValueError, "input channels"),
        ((x, weight[..., :2], bias), ValueError, "square odd kernel"),
        ((x, torch.randn(4, 3, 4, 4), bias), ValueError, "square odd kernel"),
        ((x, torch.randn(4, 3, 13, 13), bias), ValueError, "square odd kernel"),
        ((x.int(), weight, bias), TypeError, "x must have a floating dtype"),
        ((x, weight.double(), bias), TypeError, "weight must match x"),
        ((x, weight, bias[:2]), ValueError, "bias must have shape"),
        ((x, weight, bias.double()), TypeError, "bias must match x"),
        ((x.numpy(), weight, bias), TypeError, "x must be a torch.Tensor"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            conv(*args, backend=backend)


def x_mask():
    return torch.eye(5, dtype=torch.bool) | torch.eye(5, dtype=torch.bool).flip(1)


CASES = [
    dict(k=3, blind=1),
    dict(k=3, blind=0, negative_slope=0.1),
    dict(k=5, blind=3, dilation=2, negative_slope=0.1),
    dict(k=5, mask="x", h=5, w=9),
    dict(k=3, blind=3),
    dict(k=1, blind=0, h=1, w=1),
]


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_backend_matches_reference_forward_and_backward(backend, case):
    case = dict(case)
    k, h, w = case.pop("k"), case.pop("h", 7), case.pop("w", 6)
    if case.get("mask") == "x":
        case["mask"] = x_mask()
    x, weight, bias = make_inputs(k=k, h=h, w=w)
    grads = {}
    for name in ("reference", backend):
        leaves = [t.to(device_for(name)).requires_grad_() for t in (x, weight, bias)]
        out = atbsn_kernels.blind_spot_conv2d(*leaves, backend=name, **case)
        (out * torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)).sum().backward()
        grads[name] = [t.cpu() for t in [out.detach()] + [t.grad for t in leaves]]
    for got, expected in zip(grads[backend], grads["reference"]):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_cpu_backend_gradcheck_float64():
    x, weight, bias = make_inputs(n=1, cin=2, cout=2, h=5, w=4, k=3, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (x, weight, bias)]

    def fn(a, b, c):
        return atbsn_kernels.blind_spot_conv2d(a, b, c, blind=1, dilation=2, negative_slope=0.2, backend="cpu")

    assert torch.autograd.gradcheck(fn, leaves)


def test_masked_taps_get_zero_weight_gradient_on_every_backend():
    x, weight, bias = make_inputs(k=5)
    for backend in BACKENDS:
        device = device_for(backend)
        w = weight.to(device).requires_grad_()
        atbsn_kernels.blind_spot_conv2d(x.to(device), w, bias.to(device), blind=3, backend=backend).sum().backward()
        assert torch.all(w.grad[:, :, 1:4, 1:4] == 0), backend
        assert torch.all(w.grad[:, :, 0, :] != 0), backend


def opcheck_samples(device="cpu"):
    x, weight, bias = (t.to(device) for t in make_inputs(n=1, cin=2, cout=3, h=5, w=4, k=3))
    taps = list(reference.active_taps(reference.blind_spot_mask(3, 1)))
    return [
        (x, weight, bias, taps, 1, 0.1),
        (x, weight, None, taps, 2, None),
        (x.to(memory_format=torch.channels_last), weight, bias, [0, 4, 8], 1, None),
    ]


@pytest.mark.parametrize("ops", ["cpp", "triton"])
def test_opcheck_registered_ops(ops):
    forward = (CPP_OPS if ops == "cpp" else TRITON_OPS)[0]
    device, utils = ("cpu", None) if ops == "cpp" else (TRITON_DEVICE, TRITON_OPCHECK_UTILS)
    for x, weight, bias, taps, dilation, slope in opcheck_samples(device):
        args = (x.requires_grad_(), weight.requires_grad_(), None if bias is None else bias.requires_grad_(), taps, dilation, slope)
        torch.library.opcheck(forward, args, **({"test_utils": utils} if utils else {}))


@pytest.mark.parametrize("ops", ["cpp", "triton"])
def test_opcheck_backward_ops(ops):
    backward = (CPP_OPS if ops == "cpp" else TRITON_OPS)[1]
    device, utils = ("cpu", None) if ops == "cpp" else (TRITON_DEVICE, TRITON_OPCHECK_UTILS)
    x, weight, bias, taps, dilation, slope = opcheck_samples(device)[0]
    out = reference.blind_spot_conv2d(x, weight, bias, reference.blind_spot_mask(3, 1, device), dilation, slope)
    for output_mask in ([True, True, True], [False, True, False], [True, False, False]):
        args = (torch.randn_like(out), x, weight, out, taps, dilation, slope, output_mask)
        torch.library.opcheck(backward, args, **({"test_utils": utils} if utils else {}))


@pytest.mark.slow
def test_torch_compile_fullgraph_cpu_backend():
    x, weight, bias = make_inputs()
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]

    def step(a, b, c):
        return atbsn_kernels.blind_spot_conv2d(a, b, c, blind=1, negative_slope=0.1, backend="cpu").square().mean()

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    loss = compiled(*leaves)
    loss.backward()
    expected = step(*(t.detach().clone().requires_grad_() for t in (x, weight, bias)))
    torch.testing.assert_close(loss, expected)
    assert leaves[1].grad is not None and torch.all(leaves[1].grad[:, :, 1, 1] == 0)
