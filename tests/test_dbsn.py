"""``DBSN``: AP-BSN's DBSNl layout, PD as dilation (equal to the pd=1 network on ideal PD
sub-images), the exact b x b blind spot (zero gradient), R3 at inference, argument checks."""

import pytest
import torch
import torch.nn.functional as F
from test_dilation import per_sub_image

from atbsn.models.dbsn import DBSN
from atbsn_kernels import reachable_pixels


def make(seed=0, **kwargs):
    torch.manual_seed(seed)
    return DBSN(**{"base_ch": 16, "num_module": 1, **kwargs})


SHAPES = [(3, 3, 2, 1, (9, 7)), (1, 3, 0, 2, (5, 6)), (4, 1, 1, 3, (1, 1))]


@pytest.mark.parametrize("in_ch,out_ch,num_module,pd,size", SHAPES)
def test_output_shape(in_ch, out_ch, num_module, pd, size):
    model = make(in_ch=in_ch, out_ch=out_ch, num_module=num_module, pd=pd)
    assert model(torch.randn(2, in_ch, *size)).shape == (2, out_ch, *size)


def dbsnl(model, x):
    """AP-BSN's DBSNl restated with F.conv2d and explicit geometry, on ``model``'s weights."""

    def conv(x, layer, padding=0, dilation=1, relu=True, keep=None):
        weight = layer.weight if keep is None else layer.weight * keep
        y = F.conv2d(x, weight, layer.bias, padding=padding, dilation=dilation)
        return F.relu(y) if relu else y

    x = conv(x, model.head)
    branches = []
    for s, layers in zip((2, 3), model.branches):
        keep = torch.ones(2 * s - 1, 2 * s - 1)
        keep[s - 1, s - 1] = 0
        y = conv(conv(conv(x, layers[0], padding=s - 1, keep=keep), layers[1]), layers[2])
        for block in layers[3:-1]:
            y = y + conv(conv(y, block.body[0], padding=s, dilation=s), block.body[1], relu=False)
        branches.append(conv(y, layers[-1]))
    y = torch.cat(branches, 1)
    for i, layer in enumerate(model.tail):
        y = conv(y, layer, relu=i < len(model.tail) - 1)
    return y


