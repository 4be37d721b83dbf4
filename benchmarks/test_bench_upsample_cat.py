"""``upsample_cat`` forward + backward against what the official AT-BSN code runs,
``torch.cat((F.interpolate(x, scale_factor=2), skip), 1)`` with autograd, timed interleaved at
AT-BSN's two largest decoder inputs (batch 4 in four rotations: 16 images): ``dec1`` (96 upsampled
channels beside the 3-channel image at 128 x 128) and ``dec2`` (96 beside 48 at 64 x 64)."""

import pytest
import torch
import torch.nn.functional as F
from bench_compare import Provider
from bench_device import device, kernel_backends

from atbsn_kernels import upsample_cat

# bench size -> layer -> (batch, upsampled channels, skip channels, output side)
SHAPES = {
    "smoke": {"dec1": (2, 4, 3, 16), "dec2": (2, 4, 2, 8)},
    "quick": {"dec1": (16, 96, 3, 128), "dec2": (16, 96, 48, 64)},
    "full": {"dec1": (16, 96, 3, 128), "dec2": (16, 96, 48, 64)},
}
LAYERS = ("dec1", "dec2")


def _official(x, skip):
    return torch.cat((F.interpolate(x, scale_factor=2, mode="nearest"), skip), 1)


@pytest.mark.parametrize("layer", LAYERS)
def test_upsample_cat_fwd_bwd(compare, bench_size, layer):
    n, cx, cs, side = SHAPES[bench_size][layer]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, cx, side // 2, side // 2, generator=gen).to(device()).requires_grad_()
    skip = torch.randn(n, cs, side, side, generator=gen).to(device()).requires_grad_()
    grad = torch.randn(n, cx + cs, side, side, generator=gen).to(device())
    # compulsory fp32 traffic: forward reads x, skip and writes the output; backward reads its
    # gradient and writes grad-x and grad-skip
    work = {"bytes": 4 * (2 * x.numel() + 2 * skip.numel() + 2 * grad.numel())}

    def step(op):
        def run():
            x.grad = skip.grad = None
            op(x, skip).backward(grad)
            if x.is_cuda:
                torch.cuda.synchronize()

        return run

    providers = {"reference": Provider(step(_official), "reference", work)}
    providers.update({name: Provider(step(lambda a, b, name=name: upsample_cat(a, b, backend=name)), "fast", work)
                      for name in ("auto", "vendor", *kernel_backends())})
    compare(f"upsample_cat fwd+bwd {layer} {n}x({cx}+{cs})x{side}x{side}", providers, op="upsample_cat",
            **{"pass": "fwd+bwd"}, channels=cx + cs, side=side, batch=n)
