"""``shifted_max_pool2d`` forward+backward against the reference (shift down one row with ``F.pad``
and crop, then ``F.max_pool2d``, as the official AT-BSN does), at an AT-BSN trunk shape: batch 4
in four rotations (16 images) x 48 channels at 128 x 128."""

import pytest
import torch

from atbsn_kernels import reference, shifted_max_pool2d

# bench size -> (batch, channels, side)
SHAPES = {"smoke": (2, 4, 16), "quick": (16, 48, 128), "full": (16, 48, 128)}


def fast_backends():
    return ["triton", "cuda"] if torch.cuda.is_available() else ["cpu"]


def provider_pool(provider):
    """pool(x) as the provider computes it."""
    if provider == "reference":
        return reference.shifted_max_pool2d
    return lambda x: shifted_max_pool2d(x, backend=provider)


@pytest.mark.parametrize("provider", ["reference", *fast_backends()])
def test_shifted_max_pool2d_fwd_bwd(timed, benchmark, bench_size, provider):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n, c, side = SHAPES[bench_size]
    x = torch.randn(n, c, side, side, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
    benchmark.group = f"shifted_max_pool2d fwd+bwd {n}x{c}x{side}x{side}"
    # compulsory fp32 traffic: forward reads x and writes y (x / 4), backward reads grad-y and writes grad-x
    benchmark.extra_info.update({"op": "shifted_max_pool2d", "pass": "fwd+bwd", "channels": c, "side": side,
                                 "batch": n, "bytes": 4 * x.numel() * 5 // 2})
    pool = provider_pool(provider)

    def step():
        x.grad = None
        pool(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    timed(step, provider, reference=provider == "reference")
