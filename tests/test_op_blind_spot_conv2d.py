"""``blind_spot_conv2d`` on every backend that runs here (reference, vendor, cpu, triton; cuda on
a GPU), against the reference's autograd in fp64 on the same inputs.

Two levels: the kernel contract (each entry of ``IMPLEMENTATIONS``: forward, and backward with
every gradient subset) and the public op through autograd. Kernel and blind sizes, irregular
masks, dilations, odd sizes, empty batches, bias, activation, dtypes, layouts, expanded
gradients, NaN/inf semantics, argument errors, gradcheck, opcheck and torch.compile.
Triton runs in the interpreter on CPU tensors unless a GPU is present.
"""

import inspect
import itertools
import os
import subprocess
import sys

import pytest
import torch
from backend_cases import (
    DTYPES,
    GPU,
    TRITON_DEVICE,
    TRITON_OPCHECK_UTILS,
    assert_close,
    assert_cuda_refuses_float64,
    assert_public_op_runs_the_requested_backend,
)

import atbsn_kernels
from atbsn_kernels import machine, reference, taps, vendor
from atbsn_kernels.ops.blind_spot_conv2d import (
    IMPLEMENTATIONS,
    _dispatch,
    _dispatch_backward,
)
from atbsn_kernels.triton import blind_spot_conv2d as triton_kernels

ALL_GRADS = (True, True, True)


def masks(k):
    """(id, mask) pairs: every centred blind size, MM-BSN / AM-BSN shapes, a random one, one tap, all masked."""
    eye = torch.eye(k, dtype=torch.bool)
    plus = torch.zeros(k, k, dtype=torch.bool)
    plus[k // 2, :] = plus[:, k // 2] = True
    random = torch.rand(k, k, generator=torch.Generator().manual_seed(k)) < 0.4
    one_tap = torch.ones(k, k, dtype=torch.bool)
    one_tap[0, k - 1] = False
    out = [(f"b{b}", taps.blind_spot_mask(k, b)) for b in range(0, k + 1) if b == 0 or b % 2]
    return out + [("x", eye | eye.flip(1)), ("plus", plus), ("random", random), ("one_tap", one_tap),
                  ("all", torch.ones(k, k, dtype=torch.bool))]


def make(n=2, cin=3, cout=4, h=7, w=6, k=3, dtype=torch.float64, seed=0, bias=True):
    """x ``[n, cin, h, w]``, weight ``[cout, cin, k, k]`` (unit-scale outputs), bias ``[cout]`` or None."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64).to(dtype)
    weight = (torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64) / k).to(dtype)
    b = torch.randn(cout, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return x, weight, b


def random_grad(x, cout, seed=1):
    n, _, h, w = x.shape
    return torch.randn(n, cout, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(x.dtype)


def expected(x, weight, bias, active, dilation, slope, grad):
    """[out, grad_x, grad_w, grad_b] of the reference via autograd in fp64 (grad_b None without bias)."""
    leaves = [None if t is None else t.detach().double().requires_grad_() for t in (x, weight, bias)]
    out = reference.blind_spot_conv2d(*leaves, active, dilation, slope)
    out.backward(grad.double())
    return [out.detach()] + [None if t is None else t.grad for t in leaves]


def run_contract(backend, device, x, weight, bias, active, dilation, slope, grad, output_mask):
    """[out, grad_x, grad_w, grad_b] of one implementation's forward and backward, back on the CPU."""
    impl = IMPLEMENTATIONS[backend]
    x, weight, grad = (t.to(device) for t in (x, weight, grad))
    bias = None if bias is None else bias.to(device)
    out = impl.forward(x, weight, bias, list(active), dilation, slope)
    grads = impl.backward(grad, x, weight, out, list(active), dilation, slope, list(output_mask))
    return [t.cpu() for t in (out, *grads)]


def check(pair, x, weight, bias, mask, dilation=1, slope=None, output_mask=ALL_GRADS, grad=None):
    """Run one implementation and the reference on the same inputs and compare everything;
    returns the implementation's [out, grad_x, grad_w, grad_b]."""
    backend, device = pair
    output_mask = (output_mask[0], output_mask[1], output_mask[2] and bias is not None)
    active = taps.active_taps(mask)
    grad = random_grad(x, weight.shape[0]) if grad is None else grad
    ours = run_contract(backend, device, x, weight, bias, active, dilation, slope, grad, output_mask)
    want = expected(x, weight, bias, active, dilation, slope, grad)
    assert ours[0].dtype == x.dtype and ours[0].is_contiguous()
    assert_close(ours[0], want[0], x.dtype)
    for got, ref, like, wanted in zip(ours[1:], want[1:], (x, weight, weight), output_mask):
        if not wanted:
            assert got.numel() == 0
            continue
        assert got.dtype == like.dtype and got.is_contiguous()
        assert_close(got, ref, x.dtype)
    if output_mask[1]:
        assert torch.all(ours[2][:, :, mask] == 0), "masked taps must get exactly zero weight gradient"
    return ours


# ---------------------------------------------------------------- kernel contract, every backend


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9, 11])
def test_every_mask_of_every_kernel_size(pair, k):
    x, weight, bias = make(h=9, w=7, k=k)
    for _, mask in masks(k):
        check(pair, x, weight, bias, mask, slope=0.1)


