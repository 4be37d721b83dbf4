"""The pixel-shuffle-free dilation path: :func:`dilated_conv2d` and :func:`dilate_bsn`.

A conv net without resampling, run on each ideal r x r PD sub-image ``x[..., i::r, j::r]`` on
its own (zero padded) and interleaved back, equals the same net run on the full image with the
dilation and zero padding of every conv multiplied by r (docs/design.md, "PD and dilation"). So AP-BSN's PD
needs no pixel shuffle, no mosaic copy and no extra memory: :func:`dilate_bsn` makes the change
to a model, and the blind-spot conv kernels run dilated convs in place.
"""

from __future__ import annotations

import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from atbsn_kernels import _checks, autocast, taps
from atbsn_kernels.convert import find_weight_multiplier
from atbsn_kernels.nn import BlindSpotConv2d
from atbsn_kernels.ops.blind_spot_conv2d import blind_spot_conv2d_taps

__all__ = ["dilate_bsn", "dilated_conv2d"]

# Attribute under which dilate_bsn keeps a conv's own (dilation, padding), so that it never compounds.
BASE_GEOMETRY = "_atbsn_base_geometry"

# Convs whose forward is known to use ``self.dilation`` and ``self.padding``: no probe needed.
_TRUSTED_CONVS = (nn.Conv2d, BlindSpotConv2d)

_RESAMPLING = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.LPPool1d, nn.LPPool2d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d,
    nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d,
    nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Fold, nn.Unfold,
)
_PADDING = (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d)
_OTHER_CONVS = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_SPATIAL_MIXING = (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.Flatten)


def dilated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    dilation: int,
    negative_slope: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Plain (unmasked) dilated conv on the blind-spot conv kernels: stride 1, zero 'same' padding.

    x ``[N, Cin, H, W]``, weight ``[Cout, Cin, k, k]`` (odd k in 1..11), bias ``[Cout]`` or None;
    tap (i, j) reads pixel ``(h + dilation*(i - k//2), w + dilation*(j - k//2))``, zero outside.
    ``negative_slope``: None or a float >= 0 (fused LeakyReLU). ``backend`` as in
    :func:`atbsn_kernels.blind_spot_conv2d`. Returns ``[N, Cout, H, W]``.
    """
    x, weight, bias = autocast.conv_operands(x, weight, bias)
    _checks.check_feature_tensors(x, weight, bias)
    dilation = _checks.check_dilation(dilation)
    negative_slope = _checks.check_negative_slope(negative_slope)
    every_tap = taps.blind_taps(weight.shape[-1], 0)
    return blind_spot_conv2d_taps(x, weight, bias, every_tap, dilation, negative_slope, backend)


def _conv_refusal(conv: nn.Conv2d) -> str | None:
    """Why the geometry of ``conv`` cannot be scaled by a PD factor, or None."""
    if conv.stride != (1, 1):
        return f"stride={conv.stride}: a strided conv resamples the image"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r}: only zero padding scales with the dilation"
    if conv.padding == "same" and any(d * (k - 1) % 2 for d, k in zip(conv.dilation, conv.kernel_size)):
        return f"padding='same' with kernel_size={conv.kernel_size} pads unevenly, which cannot be scaled"
    return None


def _refusal(module: nn.Module) -> str | None:
    """Why :func:`dilate_bsn` cannot handle ``module``, or None."""
    if isinstance(module, nn.Conv2d):
        return _conv_refusal(module)
    if isinstance(module, _OTHER_CONVS):
        return "only 2-D convs with stride 1 have a dilated equivalent (a transposed or 1-D/3-D conv has none)"
    if isinstance(module, _RESAMPLING):
        return "it resamples the image (pooling, upsampling and pixel shuffles have no dilated equivalent)"
    if isinstance(module, _PADDING):
        return "a padding module changes the image size by a fixed amount; pad inside the convs instead"
    if isinstance(module, _SPATIAL_MIXING):
        return "it mixes or normalises over image positions, so the sub-images would not stay separate"
    return None


def _needs_change(conv: nn.Conv2d) -> bool:
    """False for 1x1 convs without padding: dilation does not change them."""
    return conv.kernel_size != (1, 1) or conv.padding not in ("valid", (0, 0))


def _scaled(conv: nn.Conv2d, r: int) -> tuple[tuple[int, int], tuple[int, int] | str]:
    """(dilation, padding) of ``conv``'s base geometry scaled by r."""
    dilation, padding = getattr(conv, BASE_GEOMETRY, (conv.dilation, conv.padding))
    scaled_padding = padding if isinstance(padding, str) else tuple(r * p for p in padding)
    return tuple(r * d for d in dilation), scaled_padding


def _set_geometry(conv: nn.Conv2d, dilation, padding) -> None:
    if not hasattr(conv, BASE_GEOMETRY):
        setattr(conv, BASE_GEOMETRY, (conv.dilation, conv.padding))
    conv.dilation, conv.padding = dilation, padding


def _computes_its_conv(conv: nn.Conv2d) -> bool:
    """Probe a copy of ``conv``: does its forward compute a (masked) conv with its current geometry?"""
    extent = max(d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size))
    size = extent + (0 if isinstance(conv.padding, str) else 2 * max(conv.padding)) + 5
    weight = conv.weight
    probe = torch.randn(1, conv.in_channels, size, size + 1, device=weight.device, dtype=weight.dtype)
    found = find_weight_multiplier(conv)
    effective = weight if found is None else weight * found[1]
    with torch.no_grad():
        expected = F.conv2d(probe, effective, conv.bias, 1, conv.padding, conv.dilation, conv.groups)
        got = copy.deepcopy(conv)(probe)
    scale = max(1.0, float(expected.abs().max()))
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale)


