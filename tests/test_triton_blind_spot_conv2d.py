"""Triton launchers of the blind-spot conv (``atbsn_kernels.triton.blind_spot_conv2d``) against the
plain-PyTorch reference: forward and all three gradients over kernel sizes, blind sizes, irregular
masks, dilations, odd sizes, empty batches, bias, activation, dtypes, layouts and gradient subsets.
Runs in the Triton interpreter on CPU tensors unless a CUDA GPU is present."""

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import inspect  # noqa: E402
import itertools  # noqa: E402

import pytest  # noqa: E402

from atbsn_kernels import reference  # noqa: E402
from atbsn_kernels.triton import blind_spot_conv2d as kernels  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Relative to the largest |value| of the expected tensor (at least 1). Half types are compared with
# the reference computed in fp32 on the same rounded inputs, so only the kernels' roundings count.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def make(n=2, cin=3, cout=4, h=7, w=6, k=3, dtype=torch.float32, bias=True, seed=0):
    """(x ``[n, cin, h, w]``, weight ``[cout, cin, k, k]``, bias ``[cout]`` or None), rounded to dtype."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g).to(dtype)
    weight = (torch.randn(cout, cin, k, k, generator=g) / k).to(dtype)
    b = torch.randn(cout, generator=g).to(dtype) if bias else None
    return x, weight, b


def reference_run(x, weight, bias, mask, dilation, slope, grad):
    """[out, grad_x, grad_w, grad_b] of the reference via autograd, in fp32 (fp64 for fp64)."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    leaves = [None if t is None else t.detach().to(dtype).requires_grad_() for t in (x, weight, bias)]
    out = reference.blind_spot_conv2d(*leaves, mask, dilation, slope)
    out.backward(grad.to(dtype))
    return [out.detach()] + [None if t is None else t.grad for t in leaves]


def triton_run(x, weight, bias, mask, dilation, slope, grad, output_mask):
    """[out, grad_x, grad_w, grad_b] of the Triton launchers on DEVICE, back on the CPU."""
    taps = reference.active_taps(mask)
    x, weight, grad = (t.to(DEVICE) for t in (x, weight, grad))
    bias = None if bias is None else bias.to(DEVICE)
    out = kernels.forward(x, weight, bias, taps, dilation, slope)
    grads = kernels.backward(grad, x, weight, out, taps, dilation, slope, output_mask)
    return [t.cpu() for t in (out, *grads)]


