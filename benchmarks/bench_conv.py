"""Conv workloads for the op benchmarks: inputs, the timed step (forward, or forward + backward
into input, weight and bias from a fixed random output gradient) and the work that step does.

Work model: ``flops`` counts 2 per multiply-add over the taps a provider actually multiplies (our
kernels' active taps, a dense conv's k * k); forward + backward is three such convs (output,
grad-input, grad-weight). ``bytes`` is the compulsory traffic of fp32 tensors, the same for every
provider: each of the three convs reads two of x, weight, output (gradient) and writes the third
once, so forward moves x + weight + y and forward + backward three times that.
"""

from __future__ import annotations

import torch
from bench_device import synchronize

PASSES = ("forward", "fwd+bwd")


def conv_tensors(n: int, cin: int, cout: int, side: int, k: int, *, grad: bool, device: str):
    """(x, weight, bias, grad_out) of one conv layer; x, weight and bias require grad when ``grad``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, cin, side, side, generator=gen)
    weight = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
    bias = torch.zeros(cout)
    grad_out = torch.randn(n, cout, side, side, generator=gen).to(device)
    return (*(t.to(device).requires_grad_(grad) for t in (x, weight, bias)), grad_out)


def conv_step(conv, x, weight, bias, grad_out, pass_: str):
    """The timed call: ``conv(x, weight, bias)``, plus its backward from ``grad_out`` for "fwd+bwd"
    (a dense random gradient, as a loss gives, not the stride-0 one of ``.sum().backward()``)."""
    if pass_ not in PASSES:
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")

    def forward():
        with torch.no_grad():
            conv(x, weight, bias)
        synchronize()

    def fwd_bwd():
        for t in (x, weight, bias):
            t.grad = None
        conv(x, weight, bias).backward(grad_out)
        synchronize()

    return forward if pass_ == "forward" else fwd_bwd


def conv_work(n: int, cin: int, cout: int, side: int, taps: int, pass_: str, element_size: int = 4) -> dict:
    """``{"flops", "bytes"}`` of one call (see the module docstring)."""
    pixels = n * side * side
    x, y, w = pixels * cin, pixels * cout, cout * cin * taps
    macs = pixels * cin * cout * taps
    convs = 1 if pass_ == "forward" else 3
    return {"flops": 2 * macs * convs, "bytes": (x + w + y) * element_size * convs}
