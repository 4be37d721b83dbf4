"""ATBSN and NBSN against the official-style eager models (``atbsn.models.official_style``):
key layout, outputs and gradients for every hole size, any image size, the shared-trunk
multi-hole call, the blind-spot property, and bad input."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from atbsn.models import ATBSN, NBSN, TEACHER_HOLES
from atbsn.models.atbsn import pad_to_multiple
from atbsn.models.official_style import OfficialStyleATBSN, OfficialStyleNBSN, rotations, unrotations
from atbsn_kernels import reachable_pixels

# Key layout of the official checkpoints, read off the official implementation.
OFFICIAL = json.loads((Path(__file__).resolve().parent / "data" / "official_atbsn_state_dict.json").read_text())
BACKENDS = ["cpu", "reference"]
RTOL = 2e-5  # of the output's largest magnitude; pixel values are 0..255


def pair(model_type, official_type, seed=0, **kwargs):
    torch.manual_seed(seed)
    fast = model_type(**kwargs)
    official = official_type(**{k: v for k, v in kwargs.items() if k != "backend"})
    official.load_state_dict(fast.state_dict())
    return fast, official


def image(n=2, h=64, w=64, seed=1):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255


def assert_close(actual, expected, rtol=RTOL):
    scale = max(expected.abs().max().item(), 1.0)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= rtol * scale


def shapes(model):
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def test_state_dict_layout_is_official():
    assert shapes(ATBSN()) == OFFICIAL["ATBSN"]
    assert shapes(NBSN()) == OFFICIAL["NBSN"]
    assert sum(p.numel() for p in ATBSN().parameters()) == OFFICIAL["facts"]["atbsn_params"]
    assert sum(p.numel() for p in NBSN().parameters()) == OFFICIAL["facts"]["nbsn_params"]


def test_state_dict_layout_matches_the_official_style_model():
    assert shapes(ATBSN()) == shapes(OfficialStyleATBSN())
    assert shapes(NBSN()) == shapes(OfficialStyleNBSN())
    assert list(ATBSN().state_dict()) == list(OfficialStyleATBSN().state_dict())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hole", TEACHER_HOLES)
def test_atbsn_equals_official_for_every_hole(backend, hole):
    fast, official = pair(ATBSN, OfficialStyleATBSN, backend=backend)
    x = image()
    with torch.no_grad():
        assert_close(fast(x, hole), official(x, hole))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nbsn_equals_official(backend):
    fast, official = pair(NBSN, OfficialStyleNBSN, backend=backend)
    x = image()
    with torch.no_grad():
        assert_close(fast(x), official(x))


FP32_ULPS = 8 * torch.finfo(torch.float32).eps  # a few units of fp32 rounding: the same accuracy class


def run_model(model, x, args, dtype):
    """[output, grad_x, grad of every parameter] of an MSE loss against x, in ``dtype``."""
    model = copy.deepcopy(model).to(dtype)
    xi = x.to(dtype).clone().requires_grad_()
    out = model(xi, *args)
    ((out - x.to(dtype)) ** 2).mean().backward()
    return [out.detach(), xi.grad] + [p.grad for p in model.parameters()]


def relative_l2(got, want):
    return ((got.double() - want).norm() / want.norm()).item()


MODELS = [(ATBSN, OfficialStyleATBSN, (9,)), (NBSN, OfficialStyleNBSN, ())]


@pytest.mark.parametrize("model_type,official_type,args", MODELS)
def test_gradients_equal_official_in_float64(model_type, official_type, args):
    """In fp64, where rounding cannot flip a max-pool's argmax or a LeakyReLU's sign, the fused
    model's output and every gradient equal the official-style model's to 1e-10."""
    fast, official = pair(model_type, official_type, backend="cpu")
    x = image(n=2, h=64, w=64)
    for got, want in zip(run_model(fast, x, args, torch.float64), run_model(official, x, args, torch.float64)):
        assert relative_l2(got, want) <= 1e-10


@pytest.mark.parametrize("model_type,official_type,args", MODELS)
def test_float32_output_is_as_accurate_as_the_official_model(model_type, official_type, args):
    """Both models' fp32 outputs against the same model run in fp64: ours within 2x the official
    model's own fp32 error (or a few units of fp32 rounding). Gradients: per op in
    test_op_blind_spot_conv2d.py, and at model level over many seeds below (rounding-flipped
    argmaxes and gates, different in every fp32 implementation, dominate a single seed's error)."""
    fast, official = pair(model_type, official_type, backend="cpu")
    x = image(n=2, h=64, w=64)
    truth = run_model(official, x, args, torch.float64)[0]
    ours = relative_l2(run_model(fast, x, args, torch.float32)[0], truth)
    theirs = relative_l2(run_model(official, x, args, torch.float32)[0], truth)
    assert ours <= max(2 * theirs, FP32_ULPS), (ours, theirs)


def test_float32_gradients_are_as_accurate_as_the_official_model_over_seeds():
    """The whole parameter gradient (fp32, MSE, hole 9) against the same model run in fp64, over 40
    seeds: the geometric mean of our errors within 2x the official-style model's. One seed decides
    nothing: an argmax or gate that rounding flips (in either model, differently on every CPU)
    moves a seed's error from ~1e-7 to ~1e-5, so the median jumps with the share of flipped seeds;
    the mean of log errors weighs both the flips and the unflipped accuracy. Measured here: ours
    10^-5.99 (median 2.0e-7, 11 seeds above 5e-6), official 10^-5.78 (6.7e-7, 7 seeds)."""
    errors = {"ours": [], "official": []}
    for seed in range(40):
        fast, official = pair(ATBSN, OfficialStyleATBSN, seed=seed, backend="cpu", mid=24)
        x = image(n=2, h=32, w=32, seed=100 + seed)
        truth = torch.cat([g.flatten() for g in run_model(official, x, (9,), torch.float64)[2:]])
        for name, model in (("ours", fast), ("official", official)):
            grads = torch.cat([g.flatten() for g in run_model(model, x, (9,), torch.float32)[2:]])
            errors[name].append(relative_l2(grads, truth))
    ours, theirs = (torch.tensor(errors[name]).log10().mean().item() for name in ("ours", "official"))
    assert ours <= theirs + math.log10(2), (ours, theirs, errors)


def test_training_loss_matches_official_to_1e4_over_steps():
    fast, official = pair(ATBSN, OfficialStyleATBSN, backend="cpu", mid=16)
    x = image(n=2, h=32, w=32)
    losses = []
    for model in (fast, official):
        opt = torch.optim.Adam(model.parameters(), 3e-4)
        run = []
        for _ in range(3):
            opt.zero_grad()
            loss = (model(x, 9) - x).abs().mean()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    for a, b in zip(*losses):
        assert abs(a - b) <= 1e-4 * abs(b)


@pytest.mark.parametrize("h,w", [(40, 50), (33, 33), (31, 17), (1, 1)])
def test_square_after_padding_equals_official_on_the_zero_padded_image(h, w):
    fast, official = pair(ATBSN, OfficialStyleATBSN, backend="cpu", mid=8)
    x = image(n=1, h=h, w=w)
    padded = pad_to_multiple(x)
    assert padded.shape[-2] == padded.shape[-1] and padded.shape[-1] % 32 == 0
    with torch.no_grad():
        assert_close(fast(x, 3), official(padded, 3)[..., :h, :w])


def per_turn_reference(official, x, hole):
    """The official maths for a non-square image: each turn through the U-Net at its own shape."""
    turns = rotations_of(x)
    feats = [official.unet(t) for t in turns]
    s = (hole + 1) // 2
    feats = [torch.nn.functional.pad(f, (0, 0, s, 0))[:, :, : f.shape[2]] for f in feats]
    back = [feats[0], feats[1].transpose(2, 3).flip(2), feats[2].flip(2).flip(3), feats[3].transpose(2, 3).flip(3)]
    y = torch.nn.functional.leaky_relu(official.nin_A(torch.cat(back, 1)), 0.1)
    return official.nin_C(torch.nn.functional.leaky_relu(official.nin_B(y), 0.1))


def rotations_of(x):
    return [x, x.transpose(2, 3).flip(3), x.flip(2).flip(3), x.transpose(2, 3).flip(2)]


@pytest.mark.parametrize("h,w", [(32, 64), (45, 70), (64, 31)])
def test_non_square_images_run_each_turn_at_its_own_shape(h, w):
    fast, official = pair(ATBSN, OfficialStyleATBSN, backend="cpu", mid=8)
    x = image(n=2, h=h, w=w)
    with torch.no_grad():
        expected = per_turn_reference(official, pad_to_multiple(x), 5)[..., :h, :w]
        assert_close(fast(x, 5), expected)
        assert_close(fast.forward_holes(x, [5])[0], expected)


def test_rotation_helpers_invert_each_other():
    x = image(n=2, h=32, w=32)
    assert torch.equal(unrotations(rotations(x)), torch.cat([x] * 4, 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_holes_equals_separate_passes(backend):
    torch.manual_seed(0)
    model = ATBSN(backend=backend)
    x = image(n=1, h=64, w=64)
    holes = [11, 0, 3, 3, 1, 9, 5, 7]
    with torch.no_grad():
        outputs = model.forward_holes(x, holes)
        assert len(outputs) == len(holes)
        for hole, out in zip(holes, outputs):
            assert_close(out, model(x, hole))


def test_forward_holes_with_shift_beyond_the_image():
    torch.manual_seed(0)
    model = ATBSN(mid=8)
    x = image(n=1, h=4, w=6)
    with torch.no_grad():
        (out,) = model.forward_holes(x, [65])
        assert_close(out, model(x, 65))


def test_forward_holes_gradients_flow():
    torch.manual_seed(0)
    model = ATBSN(mid=8)
    x = image(n=1, h=32, w=32).requires_grad_()
    sum(o.sum() for o in model.forward_holes(x, [1, 3])).backward()
    assert x.grad.abs().sum() > 0 and model.nin_A.weight.grad.abs().sum() > 0


class AtHole(torch.nn.Module):
    """``model(x, hole)`` as a one-argument module, for ``reachable_pixels``."""

    def __init__(self, model, hole):
        super().__init__()
        self.model, self.hole = model, hole

    def forward(self, x):
        return self.model(x, self.hole)


def hole_square(size, centre, half):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[centre - half: centre + half + 1, centre - half: centre + half + 1] = True
    return mask


@pytest.mark.parametrize("hole", TEACHER_HOLES)
def test_blind_spot_is_exactly_the_hole(hole):
    torch.manual_seed(0)
    centre = 32
    reached = reachable_pixels(AtHole(ATBSN(mid=8), hole), (3, 64, 64), (centre, centre))
    half = hole // 2
    if hole:
        assert not reached[hole_square(64, centre, half)].any()
    else:
        assert reached[centre, centre]
    ring = hole_square(64, centre, half + 1) & ~hole_square(64, centre, half) if hole else hole_square(64, centre, 1)
    assert reached[ring].float().mean() > 0.5


def test_blind_spot_holds_at_the_border_of_a_padded_image():
    torch.manual_seed(0)
    reached = reachable_pixels(AtHole(ATBSN(mid=8), 3), (3, 40, 50), (39, 49))
    assert not reached[38:40, 48:50].any()
    assert reached[37, 49] and reached[39, 47]


def test_nbsn_is_not_blind():
    torch.manual_seed(0)
    reached = reachable_pixels(NBSN(mid=8), (3, 32, 32), (16, 16))
    assert reached[16, 16]


def test_backend_can_be_switched_on_the_same_weights():
    torch.manual_seed(0)
    model = ATBSN(mid=8)
    x = image(n=1, h=32, w=32)
    with torch.no_grad():
        out = model(x, 3)
        model.backend = "reference"
        assert model.unet.backend == "reference"
        assert_close(model(x, 3), out)


@pytest.mark.parametrize("hole,error", [(2, ValueError), (-1, ValueError), (1.0, TypeError), (True, TypeError)])
def test_bad_hole_sizes_are_refused(hole, error):
    with pytest.raises(error, match="hole_size"):
        ATBSN(mid=8)(image(n=1, h=32, w=32), hole)
    with pytest.raises(error, match="hole_size"):
        ATBSN(mid=8).forward_holes(image(n=1, h=32, w=32), [1, hole])


@pytest.mark.parametrize("x,error", [
    (torch.zeros(1, 1, 32, 32), ValueError),
    (torch.zeros(3, 32, 32), ValueError),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError),
    ("image", TypeError),
])
def test_bad_images_are_refused(x, error):
    with pytest.raises(error, match="x must"):
        ATBSN(mid=8)(x, 3)
    with pytest.raises(error, match="x must"):
        NBSN(mid=8)(x)


def test_triton_backend_runs_the_whole_model():
    """Every fused op of the model on the Triton kernels (the interpreter here: tiny width, forward)."""
    fast, official = pair(ATBSN, OfficialStyleATBSN, backend="triton", mid=4)
    x = image(n=1, h=32, w=32)
    with torch.no_grad():
        assert_close(fast(x, 3), official(x, 3))
        assert_close(fast.forward_holes(x, [1])[0], official(x, 1))
