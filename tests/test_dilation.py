"""The dilation path: ``dilated_conv2d`` against ``F.conv2d`` on every backend, and ``dilate_bsn``
against running the original model on each ideal PD sub-image separately."""

import pytest
import torch
import torch.nn.functional as F
from foreign_bsn import APStyleBSN, MMStyleBSN
from torch import nn

from atbsn_kernels import convert_bsn, reference
from atbsn_kernels.dilation import BASE_GEOMETRY, dilate_bsn, dilated_conv2d
from atbsn_kernels.nn import BlindSpotConv2d

# Triton runs on the GPU when there is one, else in the interpreter on CPU tensors (conftest.py).
DEVICES = {"reference": "cpu", "cpu": "cpu", "triton": "cuda" if torch.cuda.is_available() else "cpu"}
CONV_CASES = [(3, 2, None), (5, 3, 0.1), (3, 4, 0.0), (1, 3, None)]


@pytest.mark.parametrize("backend", sorted(DEVICES))
@pytest.mark.parametrize("k,dilation,slope", CONV_CASES, ids=[f"k{k}d{d}s{s}" for k, d, s in CONV_CASES])
def test_dilated_conv2d_matches_f_conv2d_forward_and_backward(backend, k, dilation, slope):
    g = torch.Generator().manual_seed(0)
    tensors = (torch.randn(2, 3, 7, 6, generator=g), torch.randn(4, 3, k, k, generator=g) * 0.3, torch.randn(4, generator=g))
    results = []
    for fast in (False, True):
        x, weight, bias = (t.to(DEVICES[backend]).requires_grad_() for t in tensors)
        if fast:
            out = dilated_conv2d(x, weight, bias, dilation=dilation, negative_slope=slope, backend=backend)
        else:
            out = F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation)
            out = out if slope is None else F.leaky_relu(out, slope)
        (out * torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)).sum().backward()
        results.append([t.detach().cpu() for t in (out, x.grad, weight.grad, bias.grad)])
    for got, expected in zip(*reversed(results)):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(dilation=0), ValueError, "dilation"),
    (dict(dilation=2, negative_slope=-1.0), ValueError, "negative_slope"),
    (dict(dilation=2, backend="gpu"), ValueError, "backend"),
])
def test_dilated_conv2d_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dilated_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3), **kwargs)


def test_dilated_conv2d_needs_a_dilation():
    with pytest.raises(TypeError, match="dilation"):
        dilated_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3))


def mixed_model():
    """Plain, grouped, non-square, 'same'-padded and size-reducing ('valid') convs, a fused blind-spot
    conv, 1x1 convs and an eval-mode BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(3, 6, (3, 5), padding=(1, 2)),
        nn.LeakyReLU(0.1),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3),
        BlindSpotConv2d(6, 6, 5, blind=3, negative_slope=0.1),
        nn.BatchNorm2d(6).eval(),
        nn.Conv2d(6, 6, 3, padding="same"),
        nn.Conv2d(6, 6, 3, padding="valid"),
        nn.Conv2d(6, 3, 1),
    )


MODELS = {"ap_style": lambda: APStyleBSN(6), "mixed": mixed_model}


def per_sub_image(model, x, r):
    """The definition: the model on each ideal PD sub-image on its own, interleaved back (sub-images
    of one size run as one batch: fewer, larger calls)."""
    subs = reference.ideal_pd_split(x, r)
    outs = [None] * len(subs)
    with torch.no_grad():
        for shape in {sub.shape for sub in subs}:
            same = [i for i, sub in enumerate(subs) if sub.shape == shape]
            for i, out in zip(same, model(torch.cat([subs[i] for i in same])).split(x.shape[0])):
                outs[i] = out
    height, width = sum(out.shape[-2] for out in outs[::r]), sum(out.shape[-1] for out in outs[:r])
    return reference.ideal_pd_merge(outs, r, height, width)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("r", [2, 3, 4, 5])
def test_dilated_model_equals_the_model_on_each_sub_image(name, r):
    torch.manual_seed(0)
    model = MODELS[name]()
    x = torch.randn(2, 3, 23, 21)
    expected = per_sub_image(model, x, r)
    assert dilate_bsn(model, r) is model
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_redilation_is_asymmetric_pd_and_never_compounds():
    torch.manual_seed(0)
    model = APStyleBSN(6)
    x = torch.randn(1, 3, 17, 14)
    expected = {r: per_sub_image(model, x, r) for r in (1, 2)}
    dilate_bsn(model, 5)
    dilate_bsn(model, 2)
    dilated = model.branches[1][4]
    assert (dilated.dilation, dilated.padding) == ((6, 6), (6, 6))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected[2], atol=1e-5, rtol=1e-5)
        dilate_bsn(model, 1)
        torch.testing.assert_close(model(x), expected[1], atol=1e-5, rtol=1e-5)
    assert (dilated.dilation, dilated.padding) == ((3, 3), (3, 3))


def test_one_by_one_convs_are_untouched():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), BlindSpotConv2d(4, 3, 1, blind=0))
    dilate_bsn(model, 3)
    for index in (0, 3):
        assert model[index].dilation == (1, 1) and model[index].padding == (0, 0)
        assert not hasattr(model[index], BASE_GEOMETRY)
    assert model[2].dilation == (3, 3) and model[2].padding == (3, 3)


def conv():
    return nn.Conv2d(3, 3, 3, padding=1)


REFUSED = [
    (nn.MaxPool2d(2), "resamples"),
    (nn.AdaptiveAvgPool2d(4), "resamples"),
    (nn.Upsample(scale_factor=2), "resamples"),
    (nn.PixelShuffle(1), "resamples"),
    (nn.PixelUnshuffle(1), "resamples"),
    (nn.Conv2d(3, 3, 3, stride=2, padding=1), "stride"),
    (nn.Conv2d(3, 3, 1, stride=2), "stride"),
    (nn.ConvTranspose2d(3, 3, 3, padding=1), "transposed"),
    (nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (nn.Conv2d(3, 3, 2, padding="same"), "pads unevenly"),
    (nn.ReflectionPad2d(1), "padding module"),
    (nn.GroupNorm(1, 3), "image positions"),
    (nn.InstanceNorm2d(3), "image positions"),
]


@pytest.mark.parametrize("module,reason", REFUSED, ids=[type(m).__name__ + str(i) for i, (m, _) in enumerate(REFUSED)])
def test_models_with_other_spatial_ops_are_refused_untouched(module, reason):
    model = nn.Sequential(conv(), nn.Sequential(nn.ReLU(), module))
    with pytest.raises(ValueError, match=rf"1\.1 \({type(module).__name__}\): .*{reason}"):
        dilate_bsn(model, 2)
    assert model[0].dilation == (1, 1) and model[0].padding == (1, 1)


def test_masked_conv_whose_forward_ignores_dilation_is_refused_until_converted():
    torch.manual_seed(0)
    model = MMStyleBSN()
    x = torch.randn(1, 3, 11, 12)
    expected = per_sub_image(model, x, 2)
    with pytest.raises(ValueError, match=r"masked\.0, masked\.1, .*convert_bsn"):
        dilate_bsn(model, 2)
    assert all(m.dilation == (1, 1) and m.padding == (2, 2) for m in model.masked)
    convert_bsn(model)
    dilate_bsn(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


BAD_FACTORS = [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]


@pytest.mark.parametrize("r,error", BAD_FACTORS)
def test_bad_factor_raises_clear_errors(r, error):
    with pytest.raises(error, match="r must be an int >= 1"):
        dilate_bsn(conv(), r)


def test_a_model_must_be_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        dilate_bsn(lambda x: x, 2)
