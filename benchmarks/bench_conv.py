"""Conv workloads for the op benchmarks: inputs, the timed step (forward, or forward + backward
into input, weight and bias) and the work that step does, for rates in the report.

Work model: ``flops`` counts 2 per multiply-add over the taps a provider actually multiplies (a
fast kernel's active taps, a dense conv's k * k); forward + backward is three such convs
(output, grad-input, grad-weight). ``bytes`` is the compulsory traffic of fp32 tensors, the same
for every provider: each of the three convs reads two of x, weight, output (gradient) and writes
the third once, so forward moves x + weight + y and forward + backward three times that.
"""

from __future__ import annotations

import torch
from bench_device import synchronize

PASSES = ("forward", "fwd+bwd")


def conv_tensors(n: int, cin: int, cout: int, side: int, k: int, *, grad: bool, device: str):
    """(x, weight, bias) of one conv layer; they require grad when ``grad``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, cin, side, side, generator=gen)
    weight = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
    bias = torch.zeros(cout)
    return tuple(t.to(device).requires_grad_(grad) for t in (x, weight, bias))


def conv_step(conv, x, weight, bias, pass_: str):
    """The timed call: ``conv(x, weight, bias)``, plus ``.sum().backward()`` for "fwd+bwd"."""
    if pass_ not in PASSES:
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")

    def forward():
        conv(x, weight, bias)
        synchronize()

    def fwd_bwd():
        for t in (x, weight, bias):
            t.grad = None
        conv(x, weight, bias).sum().backward()
        synchronize()

    return forward if pass_ == "forward" else fwd_bwd


def conv_work(n: int, cin: int, cout: int, side: int, taps: int, pass_: str, element_size: int = 4) -> dict:
    """``{"flops", "bytes"}`` of one call (see the module docstring)."""
    pixels = n * side * side
    x, y, w = pixels * cin, pixels * cout, cout * cin * taps
    macs = pixels * cin * cout * taps
    convs = 1 if pass_ == "forward" else 3
    return {"flops": 2 * macs * convs, "bytes": (x + w + y) * element_size * convs}