def check(x, weight, bias, mask, dilation=1, slope=0.1, output_mask=None, channels_last=False):
    """Run both, compare every requested result; returns the Triton results."""
    output_mask = output_mask or (True, True, bias is not None)
    n, _, h, w = x.shape
    grad = torch.randn(n, weight.shape[0], h, w, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    if channels_last:
        x, grad = (t.to(memory_format=torch.channels_last) for t in (x, grad))
    expected = reference_run(x, weight, bias, mask, dilation, slope, grad)
    ours = triton_run(x, weight, bias, mask, dilation, slope, grad, output_mask)
    tol = TOLERANCES[x.dtype]
    for got, want, wanted, like in zip(ours, expected, (True, *output_mask), (x, x, weight, bias)):
        if not wanted:
            assert got.numel() == 0
            continue
        assert got.dtype == like.dtype and got.shape == want.shape and got.is_contiguous()
        scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
        torch.testing.assert_close(got.to(want.dtype), want, atol=tol * scale, rtol=tol)
    if output_mask[1]:
        assert torch.all(ours[2][:, :, mask] == 0), "masked taps must get exactly zero weight gradient"
    return ours


def blind_sizes(k):
    return sorted({b for b in (0, 1, 3, k) if b <= k})


@pytest.mark.parametrize("k,blind", [(k, b) for k in (1, 3, 5, 9, 11) for b in blind_sizes(k)])
def test_kernel_and_blind_sizes(k, blind):
    check(*make(h=9, w=7, k=k), reference.blind_spot_mask(k, blind))


def irregular_masks(k):
    eye = torch.eye(k, dtype=torch.bool)
    plus = torch.zeros(k, k, dtype=torch.bool)
    plus[k // 2, :] = plus[:, k // 2] = True
    single = ~torch.zeros(k, k, dtype=torch.bool)
    single[0, k - 1] = False
    random = torch.rand(k, k, generator=torch.Generator().manual_seed(k)) < 0.4
    return {"x": eye | eye.flip(1), "plus": plus, "one_tap": single, "random": random}


@pytest.mark.parametrize("name", ["x", "plus", "one_tap", "random"])
@pytest.mark.parametrize("k", [3, 5])
def test_irregular_masks(k, name):
    check(*make(k=k), irregular_masks(k)[name], dilation=2)


def test_all_taps_masked_gives_bias_only():
    x, weight, bias = make()
    mask = reference.blind_spot_mask(3, 3)
    ours = check(x, weight, bias, mask, slope=0.1)
    expected = torch.nn.functional.leaky_relu(bias, 0.1).view(1, -1, 1, 1).expand_as(ours[0])
    torch.testing.assert_close(ours[0], expected)
    assert torch.all(ours[1] == 0) and torch.all(ours[2] == 0)
    ours = check(x, weight, None, mask, slope=None)
    assert torch.all(ours[0] == 0)


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("h,w", [(5, 7), (1, 1), (2, 9)])
def test_dilation_and_odd_sizes(dilation, h, w):
    check(*make(h=h, w=w, k=5), reference.blind_spot_mask(5, 3), dilation=dilation)


@pytest.mark.parametrize("has_bias", [True, False])
@pytest.mark.parametrize("slope", [None, 0.0, 0.1])
def test_bias_and_activation(has_bias, slope):
    check(*make(bias=has_bias), reference.blind_spot_mask(3, 1), slope=slope)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_layouts(dtype, channels_last):
    check(*make(cin=6, h=8, w=7, dtype=dtype), reference.blind_spot_mask(3, 1), dilation=2,
          channels_last=channels_last)


@pytest.mark.parametrize("output_mask", list(itertools.product([True, False], repeat=3)))
def test_gradient_subsets(output_mask):
    check(*make(n=1, h=6, w=5), reference.blind_spot_mask(3, 1), output_mask=output_mask)


def test_empty_batch():
    x, weight, bias = make(n=0)
    ours = check(x, weight, bias, reference.blind_spot_mask(3, 1))
    assert ours[0].shape == (0, 4, 7, 6) and torch.all(ours[2] == 0) and torch.all(ours[3] == 0)


def test_several_pixel_tiles_channel_blocks_and_pixel_splits():
    # 578 pixels: several pixel tiles and split-K programs; 70 channels: several channel blocks.
    check(*make(n=2, cin=4, cout=5, h=17, w=17, k=1), reference.blind_spot_mask(1, 0))
    check(*make(n=2, cin=4, cout=5, h=17, w=17, k=3), reference.blind_spot_mask(3, 1), dilation=2)
    check(*make(n=1, cin=70, cout=70, h=4, w=5, k=3), reference.blind_spot_mask(3, 1))


def test_fp32_precision_follows_cudnn_convolutions():
    assert kernels._dot_precision(torch.float32) == "ieee"  # set by the exact_fp32 fixture in conftest.py
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    assert kernels._dot_precision(torch.float32) == "tf32"
    assert kernels._dot_precision(torch.float16) == kernels._dot_precision(torch.float64) == "ieee"


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


def recording(kernel, keys):
    """A ``kernel.run`` that appends the compile key of every launch to ``keys``."""
    run = kernel.run

    def spy(*args, **kwargs):
        keys.append(compile_key(kernel, args, kwargs))
        return run(*args, **kwargs)

    return spy


def compiled_count(kernel):
    return sum(len(cache[0]) for cache in kernel.device_caches.values()) if hasattr(kernel, "device_caches") else 0


def test_new_tap_set_reuses_the_compiled_kernels(monkeypatch):
    # The taps arrive as a runtime int32 table and T is not specialised on (not even T == 1 or
    # T % 16 == 0): tap sets of 24, 16 and 1 taps launch the very same compiled kernels.
    launches = {kernels._conv_kernel: [], kernels._weight_grad_kernel: []}
    for kernel, keys in launches.items():
        monkeypatch.setattr(kernel, "run", recording(kernel, keys))
    x, weight, bias = (t.to(DEVICE) for t in make(n=1, h=6, w=6, k=5))
    grad = torch.ones(1, 4, 6, 6, device=DEVICE)
    counts = []
    for mask in (reference.blind_spot_mask(5, 1), reference.blind_spot_mask(5, 3), irregular_masks(5)["one_tap"]):
        taps = reference.active_taps(mask)
        out = kernels.forward(x, weight, bias, taps, 1, 0.1)
        kernels.backward(grad, x, weight, out, taps, 1, 0.1, (True, True, True))
        counts.append(sum(compiled_count(k) for k in launches))
    assert len(launches[kernels._conv_kernel]) == 6 and len(launches[kernels._weight_grad_kernel]) == 3
    for keys in launches.values():
        per_pass = len(keys) // 3
        assert keys[:per_pass] == keys[per_pass:2 * per_pass] == keys[2 * per_pass:]
    assert counts[0] == counts[1] == counts[2]
