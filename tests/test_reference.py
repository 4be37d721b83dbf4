"""The reference ops against independent hand computations and explicit loops."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from atbsn_kernels import reference as ref
from atbsn_kernels.taps import active_taps, blind_spot_mask


def loop_masked_conv(x, weight, bias, mask, dilation, slope):
    """Explicit-loop masked 'same' conv on float64 tensors [N,C,H,W]."""
    n, cin, h, w = x.shape
    cout, _, k, _ = weight.shape
    out = torch.zeros(n, cout, h, w, dtype=torch.float64)
    c = k // 2
    for b, o, y, xx in itertools.product(range(n), range(cout), range(h), range(w)):
        acc = float(bias[o]) if bias is not None else 0.0
        for i, j in itertools.product(range(k), range(k)):
            yy, xj = y + dilation * (i - c), xx + dilation * (j - c)
            if mask[i, j] or not (0 <= yy < h and 0 <= xj < w):
                continue
            acc += float((weight[o, :, i, j] * x[b, :, yy, xj]).sum())
        out[b, o, y, xx] = acc if slope is None or acc > 0 else slope * acc
    return out


def test_masked_conv_tiny_case_by_hand():
    # 1 channel, 3x3 image 1..9, 3x3 kernel of ones with the centre masked: each output is the
    # sum of the 8 neighbours inside the image.
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    out = ref.blind_spot_conv2d(x, torch.ones(1, 1, 3, 3), None, active_taps(blind_spot_mask(3, 1)))
    expected = torch.tensor([[2 + 4 + 5, 1 + 3 + 4 + 5 + 6, 2 + 5 + 6],
                             [1 + 2 + 5 + 7 + 8, 1 + 2 + 3 + 4 + 6 + 7 + 8 + 9, 2 + 3 + 5 + 8 + 9],
                             [4 + 5 + 8, 4 + 5 + 6 + 7 + 9, 5 + 6 + 8]])
    assert torch.equal(out[0, 0], expected)


@pytest.mark.parametrize("k,blind,dilation,h,w", [(3, 1, 1, 5, 4), (5, 3, 2, 7, 5), (1, 0, 1, 3, 3), (3, 3, 1, 4, 4)])
@pytest.mark.parametrize("slope", [None, 0.1])
def test_masked_conv_matches_loops(k, blind, dilation, h, w, slope):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 2, k, k, generator=g, dtype=torch.float64)
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    mask = blind_spot_mask(k, blind)
    out = ref.blind_spot_conv2d(x, weight, bias, active_taps(mask), dilation, slope)
    torch.testing.assert_close(out, loop_masked_conv(x, weight, bias, mask, dilation, slope))


def test_masked_conv_irregular_mask_matches_loops():
    g = torch.Generator().manual_seed(1)
    mask = torch.eye(5, dtype=torch.bool) | torch.eye(5, dtype=torch.bool).flip(1)  # AM-BSN's X
    x = torch.randn(1, 2, 6, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64)
    out = ref.blind_spot_conv2d(x, weight, None, active_taps(mask), 1, None)
    torch.testing.assert_close(out, loop_masked_conv(x, weight, None, mask, 1, None))


def test_shifted_conv_sees_only_rows_above_by_loops():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    out = ref.shifted_conv2d(x, weight, bias, None)
    expected = torch.zeros_like(out)
    for o, y, xx in itertools.product(range(3), range(5), range(4)):
        acc = float(bias[o])
        for dy, dx in itertools.product(range(3), range(3)):
            yy, xj = y - 2 + dy, xx - 1 + dx  # rows y-2..y: a half-plane above (and at) y
            if 0 <= yy < 5 and 0 <= xj < 4:
                acc += float((weight[o, :, dy, dx] * x[0, :, yy, xj]).sum())
        expected[0, o, y, xx] = acc
    torch.testing.assert_close(out, expected)


def test_shifted_conv_equals_official_composition():
    # The official layer: zero row on top, 3x3 conv with padding 1, crop the last row, LeakyReLU.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 6, generator=g)
    weight, bias = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g)
    official = F.leaky_relu(F.conv2d(F.pad(x, (0, 0, 1, 0)), weight, bias, padding=1)[..., :-1, :], 0.1)
    torch.testing.assert_close(ref.shifted_conv2d(x, weight, bias, 0.1), official)


def test_shifted_max_pool_by_hand():
    x = torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]).view(1, 1, 4, 4)
    # Shifted down one row: [[0,0,0,0],[1,2,3,4],[5,6,7,8],[9,10,11,12]], then 2x2 max.
    assert torch.equal(ref.shifted_max_pool2d(x)[0, 0], torch.tensor([[2.0, 4], [10, 12]]))
    assert ref.shifted_max_pool2d(torch.ones(1, 1, 5, 3)).shape == (1, 1, 2, 1)


def test_pd_downsample_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    mosaic = ref.pd_downsample(x, 2)
    # Cell (i, j) holds x[i::2, j::2].
    expected = torch.tensor([[0.0, 2, 1, 3], [8, 10, 9, 11], [4, 6, 5, 7], [12, 14, 13, 15]])
    assert torch.equal(mosaic[0, 0], expected)
    padded = ref.pd_downsample(x, 2, pad=1, pad_value=-1)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[0, 0, 1:3, 1:3], torch.tensor([[0.0, 2], [8, 10]]))
    assert torch.equal(padded[0, 0, 0], torch.full((8,), -1.0))


@pytest.mark.parametrize("factor,pad", [(2, 0), (2, 2), (3, 1), (4, 0)])
def test_pd_round_trip(factor, pad):
    x = torch.randn(2, 3, 12, 24)
    assert torch.equal(ref.pd_upsample(ref.pd_downsample(x, factor, pad), factor, pad), x)


@pytest.mark.parametrize("h,w,factor", [(7, 5, 2), (9, 10, 3), (4, 4, 4), (3, 8, 5)])
def test_ideal_pd_split_merge(h, w, factor):
    x = torch.randn(1, 2, h, w)
    subs = ref.ideal_pd_split(x, factor)
    assert len(subs) == factor * factor
    assert sum(s.numel() for s in subs) == x.numel()
    assert torch.equal(ref.ideal_pd_merge(subs, factor, h, w), x)


def test_ideal_pd_split_by_hand():
    x = torch.arange(15.0).view(1, 1, 3, 5)
    subs = [s[0, 0] for s in ref.ideal_pd_split(x, 2)]
    assert torch.equal(subs[0], torch.tensor([[0.0, 2, 4], [10, 12, 14]]))
    assert torch.equal(subs[1], torch.tensor([[1.0, 3], [11, 13]]))
    assert torch.equal(subs[2], torch.tensor([[5.0, 7, 9]]))
    assert torch.equal(subs[3], torch.tensor([[6.0, 8]]))


@pytest.mark.parametrize("h,w,r", [(12, 10, 2), (11, 7, 3), (9, 9, 5)])
def test_ideal_pd_equals_dilation(h, w, r):
    # docs/design.md, "PD and dilation": a conv net without resampling run on each PD sub-image
    # equals the same net with every conv dilated by r on the full image.
    g = torch.Generator().manual_seed(4)
    w1 = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    w2 = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    m1, m2 = active_taps(blind_spot_mask(3, 1)), active_taps(blind_spot_mask(5, 3))

    def net(x, d):
        return ref.blind_spot_conv2d(ref.blind_spot_conv2d(x, w1, None, m1, d, 0.1), w2, None, m2, d)

    x = torch.randn(1, 3, h, w, generator=g, dtype=torch.float64)
    per_sub = ref.ideal_pd_merge([net(s, 1) for s in ref.ideal_pd_split(x, r)], r, h, w)
    torch.testing.assert_close(net(x, r), per_sub)