@pytest.mark.parametrize("k", [3, 5])
def test_irregular_masks_dilated(pair, k):
    x, weight, bias = make(h=8, w=9, k=k)
    for _, mask in masks(k)[-5:]:
        check(pair, x, weight, bias, mask, dilation=2, slope=0.1)


@pytest.mark.parametrize("dilation", [1, 2, 3, 5])
@pytest.mark.parametrize("slope", [None, 0.0, 0.1])
@pytest.mark.parametrize("h,w", [(7, 5), (1, 1), (13, 9), (2, 17)])
def test_dilation_activation_and_odd_sizes(pair, dilation, slope, h, w):
    x, weight, bias = make(cout=5, h=h, w=w, k=5)
    check(pair, x, weight, bias, taps.blind_spot_mask(5, 3), dilation, slope)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_dtypes_and_layouts(pair, dtype, channels_last):
    if pair[0] == "cuda" and dtype == torch.float64:
        pytest.xfail("the CUDA kernels take float16, bfloat16 and float32 (the public op refuses float64)")
    x, weight, bias = make(cin=6, h=11, w=10, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    grad_x = check(pair, x, weight, bias, taps.blind_spot_mask(3, 1), dilation=2, slope=0.1)[1]
    assert grad_x.shape == x.shape


@pytest.mark.parametrize("output_mask", list(itertools.product([True, False], repeat=3)))
def test_gradient_subsets(pair, output_mask):
    x, weight, bias = make(n=1, cin=2, cout=3, h=6, w=5)
    check(pair, x, weight, bias, taps.blind_spot_mask(3, 1), slope=0.1, output_mask=output_mask)


@pytest.mark.parametrize("slope", [None, 0.1])
def test_no_bias_all_taps_masked_and_empty_batch(pair, slope):
    x, weight, bias = make(h=5, w=5)
    out, grad_x, grad_w, _ = check(pair, x, weight, None, taps.blind_spot_mask(3, 3), slope=slope)
    assert torch.all(out == 0) and torch.all(grad_x == 0) and torch.all(grad_w == 0)
    out = check(pair, x, weight, bias, torch.ones(3, 3, dtype=torch.bool), slope=slope)[0]
    expected_out = bias if slope is None else torch.nn.functional.leaky_relu(bias, slope)
    torch.testing.assert_close(out, expected_out.view(1, -1, 1, 1).expand_as(out))
    empty = torch.empty(0, 3, 5, 5, dtype=torch.float64)
    out, grad_x, grad_w, grad_b = check(pair, empty, weight, bias, taps.blind_spot_mask(3, 1), slope=slope)
    assert out.shape == (0, 4, 5, 5) and grad_x.shape == empty.shape
    assert torch.all(grad_w == 0) and torch.all(grad_b == 0)


def test_expanded_and_channels_last_gradients(pair):
    """Autograd hands the backward expanded (stride 0) or channels-last gradients."""
    x, weight, bias = make(h=7, w=6, k=5, dtype=torch.float32)
    mask = taps.blind_spot_mask(5, 3)
    check(pair, x, weight, bias, mask, slope=0.1, grad=torch.ones(()).expand(2, 4, 7, 6))
    check(pair, x, weight, bias, mask, slope=0.1, grad=torch.randn(2, 4, 7, 6).to(memory_format=torch.channels_last))


def test_several_tiles_channel_blocks_and_pixel_splits(pair):
    """Enough pixels for several tiles and split-K programs, enough channels for several blocks."""
    check(pair, *make(n=2, cin=4, cout=5, h=17, w=17, k=3, dtype=torch.float32), taps.blind_spot_mask(3, 1), 2)
    check(pair, *make(n=1, cin=70, cout=70, h=4, w=5, dtype=torch.float32), taps.blind_spot_mask(3, 1), slope=0.1)
    if pair[1] != "cpu" or pair[0] != "triton":  # the interpreter's cost grows with the programs
        check(pair, *make(n=3, cin=8, cout=8, h=67, w=45, k=5, dtype=torch.float32), taps.blind_spot_mask(5, 1), 2,
              slope=0.1)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_kernels_over_many_bands_and_threads(threads):
    """Enough rows and channels for several bands per image, with one and with two threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, weight, bias = make(n=3, cin=24, cout=16, h=45, w=33, k=9, dtype=torch.float32)
        check(("cpu", "cpu"), x, weight, bias, taps.blind_spot_mask(9, 7), dilation=2, slope=0.1)
    finally:
        torch.set_num_threads(before)


def test_cpu_kernels_for_every_width_of_a_bands_last_tile():
    """One-row images (one band per row, len = W + 2 pad grid positions) of widths 1..50 end their
    bands with a last tile of every width in vectors, and of every remainder within a vector."""
    for w in range(1, 51):
        check(("cpu", "cpu"), *make(n=1, cin=3, cout=10, h=1, w=w, dtype=torch.float32), taps.blind_spot_mask(3, 1),
              slope=0.1)


# ---------------------------------------------------------------- fp32 accuracy

FP32_ULPS = 8 * torch.finfo(torch.float32).eps  # a few units of fp32 rounding: the same accuracy class
ACCURACY_SHAPES = [  # (n, channels, side, k, taps, slope): AT-BSN's trunk and head, AP-BSN's masked conv
    (8, 48, 64, 5, taps.SHIFTED_TAPS, 0.1), (8, 96, 16, 5, taps.SHIFTED_TAPS, 0.1),
    (2, 384, 64, 1, (0,), 0.1), (4, 128, 32, 3, taps.blind_taps(3, 1), None),
]


@pytest.mark.parametrize("n,c,side,k,active,slope", ACCURACY_SHAPES)
def test_fp32_results_are_as_accurate_as_the_vendor_conv(n, c, side, k, active, slope):
    """Against the same call in fp64, our kernels' fp32 output and gradients (relative L2 error)
    are within 2x the vendor conv's own fp32 error, or within a few units of fp32 rounding. Both
    backward passes get the same fp64-exact forward output, so no gate can flip between them."""
    g = torch.Generator().manual_seed(0)
    x, grad = torch.randn(n, c, side, side, generator=g), torch.randn(n, c, side, side, generator=g)
    weight = torch.randn(c, c, k, k, generator=g) / (c * len(active)) ** 0.5
    bias = torch.randn(c, generator=g)
    out64 = reference.blind_spot_conv2d(x.double(), weight.double(), bias.double(), active, 1, slope)
    truth = [out64, *reference.blind_spot_conv2d_backward(grad.double(), x.double(), weight.double(), out64, active,
                                                           1, slope, (True, True, True))]
    errors = {}
    for name in ("vendor", "cuda" if GPU else "cpu"):
        impl, device = IMPLEMENTATIONS[name], "cuda" if name == "cuda" else "cpu"
        args = [t.to(device) for t in (x, weight, bias)]
        out = impl.forward(*args, list(active), 1, slope)
        grads = impl.backward(grad.to(device), args[0], args[1], out64.float().to(device), list(active), 1, slope,
                              [True, True, True])
        errors[name] = [((t.cpu().double() - want).norm() / want.norm()).item() for t, want in zip((out, *grads), truth)]
    ours = errors["cuda" if GPU else "cpu"]
    for what, mine, theirs in zip(("out", "grad_x", "grad_weight", "grad_bias"), ours, errors["vendor"]):
        assert mine <= max(2 * theirs, FP32_ULPS), (what, mine, theirs)


# ---------------------------------------------------------------- the public op


def public_run(backend, device, x, weight, bias, grad=None, **kwargs):
    """[out, grad_x, grad_w, grad_b] of the public op through autograd, back on the CPU (the output
    gradient: ``grad``, or a ramp from -1 to 1)."""
    leaves = [t.to(device).requires_grad_() for t in (x, weight, bias)]
    out = atbsn_kernels.blind_spot_conv2d(*leaves, backend=backend, **kwargs)
    if grad is None:
        grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    out.backward(grad.to(out.device))
    return [t.detach().cpu() for t in [out] + [leaf.grad for leaf in leaves]]


MICROKERNEL_CHECK = """
import torch
from atbsn_kernels import _ext, reference, taps
from atbsn_kernels.ops.blind_spot_conv2d import IMPLEMENTATIONS
print(_ext.cpu_kernel_config()[1])
impl = IMPLEMENTATIONS["cpu"]
g = torch.Generator().manual_seed(0)
cases = [(2, 5, 13, 19, 23, 3, taps.blind_taps(3, 1), 1), (1, 37, 9, 11, 70, 5, taps.SHIFTED_TAPS, 2),
         (3, 8, 20, 7, 5, 9, taps.blind_taps(9, 7), 1)]
cases += [(1, 3, 10, 1, w, 3, taps.blind_taps(3, 1), 1) for w in range(1, 51)]  # every width of a last tile
for n, c, co, h, w, k, active, d in cases:
    x, weight = torch.randn(n, c, h, w, generator=g), torch.randn(co, c, k, k, generator=g) / k
    bias, grad = torch.randn(co, generator=g), torch.randn(n, co, h, w, generator=g)
    out = impl.forward(x, weight, bias, list(active), d, 0.1)
    want = reference.blind_spot_conv2d(x.double(), weight.double(), bias.double(), active, d, 0.1)
    got = [out, *impl.backward(grad, x, weight, out, list(active), d, 0.1, [True, True, True])]
    ref = [want, *reference.blind_spot_conv2d_backward(grad.double(), x.double(), weight.double(), out.double(),
                                                       active, d, 0.1, (True, True, True))]
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.double(), b, atol=1e-4 * max(1.0, float(b.abs().max())), rtol=1e-4)
print("ok")
"""


def run_isolated(env, script=MICROKERNEL_CHECK):
    """Run ``script`` in a fresh process with ``env`` added (the kernels read their settings once)."""
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=300)
    return result


@pytest.mark.parametrize("env,config", [
    ({"ATBSN_CPU_ISA": "avx2"}, "microkernels avx2"),
    ({"ATBSN_CPU_ISA": "generic"}, "GEMMs"),
    ({"ATBSN_L1_BYTES": "8192", "ATBSN_L2_BYTES": "262144"}, "L1 8 KiB, bands of 16Ki"),
], ids=["avx2", "generic", "small-caches"])
def test_cpu_kernels_on_every_isa_and_cache_size(env, config):
    """The AVX2 microkernels, the GEMM path, and the blocking of a machine with small caches (more
    bands and input-channel blocks: odd sizes and channel counts across their edges) give the
    reference's results. (The best ISA of this CPU runs in every other test.)"""
    if env.get("ATBSN_CPU_ISA") == "avx2" and "avx2" not in machine.cpu_isa():
        pytest.xfail("this CPU has no AVX2")
    result = run_isolated(env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert config in result.stdout and result.stdout.strip().endswith("ok")


def test_a_bad_cpu_isa_setting_makes_the_cpu_kernels_unavailable_with_the_reason():
    result = run_isolated({"ATBSN_CPU_ISA": "sse9"}, """
import torch, atbsn_kernels
try:
    atbsn_kernels.blind_spot_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3), backend="cpu")
except atbsn_kernels.BackendUnavailableError as err:
    print(err)
""")
    assert "ATBSN_CPU_ISA must be avx512, avx2 or generic, got 'sse9'" in result.stdout, result.stderr


# ---------------------------------------------------------------- non-finite values


def nonfinite_cases():
    """(id, x, weight) with NaN/inf in an input pixel, in a masked weight tap and in an active one."""
    x, weight, _ = make(n=1, cin=4, cout=4, h=8, w=8, dtype=torch.float32, bias=False)
    cases = []
    for value in (float("nan"), float("inf")):
        pixel = x.clone()
        pixel[0, 1, 3, 4] = value
        cases.append((f"pixel-{value}", pixel, weight))
        masked, active = weight.clone(), weight.clone()
        masked[2, 1, 1, 1] = value  # the centre tap: masked at blind 1
        active[2, 1, 0, 0] = value
        cases += [(f"masked-weight-{value}", x, masked), (f"active-weight-{value}", x, active)]
    return cases


def nonfinite_grads(pair, x, weight):
    """[out, grad_x, grad_w, grad_b] of the public op (blind 1, LeakyReLU 0.1) from a gradient of ones."""
    return public_run(*pair, x, weight, torch.zeros(4), blind=1, negative_slope=0.1, grad=torch.ones(1, 4, 8, 8))


@pytest.mark.parametrize("case", nonfinite_cases(), ids=lambda c: c[0])
def test_nonfinite_values_follow_the_contract(pair, case):
    """Masked taps are never read; NaN/inf at active taps propagate as in F.conv2d: every backend
    gives the reference's NaN and inf positions, in the output and in every gradient."""
    name, x, weight = case
    ours, want = nonfinite_grads(pair, x, weight), nonfinite_grads(("reference", "cpu"), x, weight)
    for got, ref in zip(ours, want):
        assert torch.equal(torch.isnan(got), torch.isnan(ref)) and torch.equal(torch.isinf(got), torch.isinf(ref))
    if "masked-weight" in name:
        assert torch.isfinite(ours[0]).all(), "a NaN or inf in a masked tap must not reach the output"
    if "pixel" in name:
        assert torch.isfinite(ours[0][0, :, 3, 4]).all(), "the pixel under the blind spot must not reach itself"
        assert not torch.isfinite(ours[0]).all()


def test_nonfinite_input_gradient_at_the_border_follows_f_conv2d():
    """F.conv2d's input gradient sums over existing outputs only: a NaN corner weight leaves the
    last row and column of grad_x finite. The reference agrees (and so, by the test above, every backend)."""
    x, weight, _ = make(n=1, cin=1, cout=1, h=4, w=4, dtype=torch.float32, bias=False)
    weight[0, 0, 0, 0] = float("nan")
    leaf = x.clone().requires_grad_()
    torch.nn.functional.conv2d(leaf, weight, padding=1).backward(torch.ones(1, 1, 4, 4))
    ours = reference.blind_spot_conv2d_backward(torch.ones(1, 1, 4, 4), x, weight, torch.ones(1, 1, 4, 4),
                                                taps.blind_taps(3, 0), 1, None, (True, False, False))[0]
    assert torch.equal(torch.isnan(ours), torch.isnan(leaf.grad))
    assert torch.isfinite(ours[0, 0, -1]).all() and torch.isfinite(ours[0, 0, :, -1]).all()


CASES = [
    dict(k=3, blind=1),
    dict(k=3, blind=0, negative_slope=0.1),
    dict(k=5, blind=3, dilation=2, negative_slope=0.1),
    dict(k=5, mask="x", h=5, w=9),
    dict(k=3, blind=3),
    dict(k=1, blind=0, h=1, w=1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_public_op_matches_reference_through_autograd(pair, case):
    case = dict(case)
    k, h, w = case.pop("k"), case.pop("h", 7), case.pop("w", 6)
    if case.get("mask") == "x":
        case["mask"] = torch.eye(5, dtype=torch.bool) | torch.eye(5, dtype=torch.bool).flip(1)
    x, weight, bias = make(k=k, h=h, w=w)
    ours = public_run(*pair, x, weight, bias, **case)
    want = public_run("reference", "cpu", x, weight, bias, **case)
    for got, ref in zip(ours, want):
        assert_close(got, ref, torch.float64)


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu"])
def test_gradcheck_float64(backend):
    x, weight, bias = make(n=1, cin=2, cout=2, h=5, w=4)
    leaves = [t.requires_grad_() for t in (x, weight, bias)]

    def fn(a, b, c):
        return atbsn_kernels.blind_spot_conv2d(a, b, c, blind=1, dilation=2, negative_slope=0.2, backend=backend)

    assert torch.autograd.gradcheck(fn, leaves)


def test_public_op_runs_the_requested_backend(monkeypatch):
    x, w = torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3)
    assert_public_op_runs_the_requested_backend(
        monkeypatch, IMPLEMENTATIONS, lambda backend: atbsn_kernels.blind_spot_conv2d(x, w, backend=backend))


def test_env_var_replaces_auto(monkeypatch):
    monkeypatch.setenv("ATBSN_BACKEND", "vendor")
    seen = []
    vendor = IMPLEMENTATIONS["vendor"]
    forward = vendor.forward
    monkeypatch.setattr(vendor, "_pair", (lambda *a: seen.append(1) or forward(*a), vendor.backward))
    atbsn_kernels.blind_spot_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3))
    assert seen == [1]