def _check_factor(r) -> int:
    if not isinstance(r, numbers.Integral) or isinstance(r, bool):
        raise TypeError(f"r must be an int >= 1 (the PD factor), got {r!r}")
    if r < 1:
        raise ValueError(f"r must be an int >= 1 (the PD factor), got {r!r}")
    return int(r)


def dilate_bsn(model: nn.Module, r: int) -> nn.Module:
    """Make ``model`` compute as if run on each ideal r x r PD sub-image separately, in place.

    Every ``nn.Conv2d`` (``BlindSpotConv2d``, AP-BSN-style masked convs and other subclasses
    included) gets its *base* dilation and zero padding multiplied by r; the base is kept on the
    module, so calling again with another r (train at r = 5, infer at r = 2: asymmetric PD) never
    compounds, and r = 1 restores the model. 1x1 convs without padding are left untouched. For
    ``[N, C, H, W]`` input of any size, a model that keeps the image size then gives
    ``model(x) == ideal_pd_merge([original(s) for s in ideal_pd_split(x, r)], r, H, W)``
    (convs that change the size, such as 'valid' ones, interleave the same way).

    In place, because the point is to run the *same* weights at several factors; deepcopy first to
    keep the original. Returns ``model``. Refused with a ValueError naming every offending module,
    before anything changes: resampling modules (pooling, upsampling, pixel shuffles, fold,
    strided or transposed convs), padding modules, convs with non-zero padding modes or uneven
    'same' padding, norms over image positions (GroupNorm, InstanceNorm), and conv subclasses whose
    forward ignores the scaled dilation (run :func:`atbsn_kernels.convert_bsn` on those first; a
    probe finds them and every change is rolled back). Operations called in a ``forward`` (such as
    ``F.interpolate``) are not modules and cannot be seen. BatchNorm in training mode takes its
    batch statistics over all sub-images together.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    r = _check_factor(r)
    modules = list(model.named_modules())
    refusals = [f"{name or '<root>'} ({type(m).__name__}): {why}" for name, m in modules if (why := _refusal(m))]
    if refusals:
        raise ValueError(f"dilate_bsn cannot scale this model by r={r}: " + "; ".join(refusals))
    convs = [(name, m) for name, m in modules if isinstance(m, nn.Conv2d) and _needs_change(m)]
    previous = {name: (conv.dilation, conv.padding) for name, conv in convs}
    for _, conv in convs:
        _set_geometry(conv, *_scaled(conv, r))
    ignoring = [
        name or "<root>" for name, conv in convs if type(conv) not in _TRUSTED_CONVS and not _computes_its_conv(conv)
    ]
    if ignoring:
        for name, conv in convs:
            conv.dilation, conv.padding = previous[name]
        raise ValueError(
            f"dilate_bsn cannot scale this model by r={r}: the forward of {', '.join(ignoring)} does not compute "
            "a conv with the module's dilation and padding; replace such masked convs with "
            "atbsn_kernels.convert_bsn(model) first"
        )
    return model
