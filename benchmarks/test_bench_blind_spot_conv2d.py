"""``blind_spot_conv2d`` against ``F.conv2d(x, weight * mask)`` (the reference masked conv every
public BSN uses) and unmasked ``F.conv2d`` (the floor), batch 4 at 128 x 128 unless swept.

Real layers (AT-BSN width 48, AP-BSN width 128; 3x3 b1 is AP-BSN's masked conv) are timed
forward and forward + backward. Forward-only sweeps, one parameter at a time from a base layer,
feed the report's plots: blind size on a 7x7 kernel, dilation (AP-BSN's PD by dilation), channels
and resolution. Test ids read ``<pass>-k<k>b<blind>d<dilation>-c<channels>-s<side>``, so
``-k "blind_spot_conv2d and forward and s256"`` picks points out.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import pytest
import torch.nn.functional as F
from bench_conv import conv_step, conv_tensors, conv_work
from bench_device import device, fast_backends

from atbsn_kernels import blind_spot_conv2d, reference

# bench size -> (batch, side divisor, channel divisor)
SCALE = {"smoke": (1, 16, 16), "quick": (4, 1, 1), "full": (4, 1, 1)}


class Layer(NamedTuple):
    k: int
    blind: int
    channels: int
    side: int = 128
    dilation: int = 1

    @property
    def id(self) -> str:
        return f"k{self.k}b{self.blind}d{self.dilation}-c{self.channels}-s{self.side}"


BASE = Layer(3, 1, 48)
LAYERS = (BASE, Layer(5, 3, 48), Layer(9, 7, 48), Layer(3, 1, 128))
SWEEPS = {
    "blind": [Layer(7, b, 48) for b in (0, 1, 3, 5)],
    "dilation": [BASE._replace(channels=128, dilation=d) for d in (1, 2, 3)],
    "channels": [BASE._replace(channels=c) for c in (48, 96, 128)],
    "resolution": [BASE._replace(side=s) for s in (64, 128, 256)],
}


def sweeps_of(layer: Layer, pass_: str) -> list[str]:
    """The sweeps (forward only) that ``layer`` is a point of."""
    return [name for name, points in SWEEPS.items() if layer in points] if pass_ == "forward" else []


def cases() -> list:
    """(pass, layer) pairs: every real layer both ways, every other sweep point forward only."""
    forward = list(dict.fromkeys([*LAYERS, *(p for points in SWEEPS.values() for p in points)]))
    pairs = [("forward", layer) for layer in forward] + [("fwd+bwd", layer) for layer in LAYERS]
    return [pytest.param(p, layer, id=f"{p.replace('+', '_')}-{layer.id}") for p, layer in pairs]


def provider_conv(provider: str, layer: Layer, dev: str):
    """conv(x, weight, bias) as the provider computes it."""
    k, blind, dilation = layer.k, layer.blind, layer.dilation
    if provider == "reference":
        mask = reference.blind_spot_mask(k, blind, device=dev)
        return lambda x, w, b: reference.blind_spot_conv2d(x, w, b, mask, dilation)
    if provider == "unmasked":
        return functools.partial(F.conv2d, padding=dilation * (k // 2), dilation=dilation)
    return functools.partial(blind_spot_conv2d, blind=blind, dilation=dilation, backend=provider)


@pytest.mark.parametrize("provider", ["reference", "unmasked", *fast_backends()])
@pytest.mark.parametrize("pass_,layer", cases())
def test_blind_spot_conv2d(timed, benchmark, bench_size, provider, pass_, layer):
    dev = device()
    batch, side_div, channel_div = SCALE[bench_size]
    c, side = layer.channels // channel_div, layer.side // side_div
    x, weight, bias = conv_tensors(batch, c, c, side, layer.k, grad=pass_ == "fwd+bwd", device=dev)
    taps = layer.k**2 - (0 if provider in ("reference", "unmasked") else layer.blind**2)
    benchmark.group = (f"blind_spot_conv2d {pass_} {batch}x{c}x{side}x{side} "
                       f"k={layer.k} b={layer.blind} dilation={layer.dilation}")
    benchmark.extra_info.update(
        {"op": "blind_spot_conv2d", "pass": pass_, "k": layer.k, "blind": layer.blind, "dilation": layer.dilation,
         "channels": c, "side": side, "batch": batch, "sweeps": sweeps_of(layer, pass_)},
        **conv_work(batch, c, c, side, taps, pass_),
    )
    step = conv_step(provider_conv(provider, layer, dev), x, weight, bias, pass_)
    timed(step, provider, reference=provider == "reference", floor=provider == "unmasked")
