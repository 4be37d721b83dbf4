"""``shifted_conv2d`` (AT-BSN's half-plane 3x3 conv with fused bias and LeakyReLU) forward and
forward + backward against ``reference.shifted_conv2d``, the official pad-conv-crop, timed
interleaved at AT-BSN's full-resolution layer shapes: batch 4 in four rotations (16 images) at
128 x 128, the encoder's 48 -> 48 conv and the last decoder's 99 -> 96 conv (96 features + the
3-channel image)."""

from __future__ import annotations

import pytest
from bench_compare import Provider
from bench_conv import PASSES, conv_step, conv_tensors, conv_work
from bench_device import device, kernel_backends

from atbsn_kernels import reference, shifted_conv2d

SLOPE = 0.1  # the official LeakyReLU
TAPS = 9  # every provider multiplies the 3x3 taps only
CHANNELS = [(48, 48), (99, 96)]
# bench size -> (images, side, channel divisor)
SCALE = {"smoke": (2, 16, 12), "quick": (16, 128, 1), "full": (16, 128, 1)}


def ours(backend: str):
    return lambda x, w, b: shifted_conv2d(x, w, b, negative_slope=SLOPE, backend=backend)


@pytest.mark.parametrize("cin,cout", CHANNELS, ids=[f"c{i}to{o}" for i, o in CHANNELS])
@pytest.mark.parametrize("pass_", PASSES, ids=[p.replace("+", "_") for p in PASSES])
def test_shifted_conv2d(compare, bench_size, cin, cout, pass_):
    n, side, divisor = SCALE[bench_size]
    cin, cout = cin // divisor, cout // divisor
    x, weight, bias, grad = conv_tensors(n, cin, cout, side, 3, grad=pass_ == "fwd+bwd", device=device())
    work = conv_work(n, cin, cout, side, TAPS, pass_)

    def step(conv):
        return conv_step(conv, x, weight, bias, grad, pass_)

    providers = {"official pad+conv+crop": Provider(step(lambda a, w, b: reference.shifted_conv2d(a, w, b, SLOPE)),
                                                    "reference", work)}
    providers.update({name: Provider(step(ours(name)), "fast", work) for name in ("auto", "vendor", *kernel_backends())})
    compare(f"shifted_conv2d {pass_} {n}x{cin}x{side}x{side} -> {cout}", providers, op="shifted_conv2d", **{"pass": pass_},
            channels=cin, side=side, batch=n)