def test_cuda_backend_refuses_float64():
    assert_cuda_refuses_float64(IMPLEMENTATIONS)


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
    (dict(backend="gpu"), ValueError, "backend must be one of"),
]


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
@pytest.mark.parametrize("kwargs,error,match", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(backend, kwargs, error, match):
    x, weight, bias = make(dtype=torch.float32)
    with pytest.raises(error, match=match):
        atbsn_kernels.blind_spot_conv2d(x, weight, bias, **{"backend": backend, **kwargs})


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_bad_tensors_raise_clear_errors(backend):
    x, weight, bias = make(dtype=torch.float32)
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
            atbsn_kernels.blind_spot_conv2d(*args, backend=backend)


def test_unavailable_backend_says_why():
    with pytest.raises(atbsn_kernels.BackendUnavailableError, match="CUDA tensors|torch.cuda.is_available"):
        atbsn_kernels.blind_spot_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3), backend="cuda")


# ---------------------------------------------------------------- registration and compilation



def opcheck_samples(device="cpu"):
    x, weight, bias = (t.to(device) for t in make(n=1, cin=2, cout=3, h=5, w=4, dtype=torch.float32))
    active = list(taps.blind_taps(3, 1))
    return [
        (x, weight, bias, active, 1, 0.1),
        (x, weight, None, active, 2, None),
        (x.to(memory_format=torch.channels_last), weight, bias, [0, 4, 8], 1, None),
    ]


