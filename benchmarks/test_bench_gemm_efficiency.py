"""Our conv kernels against a plain GEMM of the same shape, at AT-BSN's layer shapes (batch 4, 128 x 128).

A conv over T active taps is, as im2col would write it, the GEMM ``[Cout, Cin * T] @ [Cin * T, N * H * W]``;
forward + backward adds ``[Cin * T, Cout] @ [Cout, N * H * W]`` (input gradient) and
``[Cout, N * H * W] @ [N * H * W, Cin * T]`` (weight gradient). Those GEMMs (``torch.mm`` on ready
operands: MKL's sgemm on the CPU, cuBLAS on a GPU; on the CPU also oneDNN's, as a 1x1 conv of
``Cin * T`` channels and its backward) do the same multiply-adds as our kernels with no gather,
padding or bias, so the speed-up of a kernel over the faster of them is its share of the GEMM rate
that its shape allows (the issue's target: >= 0.85). The report's "% peak" puts all of them beside
the fastest large square GEMM of the session.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from bench_compare import Provider
from bench_conv import conv_step, conv_tensors, conv_work
from bench_device import device, kernel_backends, synchronize

from atbsn_kernels import blind_spot_conv2d, taps

# (name, kernel size, mask, channels): AT-BSN's half-plane 3x3 (as 5x5 with 9 taps), its
# centre-masked 3x3 and its 5x5 with a 3x3 hole
LAYERS = (("shifted", 5, taps.taps_to_mask(taps.SHIFTED_TAPS, 5), 48),
          ("shifted", 5, taps.taps_to_mask(taps.SHIFTED_TAPS, 5), 96),
          ("b=1", 3, taps.blind_spot_mask(3, 1), 48),
          ("b=3", 5, taps.blind_spot_mask(5, 3), 96))
SCALE = {"smoke": (1, 16, 16), "quick": (4, 1, 1), "full": (4, 1, 1)}  # batch, side and channel divisors


def same_shape_gemms(cin: int, cout: int, active: int, pixels: int, pass_: str):
    """One call of the GEMM(s) of the conv's shape as ``torch.mm`` (see the module docstring)."""
    gen = torch.Generator().manual_seed(0)
    k = cin * active
    weights = torch.randn(cout, k, generator=gen).to(device())
    columns = torch.randn(k, pixels, generator=gen).to(device())
    grad = torch.randn(cout, pixels, generator=gen).to(device())

    def forward():
        torch.mm(weights, columns)
        synchronize()

    def fwd_bwd():
        torch.mm(weights, columns)
        torch.mm(weights.t(), grad)
        torch.mm(grad, columns.t())
        synchronize()

    return forward if pass_ == "forward" else fwd_bwd


def same_shape_1x1_conv(cin: int, cout: int, active: int, batch: int, side: int, pass_: str):
    """The same GEMM(s) as a 1x1 conv of ``cin * active`` channels over the conv's pixels, forward
    (+ backward into its input and weight): oneDNN's GEMMs, which MKL's ``torch.mm`` can trail
    (MKL takes its AVX2 path on AMD CPUs)."""
    x, weight, bias, grad = conv_tensors(batch, cin * active, cout, side, 1, grad=pass_ == "fwd+bwd", device=device())
    return conv_step(lambda x, w, _: F.conv2d(x, w), x, weight, bias, grad, pass_)


@pytest.mark.parametrize("pass_", ["forward", "fwd+bwd"])
@pytest.mark.parametrize("layer", LAYERS, ids=[f"{name}-k{k}-c{c}" for name, k, _, c in LAYERS])
def test_conv_against_the_same_shape_gemm(compare, bench_size, pass_, layer):
    name, k, mask, channels = layer
    batch, side_div, channel_div = SCALE[bench_size]
    c, side = max(4, channels // channel_div), 128 // side_div
    active = len(taps.active_taps(mask))
    x, weight, bias, grad = conv_tensors(batch, c, c, side, k, grad=pass_ == "fwd+bwd", device=device())
    work = conv_work(batch, c, c, side, active, pass_)
    gemms = same_shape_gemms(c, c, active, batch * side * side, pass_)
    providers = {"same-shape GEMM": Provider(gemms, "reference", work)}
    if device() == "cpu":
        providers["same-shape GEMM, oneDNN 1x1 conv"] = Provider(
            same_shape_1x1_conv(c, c, active, batch, side, pass_), "alternative", work)
    for backend in kernel_backends():
        conv = functools.partial(blind_spot_conv2d, mask=mask, backend=backend)
        providers[backend] = Provider(conv_step(conv, x, weight, bias, grad, pass_), "fast", work)
    compare(f"conv vs same-shape GEMM {pass_} {batch}x{c}x{side}x{side} AT-BSN {name} k={k} ({active} taps)", providers,
            op="gemm_efficiency", channels=c, k=k, active_taps=active, **{"pass": pass_})
