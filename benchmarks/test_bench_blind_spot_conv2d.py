"""``blind_spot_conv2d`` forward+backward against ``F.conv2d(x, weight * mask)`` (the reference
masked conv every public BSN uses) and unmasked ``F.conv2d`` (the floor), on real layer shapes:
AT-BSN (48 channels) and AP-BSN (128 channels), batch 4 at 128 x 128."""

import functools

import pytest
import torch
import torch.nn.functional as F

from atbsn_kernels import blind_spot_conv2d, reference

LAYERS = [(3, 1), (5, 3), (9, 7)]
# bench size -> (batch, height = width, channel divisor)
SHAPES = {"smoke": (1, 8, 16), "quick": (4, 128, 1), "full": (4, 128, 1)}


def fast_backends():
    return ["triton", "cuda"] if torch.cuda.is_available() else ["cpu"]


def make_problem(bench_size, channels, k, device):
    n, hw, divisor = SHAPES[bench_size]
    c = channels // divisor
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, hw, hw, generator=g).to(device).requires_grad_()
    weight = (torch.randn(c, c, k, k, generator=g) * 0.05).to(device).requires_grad_()
    bias = torch.zeros(c, device=device, requires_grad=True)
    return x, weight, bias, f"{n}x{c}x{hw}x{hw}"


def provider_conv(provider, k, blind, device):
    """conv(x, weight, bias) as the provider computes it."""
    if provider == "reference":
        mask = reference.blind_spot_mask(k, blind, device=device)
        return lambda x, w, b: reference.blind_spot_conv2d(x, w, b, mask)
    if provider == "unmasked":
        return functools.partial(F.conv2d, padding=k // 2)
    return functools.partial(blind_spot_conv2d, blind=blind, backend=provider)


def fwd_bwd(conv, x, weight, bias):
    """One training-style step of a conv: forward, then backward into all three inputs."""

    def step():
        for t in (x, weight, bias):
            t.grad = None
        conv(x, weight, bias).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    return step


@pytest.mark.parametrize("provider", ["reference", "unmasked", *fast_backends()])
@pytest.mark.parametrize("channels", [48, 128])
@pytest.mark.parametrize("k,blind", LAYERS, ids=[f"k{k}b{b}" for k, b in LAYERS])
def test_blind_spot_conv2d_fwd_bwd(timed, benchmark, bench_size, provider, channels, k, blind):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, weight, bias, shape = make_problem(bench_size, channels, k, device)
    benchmark.group = f"blind_spot_conv2d fwd+bwd {shape} k={k} b={blind}"
    step = fwd_bwd(provider_conv(provider, k, blind, device), x, weight, bias)
    timed(step, provider, reference=provider == "reference")