def _grad(t):
    return None if t is None else t.clone().requires_grad_()


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_opcheck_dispatch_ops(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    utils = {"test_utils": TRITON_OPCHECK_UTILS} if backend == "triton" else {}
    for x, weight, bias, active, dilation, slope in opcheck_samples(device):
        args = (_grad(x), _grad(weight), _grad(bias), active, dilation, slope, backend)
        torch.library.opcheck(_dispatch, args, **utils)
        out = reference.blind_spot_conv2d(x, weight, bias, active, dilation, slope)
        for output_mask in ([True, True, bias is not None], [False, True, False], [True, False, False]):
            args = (torch.randn_like(out), x, weight, out, active, dilation, slope, output_mask, backend)
            torch.library.opcheck(_dispatch_backward, args, **utils)


@pytest.mark.parametrize("kind", ["cpp", "triton"])
def test_opcheck_kernel_ops(kind):
    name = "cpu" if kind == "cpp" else "triton"
    forward, backward = IMPLEMENTATIONS[name].forward, IMPLEMENTATIONS[name].backward
    device = "cpu" if kind == "cpp" else TRITON_DEVICE
    utils = {"test_utils": TRITON_OPCHECK_UTILS} if kind == "triton" else {}
    for x, weight, bias, active, dilation, slope in opcheck_samples(device):
        torch.library.opcheck(forward, (_grad(x), _grad(weight), _grad(bias), active, dilation, slope), **utils)
    x, weight, bias, active, dilation, slope = opcheck_samples(device)[0]
    out = reference.blind_spot_conv2d(x, weight, bias, active, dilation, slope)
    for output_mask in ([True, True, True], [False, True, False], [True, False, False]):
        torch.library.opcheck(backward, (torch.randn_like(out), x, weight, out, active, dilation, slope, output_mask),
                              **utils)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["cpu", "auto"])
