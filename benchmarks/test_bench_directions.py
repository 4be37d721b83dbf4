"""``blind_spot_conv2d`` one direction at a time (forward, grad-input, grad-weight + bias) against the
vendor conv on the masked weight (``F.conv2d`` / ``aten.convolution_backward``: oneDNN on the CPU,
cuDNN on a GPU), in NCHW and in channels-last, from a random output gradient.

Each of our kernel backends is called through its implementation entry (no autograd), so a row
times exactly one direction's kernels. The layers are AT-BSN's 48 ch and AP-BSN's 128 ch 3x3
centre-masked convs (batch 4 at 128 x 128 at quick size). ``gpu_check`` runs these on a GPU, where
the Triton and CUDA kernels' grad-input and grad-weight meet cuDNN's.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bench_compare import Provider
from bench_conv import conv_tensors, conv_work
from bench_device import device, kernel_backends, synchronize
from test_bench_blind_spot_conv2d import SCALE, Layer

from atbsn_kernels import taps
from atbsn_kernels.ops.blind_spot_conv2d import IMPLEMENTATIONS

LAYERS = (Layer("AT-BSN", 3, 1, 48), Layer("AP-BSN", 3, 1, 128))
DIRECTIONS = {"forward": None, "grad_input": (True, False, False), "grad_weight": (False, True, True)}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def timed(call):
    def run():
        call()
        synchronize()

    return run


def vendor_call(direction, x, masked, bias, grad_out, padding):
    """The vendor conv's call for one direction on the masked weight."""
    if direction == "forward":
        return lambda: F.conv2d(x, masked, bias, padding=padding)
    return lambda: torch.ops.aten.convolution_backward(grad_out, x, masked, [masked.shape[0]], [1, 1], [padding] * 2,
                                                       [1, 1], False, [0, 0], 1, list(DIRECTIONS[direction]))


def kernel_call(name, direction, x, weight, bias, grad_out, out, active):
    """Backend ``name``'s implementation entry for one direction."""
    impl = IMPLEMENTATIONS[name]
    if direction == "forward":
        return lambda: impl.forward(x, weight, bias, active, 1, None)
    return lambda: impl.backward(grad_out, x, weight, out, active, 1, None, list(DIRECTIONS[direction]))


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.id)
def test_direction(compare, bench_size, layer, direction, layout):
    batch, side_div, channel_div = SCALE[bench_size]
    c, side = max(4, layer.channels // channel_div), layer.side // side_div
    x, weight, bias, grad_out = conv_tensors(batch, c, c, side, layer.k, grad=False, device=device())
    x, grad_out = (t.contiguous(memory_format=LAYOUTS[layout]) for t in (x, grad_out))
    mask = layer.mask
    active = taps.active_taps(mask)
    masked = weight * (~mask).to(weight.device, weight.dtype)
    out = F.conv2d(x, masked, bias, padding=layer.k // 2)
    pass_ = "forward" if direction == "forward" else "fwd+bwd"
    dense, sparse = (conv_work(batch, c, c, side, n, "forward") for n in (layer.k ** 2, len(active)))
    providers = {"vendor conv": Provider(timed(vendor_call(direction, x, masked, bias, grad_out, layer.k // 2)),
                                         "reference", dense)}
    for name in ["vendor", *kernel_backends()]:
        providers[name] = Provider(timed(kernel_call(name, direction, x, weight, bias, grad_out, out, active)),
                                   "fast", sparse)
    group = (f"blind_spot_conv2d {direction} {layout} {batch}x{c}x{side}x{side} {layer.net} "
             f"k={layer.k} b={layer.blind}")
    compare(group, providers, op="blind_spot_conv2d one direction", net=layer.net, k=layer.k, blind=layer.blind,
            channels=c, side=side, batch=batch, active_taps=len(active), direction=direction, layout=layout,
            **{"pass": pass_})
