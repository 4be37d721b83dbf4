"""``convert_bsn`` on small foreign-style BSNs, written here in the idioms of public BSN code
(tests/foreign_bsn.py): AP-BSN (centre-masked convs masked in place, in-place ReLUs), MM-BSN
(several mask shapes applied as weight * mask), AM-BSN (an X-shaped 5x5 masked through a forward
pre-hook), LG-BPN (9x9 diamond and 21x21 every-second-tap kernels, reflect and replicate padding,
a residual added in place): outputs, gradients, training steps and state dicts."""

import copy

import pytest
import torch
from foreign_bsn import (APStyleBSN, CentreMaskedConv, ChoppedMaskedConv, InPlaceMaskedConv, LGStyleBSN, MMStyleBSN,
                         am_style_bsn, lattice_keep, mm_masks)
from torch import nn

from atbsn_kernels import convert_bsn, reachable_pixels
from atbsn_kernels.convert import FusedConvForward
from atbsn_kernels.nn import BlindSpotConv2d


def models():
    torch.manual_seed(0)
    return {"ap": APStyleBSN(), "mm": MMStyleBSN(), "am": am_style_bsn(), "lg": LGStyleBSN()}


NAMES = ["ap", "mm", "am", "lg"]
REPLACED = {"ap": 2, "mm": 6, "am": 1, "lg": 3}


def fused(module: nn.Module) -> bool:
    return isinstance(module, BlindSpotConv2d) or isinstance(module.__dict__.get("_conv_forward"), FusedConvForward)


def tap_mask_of(module: nn.Module):
    """The converted module's tap mask (True = masked), None for a module that was not converted."""
    if isinstance(module, BlindSpotConv2d):
        return module.tap_mask
    if fused(module):
        return module.mask.reshape(-1, *module.mask.shape[-2:])[0] == 0
    return None