def test_torch_compile_fullgraph(backend, monkeypatch):
    monkeypatch.setenv("ATBSN_AUTOTUNE", "1")  # under compile "auto" still measures, when the op runs
    x, weight, bias = make(dtype=torch.float32)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]

    def step(a, b, c):
        return atbsn_kernels.blind_spot_conv2d(a, b, c, blind=1, negative_slope=0.1, backend=backend).square().mean()

    torch._dynamo.reset()
    loss = torch.compile(step, fullgraph=True)(*leaves)
    loss.backward()
    expected_loss = step(*(t.detach().clone().requires_grad_() for t in (x, weight, bias)))
    torch.testing.assert_close(loss, expected_loss)
    assert leaves[1].grad is not None and torch.all(leaves[1].grad[:, :, 1, 1] == 0)


# ---------------------------------------------------------------- Triton specifics


def test_triton_fp32_precision_follows_cudnn_convolutions():
    assert triton_kernels._dot_precision(torch.float32) == "ieee"  # set by the exact_fp32 fixture in conftest.py
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    assert triton_kernels._dot_precision(torch.float32) == "tf32"
    assert triton_kernels._dot_precision(torch.float16) == triton_kernels._dot_precision(torch.float64) == "ieee"


def compile_key(kernel, args, kwargs):
    """What Triton compiles a launch for: constexprs, dtypes, alignments and specialised ints."""
    params = list(inspect.signature(kernel.fn).parameters)
    not_specialised = getattr(kernel, "do_not_specialize", None) or kernel.kwargs["do_not_specialize"]
    key = [(name, v) for name, v in sorted(kwargs.items()) if name not in ("grid", "warmup")]
    for name, value in zip(params, args):
        if isinstance(value, torch.Tensor):
            key.append((name, value.dtype, value.data_ptr() % 16 == 0))
        elif isinstance(value, int) and name not in not_specialised:
            key.append((name, value == 1, value % 16 == 0))
        else:
            key.append((name, type(value)))
    return tuple(key)


