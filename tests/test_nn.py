"""``atbsn_kernels.nn.BlindSpotConv2d``: an nn.Conv2d drop-in on the fused op."""

import pytest
import torch
from torch import nn

import atbsn_kernels
from atbsn_kernels import reference
from atbsn_kernels.nn import BlindSpotConv2d
from atbsn_kernels.taps import blind_taps


def test_is_a_conv2d_with_the_same_parameters():
    conv = BlindSpotConv2d(3, 8, 5, blind=3)
    assert isinstance(conv, nn.Conv2d)
    assert set(conv.state_dict()) == {"weight", "bias"}
    assert conv.weight.shape == (8, 3, 5, 5) and conv.padding == (2, 2)


@pytest.mark.parametrize("backend", ["auto", "reference", "vendor", "cpu", "triton"])
def test_forward_equals_the_functional_op(backend):
    conv = BlindSpotConv2d(3, 4, 3, dilation=2, blind=1, negative_slope=0.1, backend=backend)
    x = torch.randn(2, 3, 9, 7)
    expected = reference.blind_spot_conv2d(x, conv.weight, conv.bias, blind_taps(3, 1), 2, 0.1)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_with_nn_conv2d():
    plain = nn.Conv2d(3, 4, 3, padding=1)
    conv = BlindSpotConv2d(3, 4, 3, padding=1, blind=0)
    conv.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(conv(x), plain(x), atol=1e-5, rtol=1e-5)
    plain.load_state_dict(conv.state_dict())


def test_loads_a_state_dict_with_a_matching_mask_buffer():
    conv = BlindSpotConv2d(2, 2, 3, blind=1)
    keep = torch.ones(2, 2, 3, 3)
    keep[:, :, 1, 1] = 0  # AP-BSN style multiplier: 0 = masked
    state = {"weight": torch.randn(2, 2, 3, 3), "bias": torch.zeros(2), "mask": keep}
    conv.load_state_dict(state)
    assert torch.equal(conv.weight, state["weight"])


def test_refuses_a_state_dict_whose_mask_differs():
    conv = BlindSpotConv2d(2, 2, 3, blind=1)
    state = {"weight": torch.randn(2, 2, 3, 3), "bias": torch.zeros(2), "mask": torch.ones(3, 3)}
    with pytest.raises(RuntimeError, match="mask"):
        conv.load_state_dict(state)


def test_blind_size_changes_at_run_time_with_the_same_weights():
    conv = BlindSpotConv2d(2, 2, 5, blind=3, bias=False)
    x = torch.randn(1, 2, 8, 8)
    conv.blind = 1
    assert conv.blind == 1
    expected = reference.blind_spot_conv2d(x, conv.weight, None, blind_taps(5, 1))
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="blind"):
        conv.blind = 4


def test_irregular_mask_and_repr():
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[1, :] = True
    conv = BlindSpotConv2d(2, 2, 3, mask=mask)
    assert conv.blind is None and torch.equal(conv.tap_mask, mask)
    assert "mask=" in repr(conv)
    assert "blind=3" in repr(BlindSpotConv2d(2, 2, 3, blind=3))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(stride=2), ValueError, "stride"),
        (dict(groups=2), ValueError, "groups"),
        (dict(padding=0), ValueError, "padding"),
        (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (dict(kernel_size=13), ValueError, "lattice"),
        (dict(kernel_size=4), ValueError, "kernel_size"),
        (dict(kernel_size=(3, 5)), ValueError, "kernel_size"),
        (dict(blind=2), ValueError, "blind"),
        (dict(backend="fast"), ValueError, "backend"),
        (dict(negative_slope=-1.0), ValueError, "negative_slope"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        BlindSpotConv2d(**args)


def test_forward_rejects_wrong_channels():
    with pytest.raises(ValueError, match="input channels"):
        BlindSpotConv2d(3, 2, 3)(torch.randn(1, 4, 5, 5))


def test_exported_from_the_package():
    assert atbsn_kernels.nn.BlindSpotConv2d is BlindSpotConv2d


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_are_nn_conv2d_s(mode):
    """Non-zero padding: F.pad, then the fused op cropped to the valid conv (nn.Conv2d's result)."""
    torch.manual_seed(0)
    conv = BlindSpotConv2d(3, 4, 5, blind=3, padding_mode=mode, negative_slope=0.2, backend="cpu")
    plain = torch.nn.Conv2d(3, 4, 5, padding=2, padding_mode=mode)
    plain.load_state_dict(conv.state_dict())
    with torch.no_grad():
        plain.weight.mul_((~conv.tap_mask).float())
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    y = conv(x)
    torch.testing.assert_close(y, torch.nn.functional.leaky_relu(plain(x), 0.2), atol=1e-5, rtol=1e-5)
    y.sum().backward()
    assert x.grad is not None and y.shape == (2, 4, 7, 9)


def test_a_kernel_larger_than_11_runs_on_its_lattice():
    k = 21
    mask = torch.ones(k, k, dtype=torch.bool)
    mask[::2, ::2] = False
    mask[10, 10] = True
    conv = BlindSpotConv2d(2, 3, k, mask=mask, backend="cpu")
    assert "runs as 11x11 at dilation x2" in repr(conv)
    x = torch.randn(1, 2, 12, 13)
    want = torch.nn.functional.conv2d(x, conv.weight * (~mask).float(), conv.bias, padding=10)
    torch.testing.assert_close(conv(x), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="lattice"):
        conv.set_mask(torch.zeros(k, k, dtype=torch.bool))  # every tap active: no lattice fits
