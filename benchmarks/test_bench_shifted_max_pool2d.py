"""``shifted_max_pool2d`` forward + backward against the reference (shift down one row with
``F.pad`` and crop, then ``F.max_pool2d``, as the official AT-BSN does), timed interleaved at an
AT-BSN trunk shape: batch 4 in four rotations (16 images) x 48 channels at 128 x 128."""

import torch
from bench_compare import Provider
from bench_device import device, kernel_backends

from atbsn_kernels import reference, shifted_max_pool2d

# bench size -> (batch, channels, side)
SHAPES = {"smoke": (2, 4, 16), "quick": (16, 48, 128), "full": (16, 48, 128)}


def test_shifted_max_pool2d_fwd_bwd(compare, bench_size):
    n, c, side = SHAPES[bench_size]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, side, side, generator=gen).to(device()).requires_grad_()
    grad = torch.randn(n, c, side // 2, side // 2, generator=gen).to(device())
    # compulsory fp32 traffic: forward reads x and writes y (x / 4), backward reads grad-y and writes grad-x
    work = {"bytes": 4 * x.numel() * 5 // 2}

    def step(pool):
        def run():
            x.grad = None
            pool(x).backward(grad)
            if x.is_cuda:
                torch.cuda.synchronize()

        return run

    providers = {"reference": Provider(step(reference.shifted_max_pool2d), "reference", work)}
    providers.update({name: Provider(step(lambda t, b=name: shifted_max_pool2d(t, backend=b)), "fast", work)
                      for name in ("auto", "vendor", *kernel_backends())})
    compare(f"shifted_max_pool2d fwd+bwd {n}x{c}x{side}x{side}", providers, op="shifted_max_pool2d", **{"pass": "fwd+bwd"},
            channels=c, side=side, batch=n)
