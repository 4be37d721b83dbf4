"""``convert_bsn`` on small foreign-style BSNs, written here from the papers' descriptions:
AP-BSN (centre-masked 3x3 / 5x5 first convs, dilated branches), MM-BSN (several mask shapes
applied as weight * mask), AM-BSN (an X-shaped 5x5 masked through a forward pre-hook)."""

import pytest
import torch
from foreign_bsn import APStyleBSN, CentreMaskedConv, MMStyleBSN, am_style_bsn, mm_masks
from torch import nn

from atbsn_kernels import convert_bsn, reachable_pixels
from atbsn_kernels.nn import BlindSpotConv2d


def models():
    torch.manual_seed(0)
    return {"ap": APStyleBSN(), "mm": MMStyleBSN(), "am": am_style_bsn()}


@pytest.mark.parametrize("name", ["ap", "mm", "am"])
def test_outputs_gradients_and_report(name):
    original = models()[name]
    converted = models()[name]
    converted.load_state_dict(original.state_dict())
    report = convert_bsn(converted)
    expected_count = {"ap": 2, "mm": 6, "am": 1}[name]
    assert len(report.replaced) == expected_count
    assert sum(isinstance(m, BlindSpotConv2d) for m in converted.modules()) == expected_count
    x = torch.randn(2, 3, 13, 11)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    out_o, out_c = original(xs[0]), converted(xs[1])
    torch.testing.assert_close(out_c, out_o, atol=1e-5, rtol=1e-5)
    out_o.square().sum().backward()
    out_c.square().sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-5, rtol=1e-5)
    for (n_o, p_o), (n_c, p_c) in zip(original.named_parameters(), converted.named_parameters()):
        assert n_o == n_c
        keep = getattr(converted.get_submodule(n_c.rpartition(".")[0]), "tap_mask", None)
        grad_o = p_o.grad if keep is None or n_c.endswith("bias") else p_o.grad * (~keep).to(p_o.dtype)
        torch.testing.assert_close(p_c.grad, grad_o, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["ap", "mm", "am"])
def test_state_dicts_round_trip_both_ways(name):
    original, converted = models()[name], models()[name]
    convert_bsn(converted)
    assert set(converted.state_dict()) == set(original.state_dict())
    converted.load_state_dict(original.state_dict())
    original.load_state_dict(converted.state_dict())
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(converted(x), original(x), atol=1e-5, rtol=1e-5)


def test_loading_a_different_mask_changes_the_taps_as_in_the_original():
    original, converted = MMStyleBSN(), MMStyleBSN()
    convert_bsn(converted)
    state = original.state_dict()
    state["masked.0.mask"] = mm_masks(5)[3]  # '+' instead of the centre
    original.load_state_dict(state)
    converted.load_state_dict(state)
    assert converted.masked[0].tap_mask.sum() == 9
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(converted(x), original(x), atol=1e-5, rtol=1e-5)


def test_report_leaves_unsupported_convs_alone_with_reasons():
    strided = CentreMaskedConv(4, 3)
    strided.stride = (2, 2)
    grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    grouped.register_buffer("mask", torch.ones(3, 3))
    grouped.mask[1, 1] = 0
    varying = nn.Conv2d(2, 2, 3, padding=1)
    varying.register_buffer("mask", torch.ones(2, 2, 3, 3))
    varying.mask[0, 0, 1, 1] = 0
    model = nn.Sequential(strided, grouped, varying, nn.Conv2d(4, 4, 1))
    report = convert_bsn(model)
    assert not report.replaced
    reasons = dict(report.left_alone)
    assert "stride" in reasons["0"] and "groups=2" in reasons["1"]
    assert "differs between channels" in reasons["2"] and "plain conv" in reasons["3"]
    assert "left      3: no 0/1 weight mask" in str(report)


def test_refuses_a_mask_the_forward_ignores():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    conv.register_buffer("mask", torch.ones(3, 3))
    conv.mask[1, 1] = 0  # never applied: converting would change the output
    report = convert_bsn(nn.Sequential(conv))
    assert not report.replaced and "not the masked conv" in report.left_alone[0][1]


def test_bad_arguments():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        convert_bsn("model")
    with pytest.raises(ValueError, match="backend must be one of"):
        convert_bsn(nn.Sequential(), backend="gpu")


def test_reachable_pixels_shows_the_blind_spot():
    model = models()["ap"]
    convert_bsn(model)
    reached = reachable_pixels(model, (3, 15, 15), (7, 7))
    assert not reached[7, 7], "a BSN must not see its own centre pixel"
    assert reached[7, 5] and reached.sum() > 20
    plain = nn.Conv2d(3, 3, 3, padding=1)
    assert reachable_pixels(plain, (3, 5, 5), (2, 2))[1:4, 1:4].all()
    with pytest.raises(ValueError, match="pixel must lie inside"):
        reachable_pixels(plain, (3, 5, 5), (5, 0))