def test_blind_one_is_ap_bsn_dbsnl():
    model = make(num_module=2)
    x = torch.randn(2, 3, 12, 11)
    with torch.no_grad():
        torch.testing.assert_close(model(x), dbsnl(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("blind", [1, 3])
@pytest.mark.parametrize("r", [2, 3, 5])
def test_pd_by_dilation_equals_the_pd1_network_on_ideal_sub_images(blind, r):
    model = make(blind=blind)
    x = torch.randn(2, 3, 13, 16)
    expected = per_sub_image(model, x, r)
    model.pd = r
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def expected_reach(model, num_module, size):
    """Offsets a + s*m (a an active tap of a branch's masked conv, |m| <= num_module), times pd."""
    built, blind, pd, centre = model.built_blind, model.blind, model.pd, size // 2
    reach = torch.zeros(size, size, dtype=torch.bool)
    for s in (built + 1, built + 2):
        radius, shifts = s - (built + 1) // 2, range(-num_module * s, num_module * s + 1, s)
        for ay in range(-radius, radius + 1):
            for ax in range(-radius, radius + 1):
                if blind and max(abs(ay), abs(ax)) <= blind // 2:
                    continue
                for my in shifts:
                    for mx in shifts:
                        reach[centre + pd * (ay + my), centre + pd * (ax + mx)] = True
    return reach


@pytest.mark.parametrize("built,blind,pd", [(1, 1, 1), (3, 3, 1), (3, 1, 1), (1, 1, 2), (3, 3, 2), (1, 0, 1)])
def test_blind_spot_is_exactly_the_b_by_b_square_with_zero_gradient(built, blind, pd):
    model = make(blind=built, num_module=1, pd=pd)
    model.blind = blind
    size = 2 * pd * (2 * built + 4) + 3
    reached = reachable_pixels(model, (3, size, size), (size // 2, size // 2))
    assert torch.equal(reached, expected_reach(model, 1, size))
    centre, half = size // 2, pd * (blind // 2)
    hole = reached[centre - half:centre + half + 1, centre - half:centre + half + 1]
    assert hole.any() == (blind == 0) and reached[centre, centre] == (blind == 0)


def test_blind_size_is_tunable_with_the_same_weights():
    model = make(blind=3)
    assert [b[0].kernel_size for b in model.branches] == [(5, 5), (7, 7)]
    model.blind = 1
    assert model.blind == 1 and all(b[0].blind == 1 for b in model.branches)
    assert [b[0].kernel_size for b in model.branches] == [(5, 5), (7, 7)]


def r3_by_hand(model, x, pd, repeats, p, pad, seed):
    """AP-BSN's R3 as stated in its paper and code: replace, reflect-pad, run at pd 1, crop, average."""
    generator = torch.Generator().manual_seed(seed)
    model.pd = pd
    first = model(x)
    model.pd = 1
    outs = []
    for _ in range(repeats):
        mixed = first.clone()
        replace = torch.rand(x.shape, generator=generator) < p
        mixed[replace] = x[replace]
        outs.append(model(F.pad(mixed, (pad,) * 4, mode="reflect"))[..., pad:-pad, pad:-pad])
    return torch.stack(outs).mean(0)


def test_r3_replaces_pads_runs_at_pd1_and_averages():
    model = make(pd=3)
    x = torch.randn(1, 3, 10, 9)
    got = model.denoise(x, pd=2, r3_t=3, r3_p=0.3, generator=torch.Generator().manual_seed(5))
    assert model.pd == 3 and not got.requires_grad
    with torch.no_grad():
        expected = r3_by_hand(model, x, pd=2, repeats=3, p=0.3, pad=2, seed=5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_r3_defaults_and_switch():
    model = make(pd=2)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.denoise(x, r3=False), model(x))
        model.pd = 1
        everything_replaced = model(F.pad(x, (2,) * 4, mode="reflect"))[..., 2:-2, 2:-2]
    model.pd = 2
    torch.testing.assert_close(model.denoise(x, r3_p=1.0), everything_replaced, atol=1e-5, rtol=1e-5)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(model.denoise(x, generator=g1), model.denoise(x, generator=g2))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(in_ch=0), ValueError, "in_ch"),
    (dict(out_ch=1.5), TypeError, "out_ch"),
    (dict(base_ch=7), ValueError, "base_ch must be even"),
    (dict(num_module=-1), ValueError, "num_module"),
    (dict(blind=2), ValueError, r"blind must be one of \(1, 3, 5, 7\)"),
    (dict(blind=9), ValueError, r"blind must be one of \(1, 3, 5, 7\)"),
    (dict(blind=0), ValueError, r"blind must be one of \(1, 3, 5, 7\)"),
    (dict(blind=1.0), TypeError, "blind must be an int"),
    (dict(pd=0), ValueError, "pd must be an int >= 1"),
    (dict(pd=2.0), TypeError, "pd must be an int >= 1"),
    (dict(backend="gpu"), ValueError, "backend"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


@pytest.mark.parametrize("value,error", [(5, ValueError), (2, ValueError), (-1, ValueError), (True, TypeError)])
def test_blind_cannot_exceed_the_built_hole(value, error):
    model = make(blind=3)
    with pytest.raises(error, match=r"blind must be .*one of \(0, 1, 3\)"):
        model.blind = value


@pytest.mark.parametrize("kwargs,match", [
    (dict(r3_t=0), "r3_t"),
    (dict(r3_p=1.5), "r3_p"),
    (dict(r3_pad=8), "r3_pad must be smaller"),
    (dict(pd=0), "pd must be"),
])
def test_bad_denoise_arguments(kwargs, match):
    model = make(pd=2)
    with pytest.raises(ValueError, match=match):
        model.denoise(torch.randn(1, 3, 8, 8), **kwargs)
    assert model.pd == 2


def test_r3_needs_as_many_output_as_input_channels():
    with pytest.raises(ValueError, match="out_ch must equal in_ch"):
        make(out_ch=1).denoise(torch.randn(1, 3, 8, 8))
