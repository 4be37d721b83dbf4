"""``blind_spot_conv2d`` against ``F.conv2d(x, weight * mask)``, the masked conv every public BSN
runs (oneDNN on the CPU, cuDNN on a GPU), timed interleaved in one run, batch 4 at 128 x 128.

Real BSN layers, forward and forward + backward:

- AT-BSN: its half-plane 3x3 conv as a 5x5 kernel with 9 active taps (48 and 96 channels; the
  official pad + 3x3 conv + crop beside it), 48 ch 3x3 centre-masked, 96 ch 5x5 with a 3x3 hole;
- AP-BSN: 128 ch 3x3 and 5x5 centre-masked, and DBSN's dense 3x3 at dilation 2 and 3;
- AM-BSN: 64 ch 5x5 with the X (both diagonals) masked;
- LG-BPN: 48 ch 9x9 with the diamond |di| + |dj| <= 4 masked.

Providers: the masked F.conv2d (reference), ``auto`` (measured per signature; which backend it
chose per direction is recorded), each backend alone (vendor, and our kernels) and the unmasked
dense conv (a floor). Forward-only sweeps from a base layer feed the report's plots: blind size on
a 7x7 kernel, dilation, channels and resolution. Test ids read ``<pass>-<layer>``.

Small calls (``test_blind_spot_conv2d_small_call``): a 3x3 b=1 layer on one 32 x 32 crop at 16,
48 and 128 channels and on eight 24 x 24 sub-images, where a call takes a fraction of a
millisecond and what runs around the kernel (checks, dispatch, autograd) shows; each timed unit
is ``CALLS_PER_UNIT`` calls, over ``SMALL_CALL_ROUNDS_SCALE`` times the size's rounds (a few
seconds in all: their medians swing with the allocator's state over few rounds).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from bench_compare import Provider
from bench_conv import conv_step, conv_tensors, conv_work
from bench_device import device, kernel_backends

from atbsn_kernels import blind_spot_conv2d, reference, taps
from atbsn_kernels.ops.blind_spot_conv2d import auto_decisions

# bench size -> (batch, side divisor, channel divisor)
SCALE = {"smoke": (1, 16, 16), "quick": (4, 1, 1), "full": (4, 1, 1)}


def _diamond(k: int = 9, radius: int = 4) -> torch.Tensor:
    c = k // 2
    return torch.tensor([[abs(i - c) + abs(j - c) <= radius for j in range(k)] for i in range(k)])


def _x(k: int = 5) -> torch.Tensor:
    eye = torch.eye(k, dtype=torch.bool)
    return eye | eye.flip(1)


MASKS = {
    "shifted": lambda k: taps.taps_to_mask(taps.SHIFTED_TAPS, 5),
    "x": lambda k: _x(k),
    "diamond": lambda k: _diamond(k),
}


class Layer(NamedTuple):
    net: str
    k: int
    blind: int | str  # a centred square's size, or a name of MASKS
    channels: int
    side: int = 128
    dilation: int = 1

    @property
    def mask(self) -> torch.Tensor:
        return MASKS[self.blind](self.k) if isinstance(self.blind, str) else taps.blind_spot_mask(self.k, self.blind)

    @property
    def id(self) -> str:
        return f"{self.net}-k{self.k}{self.blind}-d{self.dilation}-c{self.channels}-s{self.side}"


REAL_LAYERS = (
    Layer("AT-BSN", 5, "shifted", 48), Layer("AT-BSN", 5, "shifted", 96), Layer("AT-BSN", 3, 1, 48),
    Layer("AT-BSN", 5, 3, 96), Layer("AP-BSN", 3, 1, 128), Layer("AP-BSN", 5, 1, 128),
    Layer("DBSN", 3, 0, 128, dilation=2), Layer("DBSN", 3, 0, 128, dilation=3),
    Layer("AM-BSN", 5, "x", 64), Layer("LG-BPN", 9, "diamond", 48),
)
BASE = Layer("sweep", 3, 1, 48)
SWEEPS = {
    "blind": [Layer("sweep", 7, b, 48) for b in (0, 1, 3, 5)],
    "dilation": [BASE._replace(channels=128, dilation=d) for d in (1, 2, 3)],
    "channels": [BASE._replace(channels=c) for c in (48, 96, 128)],
    "resolution": [BASE._replace(side=s) for s in (64, 128, 256)],
}


def sweeps_of(layer: Layer) -> list[str]:
    """The sweeps (forward only) that ``layer`` is a point of."""
    return [name for name, points in SWEEPS.items() if layer in points]


def cases() -> list:
    """(pass, layer): every real layer both ways, every sweep point forward only."""
    sweep_points = list(dict.fromkeys(p for points in SWEEPS.values() for p in points))
    pairs = [(p, layer) for layer in REAL_LAYERS for p in ("forward", "fwd+bwd")]
    pairs += [("forward", layer) for layer in sweep_points]
    return [pytest.param(p, layer, id=f"{p.replace('+', '_')}-{layer.id}") for p, layer in pairs]


SMALL_CALLS = ((1, 16, 32), (1, 48, 32), (1, 128, 32), (8, 48, 24))  # (batch, channels, side)
CALLS_PER_UNIT = 20
SMALL_CALL_ROUNDS_SCALE = 4


def masked_f_conv2d(mask: torch.Tensor, k: int, dilation: int):
    """The public BSNs' masked conv: ``F.conv2d(x, weight * (1 - mask))`` with 'same' padding."""
    def conv(x, w, b):
        return F.conv2d(x, w * (~mask).to(device=w.device, dtype=w.dtype), b, padding=dilation * (k // 2),
                        dilation=dilation)

    return conv


def describe_choices(decisions: dict) -> str:
    """``forward=cpu grad_input=vendor ...`` of what auto chose, with the tuner's cost."""
    made = {d: c for d, c in decisions.items() if c is not None}
    cost = sum(c.tuning_ms for c in made.values())
    return " ".join(f"{d}={c.choice}" for d, c in made.items()) + (f" (tuning {cost:.0f} ms)" if made else "")


@pytest.mark.parametrize("pass_,layer", cases())
def test_blind_spot_conv2d(compare, bench_size, pass_, layer):
    dev = device()
    batch, side_div, channel_div = SCALE[bench_size]
    c, side, k, dilation = max(4, layer.channels // channel_div), layer.side // side_div, layer.k, layer.dilation
    mask = layer.mask
    active = len(taps.active_taps(mask))
    x, weight, bias, grad = conv_tensors(batch, c, c, side, k, grad=pass_ == "fwd+bwd", device=dev)

    def step(conv):
        return conv_step(conv, x, weight, bias, grad, pass_)

    def ours(backend):
        return functools.partial(blind_spot_conv2d, mask=mask, dilation=dilation, backend=backend)

    dense, sparse = conv_work(batch, c, c, side, k * k, pass_), conv_work(batch, c, c, side, active, pass_)
    providers = {
        "masked F.conv2d": Provider(step(masked_f_conv2d(mask, k, dilation)), "reference", dense),
        "auto": Provider(step(ours("auto")), "fast", sparse),
        "vendor": Provider(step(ours("vendor")), "fast", sparse),
        **{name: Provider(step(ours(name)), "fast", sparse) for name in kernel_backends()},
        "unmasked F.conv2d": Provider(step(functools.partial(F.conv2d, padding=dilation * (k // 2), dilation=dilation)),
                                      "floor", dense),
    }
    if layer.blind == "shifted":
        providers["official pad+conv+crop"] = Provider(
            step(lambda a, w, b: reference.shifted_conv2d(a, w[:, :, :3, 1:4], b, None)), "alternative",
            conv_work(batch, c, c, side, 9, pass_))
    # the first call of auto measures; its choices then go into the report beside its time
    providers["auto"].run()
    providers["auto"].info["auto"] = describe_choices(auto_decisions(x, weight, bias, taps.active_taps(mask),
                                                                      dilation, None))
    group = (f"blind_spot_conv2d {pass_} {batch}x{c}x{side}x{side} {layer.net} k={k} "
             f"{'mask=' + layer.blind if isinstance(layer.blind, str) else f'b={layer.blind}'} dilation={dilation}")
    compare(group, providers, op="blind_spot_conv2d", net=layer.net, k=k, blind=layer.blind, dilation=dilation,
            channels=c, side=side, batch=batch, active_taps=active, masked_fraction=1 - active / (k * k),
            sweeps=sweeps_of(layer) if pass_ == "forward" else [], **{"pass": pass_})


@pytest.mark.parametrize("pass_", ["forward", "fwd+bwd"])
@pytest.mark.parametrize("batch, c, side", SMALL_CALLS, ids=[f"{n}x{c}x{s}" for n, c, s in SMALL_CALLS])
def test_blind_spot_conv2d_small_call(compare, pass_, batch, c, side):
    dev = device()
    mask = taps.blind_spot_mask(3, 1)
    x, weight, bias, grad = conv_tensors(batch, c, c, side, 3, grad=pass_ == "fwd+bwd", device=dev)

    def unit(conv):
        step = conv_step(conv, x, weight, bias, grad, pass_)
        return lambda: [step() for _ in range(CALLS_PER_UNIT)]

    def ours(backend):
        return functools.partial(blind_spot_conv2d, mask=mask, backend=backend)

    dense, sparse = ({key: CALLS_PER_UNIT * value for key, value in conv_work(batch, c, c, side, t, pass_).items()}
                     for t in (9, 8))
    providers = {
        "masked F.conv2d": Provider(unit(masked_f_conv2d(mask, 3, 1)), "reference", dense),
        "auto": Provider(unit(ours("auto")), "fast", sparse),
        "vendor": Provider(unit(ours("vendor")), "fast", sparse),
        **{name: Provider(unit(ours(name)), "fast", sparse) for name in kernel_backends()},
    }
    providers["auto"].run()
    providers["auto"].info["auto"] = describe_choices(auto_decisions(x, weight, bias, taps.active_taps(mask), 1, None))
    compare(f"blind_spot_conv2d small call {pass_} {batch}x{c}x{side}x{side} k=3 b=1 ({CALLS_PER_UNIT} calls)",
            providers, rounds_scale=SMALL_CALL_ROUNDS_SCALE, op="blind_spot_conv2d", net="small call", k=3, blind=1,
            dilation=1, channels=c, side=side, batch=batch, active_taps=8, masked_fraction=1 / 9, sweeps=[],
            calls=CALLS_PER_UNIT, **{"pass": pass_})