def test_triton_new_tap_set_reuses_the_compiled_kernels(monkeypatch):
    """The taps arrive as a runtime int32 table and T is not specialised on (not even T == 1 or
    T % 16 == 0): tap sets of 24, 16 and 1 taps launch the very same compiled kernels."""
    for kernel in (triton_kernels._conv_kernel, triton_kernels._weight_grad_kernel):
        params = inspect.signature(kernel.fn).parameters
        assert params["T"].annotation is inspect.Parameter.empty and "taps_ptr" in params
    launches = {triton_kernels._conv_kernel: [], triton_kernels._weight_grad_kernel: []}
    for kernel, keys in launches.items():
        run = kernel.run
        monkeypatch.setattr(kernel, "run", lambda *a, _run=run, _keys=keys, _k=kernel, **kw: (
            _keys.append(compile_key(_k, a, kw)), _run(*a, **kw))[1])
    x, weight, bias = (t.to(TRITON_DEVICE) for t in make(n=1, h=6, w=6, k=5, dtype=torch.float32))
    grad = torch.ones(1, 4, 6, 6, device=TRITON_DEVICE)
    for mask in (taps.blind_spot_mask(5, 1), taps.blind_spot_mask(5, 3), masks(5)[-2][1]):
        active = taps.active_taps(mask)
        out = triton_kernels.forward(x, weight, bias, active, 1, 0.1)
        triton_kernels.backward(grad, x, weight, out, active, 1, 0.1, (True, True, True))
    assert len(launches[triton_kernels._conv_kernel]) == 6 and len(launches[triton_kernels._weight_grad_kernel]) == 3
    for keys in launches.values():
        per_pass = len(keys) // 3
        assert keys[:per_pass] == keys[per_pass:2 * per_pass] == keys[2 * per_pass:]