def active_part(model: nn.Module, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (a parameter or its gradient) with the converted model's masked taps zeroed."""
    keep = tap_mask_of(model.get_submodule(name.rpartition(".")[0]))
    return tensor if keep is None or name.endswith("bias") else tensor * (~keep).to(tensor.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_gradients_and_report(name):
    original = models()[name]
    converted = models()[name]
    converted.load_state_dict(original.state_dict())
    report = convert_bsn(converted)
    expected_count = REPLACED[name]
    assert len(report.replaced) == expected_count
    assert sum(fused(m) for m in converted.modules()) == expected_count
    x = torch.randn(2, 3, 23, 22)  # more than the 21x21 kernel's reflect padding
    xs = [x.clone().requires_grad_() for _ in range(2)]
    out_o, out_c = original(xs[0]), converted(xs[1])
    torch.testing.assert_close(out_c, out_o, atol=1e-5, rtol=1e-5)
    out_o.square().sum().backward()
    out_c.square().sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-5, rtol=1e-5)
    for (n_o, p_o), (n_c, p_c) in zip(original.named_parameters(), converted.named_parameters()):
        assert n_o == n_c
        torch.testing.assert_close(p_c.grad, active_part(converted, n_c, p_o.grad), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_three_adam_steps_train_both_alike(name):
    """Training the converted model (in-place ReLUs and residuals after the fused convs included)
    gives the original's weights at the active taps; its masked taps get zero gradient, so a
    replacement keeps their values (a module fused in place zeroes them itself, as before)."""
    original, converted = models()[name], models()[name]
    converted.load_state_dict(original.state_dict())
    convert_bsn(converted)
    before = {n: p.detach().clone() for n, p in converted.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(2, 3, 23, 22, generator=gen) for _ in range(3)]
    for model in (original, converted):
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x in batches:
            optimiser.zero_grad()
            (model(x) - x).abs().mean().backward()
            optimiser.step()
    for (n_o, p_o), (n_c, p_c) in zip(original.named_parameters(), converted.named_parameters()):
        torch.testing.assert_close(active_part(converted, n_c, p_c), active_part(converted, n_c, p_o),
                                   atol=1e-5, rtol=1e-4)
        masked = p_c - active_part(converted, n_c, p_c)
        module = converted.get_submodule(n_c.rpartition(".")[0])
        kept = before[n_c] - active_part(converted, n_c, before[n_c])
        # a replacement never touches them; a module fused in place still masks its weight itself
        assert torch.equal(masked, kept if isinstance(module, BlindSpotConv2d) or not fused(module) else 0 * kept)


def test_a_conv_whose_forward_takes_more_is_fused_in_place():
    """LG-BPN's DSPMC idiom (forward(x, refine, dict=), another computation in eval mode): the module
    keeps its class and forward; only nn.Conv2d's conv inside it runs fused, in both modes."""
    torch.manual_seed(0)
    original = ChoppedMaskedConv(2, 3, lattice_keep(21, 2))
    converted = copy.deepcopy(original)
    report = convert_bsn(nn.Sequential(converted))
    assert type(converted) is ChoppedMaskedConv and isinstance(converted._conv_forward, FusedConvForward)
    assert "fused in place (its forward also takes refine, dict; probed in training and eval mode)" \
        in report.replaced[0][1]
    x = torch.randn(1, 2, 25, 26)
    for training in (True, False):
        original.train(training)
        converted.train(training)
        torch.testing.assert_close(converted(x, False, dict=None), original(x), atol=1e-5, rtol=1e-5)
    assert converted._conv_forward.calls >= 3  # training, and both halves in eval
    assert set(converted.state_dict()) == set(original.state_dict())
    copied = copy.deepcopy(converted)  # the fused conv follows the copy, not the original
    assert copied._conv_forward.conv is copied
    assert not convert_bsn(nn.Sequential(converted)).replaced  # converting twice does nothing more


def test_a_forward_with_more_arguments_that_never_runs_its_conv_is_left_alone():
    class Functional(InPlaceMaskedConv):
        def forward(self, x, scale=1.0):
            return torch.nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding) * scale

    report = convert_bsn(nn.Sequential(Functional(2, 2, lattice_keep(5, 2))))
    assert not report.replaced and "never runs nn.Conv2d's conv" in report.left_alone[0][1]


def test_reflect_and_replicate_padding_are_kept():
    model = LGStyleBSN()
    report = convert_bsn(model)
    details = dict(report.replaced)
    assert "padding_mode reflect" in details["diamond"] and "padding_mode replicate" in details["centre"]
    assert model.diamond.padding_mode == "reflect" and model.centre.padding_mode == "replicate"


def test_lg_style_model_converts_every_masked_conv_in_eval_mode_too():
    original, converted = models()["lg"], models()["lg"]
    converted.load_state_dict(original.state_dict())
    convert_bsn(converted)
    x = torch.randn(1, 3, 23, 22)
    original.eval()
    converted.eval()
    torch.testing.assert_close(converted(x), original(x), atol=1e-5, rtol=1e-5)


def test_a_21x21_kernel_on_a_lattice_runs_as_11x11_at_dilation_2():
    model = nn.Sequential(InPlaceMaskedConv(2, 3, lattice_keep(21, 2)))
    original = InPlaceMaskedConv(2, 3, lattice_keep(21, 2))
    original.load_state_dict(model[0].state_dict())
    report = convert_bsn(model)
    assert "runs as 11x11 at dilation 2" in dict(report.replaced)["0"]
    assert tuple(model[0].weight.shape) == (3, 2, 21, 21)  # the state dict keeps the original's shapes
    x = torch.randn(1, 2, 25, 24)
    torch.testing.assert_close(model(x), original(x), atol=1e-5, rtol=1e-5)


def test_a_large_kernel_off_any_lattice_is_left_alone_with_the_reason():
    keep = lattice_keep(21, 2)
    keep[0, 1] = 1  # one tap off the lattice
    report = convert_bsn(nn.Sequential(InPlaceMaskedConv(2, 2, keep)))
    assert not report.replaced
    assert "lie on no lattice that makes it at most 11" in report.left_alone[0][1]


@pytest.mark.parametrize("name", NAMES)
def test_state_dicts_round_trip_both_ways(name):
    original, converted = models()[name], models()[name]
    convert_bsn(converted)
    assert set(converted.state_dict()) == set(original.state_dict())
    converted.load_state_dict(original.state_dict())
    original.load_state_dict(converted.state_dict())
    x = torch.randn(1, 3, 23, 22)
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
    assert "left   1  no 0/1 weight mask: a plain conv: 3" in str(report)


def test_report_groups_the_convs_left_alone_by_reason():
    model = nn.Sequential(*[nn.Conv2d(2, 2, 1) for _ in range(5)], CentreMaskedConv(2, 3))
    text = str(convert_bsn(model))
    assert text.splitlines() == [
        "converted 1 masked conv(s), left 5 conv(s) alone",
        "  replaced  5: CentreMaskedConv 3x3, 1 masked tap(s), mask 'mask'",
        "  left   5  no 0/1 weight mask: a plain conv: 0, 1, 2 and 2 more",
    ]


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


def test_a_masked_conv_whose_forward_fails_on_the_probe_is_left_alone():
    class Fussy(CentreMaskedConv):
        def forward(self, x):
            if not self.training:
                raise RuntimeError("needs CUDA")
            return super().forward(x)

    model = nn.Sequential(Fussy(2, 3)).eval()
    report = convert_bsn(model)
    assert not report.replaced and "its forward raised RuntimeError on a probe" in report.left_alone[0][1]
