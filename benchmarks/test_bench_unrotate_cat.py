"""``unrotate_cat`` forward + backward against what the official AT-BSN code runs (pad-and-crop
shift, ``transpose``/``flip`` per turn, ``torch.cat``, with autograd), timed interleaved at
AT-BSN's head input: batch 4 in four turns (16 x 96 channels) at 128 x 128, hole 9 (shift 5)."""

import torch
from bench_compare import Provider
from bench_device import device, kernel_backends

from atbsn_kernels import unrotate_cat, vendor

# bench size -> (batch of turns, channels, side)
SHAPES = {"smoke": (8, 4, 16), "quick": (16, 96, 128), "full": (16, 96, 128)}
SHIFT = 5  # hole 9


def test_unrotate_cat_fwd_bwd(compare, bench_size):
    b, c, side = SHAPES[bench_size]
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(b, c, side, side, generator=gen).to(device()).requires_grad_()
    grad = torch.randn(b // 4, 4 * c, side, side, generator=gen).to(device())
    # compulsory fp32 traffic: each pass reads one tensor of this size and writes one
    work = {"bytes": 4 * 4 * features.numel()}

    def step(op):
        def run():
            features.grad = None
            op(features).backward(grad)
            if features.is_cuda:
                torch.cuda.synchronize()

        return run

    providers = {"reference": Provider(step(lambda f: vendor.unrotate_cat_forward(f, SHIFT)), "reference", work)}
    providers.update({name: Provider(step(lambda f, name=name: unrotate_cat(f, SHIFT, backend=name)), "fast", work)
                      for name in ("auto", "vendor", *kernel_backends())})
    compare(f"unrotate_cat fwd+bwd {b}x{c}x{side}x{side} shift {SHIFT}", providers, op="unrotate_cat",
            **{"pass": "fwd+bwd"}, channels=c, side=side, batch=b)