@pytest.mark.parametrize("programs", [1, 16, 64])
def test_triton_weight_gradient_is_the_same_sum_for_any_number_of_pixel_splits(monkeypatch, programs):
    """The weight gradient stores one partial sum per split of the pixels (no atomics) and sums them
    in a fixed order: 1 split, a few, and one per pixel block all give the reference's gradients."""
    monkeypatch.setattr(triton_kernels, "_target_programs", lambda device: programs)
    x, weight, bias = (t.to(TRITON_DEVICE) for t in make(n=2, cin=5, cout=6, h=16, w=16, dtype=torch.float32))
    active = taps.active_taps(taps.blind_spot_mask(3, 1))
    splits = triton_kernels.pixel_splits(2 * 16 * 16, len(active), x.device)
    assert splits == min(4, max(1, -(-programs // len(active))))
    grad = random_grad(x, 6).to(TRITON_DEVICE)
    out = triton_kernels.forward(x, weight, bias, active, 1, 0.1)
    got = triton_kernels.backward(grad, x, weight, out, active, 1, 0.1, (False, True, True))[1:]
    want = reference.blind_spot_conv2d_backward(grad.double(), x.double(), weight.double(), out.double(), active, 1,
                                                0.1, (False, True, True))[1:]
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.to(g.device), atol=1e-4, rtol=1e-4)
    assert bool((got[0].flatten(2)[:, :, [4]] == 0).all())  # the masked centre tap


def test_triton_launches_run_on_their_tensors_device(monkeypatch):
    """Triton launches on the current GPU: every launcher makes its input's device current."""
    seen = []
    original = triton_kernels.on_device
    monkeypatch.setattr(triton_kernels, "on_device", lambda t: (seen.append(t.device), original(t))[1])
    x, weight, bias = (t.to(TRITON_DEVICE) for t in make(n=1, h=5, w=5, dtype=torch.float32))
    active = taps.active_taps(taps.blind_spot_mask(3, 1))
    out = triton_kernels.forward(x, weight, bias, active, 1, None)
    triton_kernels.backward(torch.ones_like(out), x, weight, out, active, 1, None, (True, True, True))
    assert seen == [x.device] * 3  # forward, grad-input, grad-weight


# ---------------------------------------------------------------- the vendor backend's NaN guard


@pytest.mark.parametrize("height,offsets,step", [(8, (-1, 0, 1), 3), (1, (-1, 0, 1), 1), (2, (-1, 0, 1), 2),
                                                 (9, (-2, 0, 2), 1), (12, (-4, -2, 0), 1), (7, (-2, -1, 0, 1, 2), 5)])
def test_vendor_guard_rows(height, offsets, step):
    """Every input row has an output row of its footprint on the guard's stride."""
    assert vendor._guard_rows(height, offsets) == step
    for p in range(height):
        assert any(0 <= p - a < height and (p - a) % step == 0 for a in offsets)


@pytest.mark.parametrize("k,blind,dilation,mask", [(3, 1, 1, None), (5, 3, 1, None), (3, 0, 2, None),
                                                   (5, 1, 1, taps.taps_to_mask(taps.SHIFTED_TAPS, 5))],
                         ids=["3x3", "5x5b3", "3x3d2", "shifted"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_vendor_finds_a_nonfinite_pixel_in_every_row(k, blind, dilation, mask, value):
    """The strided output check (every s-th row of output channel 0) still sees a non-finite input
    pixel in any row (and column) of another input channel and hands the call to the reference, so
    the vendor's NaN/inf positions are the reference's."""
    x, weight, bias = make(n=1, cin=2, cout=3, h=9, w=7, k=k, dtype=torch.float32)
    for row in range(9):
        bad = x.clone()
        bad[0, 1, row, (3 * row) % 7] = value
        kwargs = dict(blind=blind, dilation=dilation) if mask is None else dict(mask=mask)
        got = atbsn_kernels.blind_spot_conv2d(bad, weight, bias, backend="vendor", **kwargs)
        want = atbsn_kernels.blind_spot_conv2d(bad, weight, bias, backend="reference", **kwargs)
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf()), row


def test_vendor_backward_takes_the_bias_gradient_as_its_guard():
    """A NaN in the output gradient where only masked taps read it: the vendor backward's input
    gradient follows the contract (the reference's NaN positions), with and without a bias."""
    x, weight, bias = make(n=1, cin=2, cout=2, h=6, w=6, dtype=torch.float32)
    grad = torch.ones(1, 2, 6, 6)
    grad[0, 0, 2, 3] = float("nan")
    for b in (bias, None):
        got = vendor.conv_backward(grad, x, weight, x.new_empty(0), taps.blind_taps(3, 1), 1, None,
                                   (True, True, b is not None))
        want = reference.blind_spot_conv2d_backward(grad, x, weight, x.new_empty(0), taps.blind_taps(3, 1), 1, None,
                                                    (True, True, b is not None))
        assert torch.equal(got[0].isnan(), want[0].isnan())
