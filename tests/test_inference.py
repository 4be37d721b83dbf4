"""Tiled inference: tile placement, exactness for pointwise and local functions, smooth blending,
a real ATBSN against the whole-image pass, gradients, the progress bar, and bad input."""

import pytest
import torch
import torch.nn.functional as F

from atbsn.errors import InputError
from atbsn.inference import denoise_tiled, tile_starts
from atbsn.models import ATBSN


def image(n=1, h=37, w=53, seed=0, dtype=torch.float64):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 255


def box_blur(radius):
    """Mean over a (2r+1)^2 window with zero padding: output depends on inputs within ``radius``."""
    size = 2 * radius + 1

    def blur(t):
        kernel = torch.full((3, 1, size, size), 1.0 / size**2, dtype=t.dtype)
        return F.conv2d(t, kernel, padding=radius, groups=3)

    return blur


class Recorder:
    """A pointwise fn that records where each tile came from (x holds each pixel's row and column)."""

    def __init__(self):
        self.tiles = []

    def __call__(self, t):
        self.tiles.append((int(t[0, 0, 0, 0]), int(t[0, 1, 0, 0]), t.shape[-2], t.shape[-1]))
        return t.clone()


def coordinates(h, w):
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([rows, cols, rows + cols]).double()[None]


@pytest.mark.parametrize("tile", [None, 53, 100])
def test_one_call_when_the_image_fits(tile):
    x, calls = image(), []
    out = denoise_tiled(lambda t: calls.append(t) or 2 * t, x, tile=tile)
    assert len(calls) == 1 and calls[0] is x
    assert torch.equal(out, 2 * x)


def test_tiles_are_full_size_and_the_last_is_moved_back_inside():
    record = Recorder()
    x = coordinates(37, 53)
    torch.testing.assert_close(denoise_tiled(record, x, tile=16, overlap=5), x, rtol=1e-13, atol=1e-12)
    rows, cols = [0, 11, 21], [0, 11, 22, 33, 37]  # stride 11; the last tiles end at 37 and 53
    assert record.tiles == [(r, c, 16, 16) for r in rows for c in cols]


def test_an_axis_shorter_than_the_tile_gets_one_tile_of_its_length():
    record = Recorder()
    denoise_tiled(record, coordinates(12, 50), tile=20, overlap=4)
    assert record.tiles == [(0, 0, 12, 20), (0, 16, 12, 20), (0, 30, 12, 20)]


CONFIGS = [(16, 5), (10, 0), (20, 19), (7, 1), (8, 7), (36, 35), (40, 12)]


@pytest.mark.parametrize("tile,overlap", CONFIGS)
def test_pointwise_fn_is_exact(tile, overlap):
    x = image(n=2)
    fn = lambda t: 2 * t + 1  # noqa: E731
    torch.testing.assert_close(denoise_tiled(fn, x, tile=tile, overlap=overlap), fn(x), rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("tile,overlap", CONFIGS)
def test_weights_sum_to_one_in_float32(tile, overlap):
    x = image(dtype=torch.float32)
    out = denoise_tiled(torch.ones_like, x, tile=tile, overlap=overlap)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones_like(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("tile,extra", [(16, 0), (19, 1), (24, 6)])
def test_local_fn_is_exact_once_the_overlap_covers_its_reach(radius, tile, extra):
    """Tile pixels within ~overlap/4 of an inner edge get weight 0, so ``overlap >= 4r - 2`` suffices."""
    x, blur = image(), box_blur(radius)
    out = denoise_tiled(blur, x, tile=tile, overlap=4 * radius - 2 + extra)
    torch.testing.assert_close(out, blur(x), rtol=1e-13, atol=1e-11)


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_local_fn_is_not_exact_with_a_smaller_overlap(radius):
    """The converse, so that the exactness above is a property of the blend and not of the test."""
    x, blur = image(), box_blur(radius)
    out = denoise_tiled(blur, x, tile=16, overlap=4 * radius - 3)
    assert (out - blur(x)).abs().max() > 1e-3


def test_blend_is_a_gradual_ramp_not_a_step():
    """Tiles returning 0 then 1: over the middle 16 pixels of the overlap (32) the output climbs by 1/16 a pixel."""
    calls = []

    def tile_index(t):
        calls.append(t)
        return torch.full_like(t, len(calls) - 1)

    out = denoise_tiled(tile_index, torch.zeros(1, 3, 8, 96, dtype=torch.float64), tile=64, overlap=32)
    assert len(calls) == 2
    steps = out[0, 0, 0].diff()
    assert steps.min() >= 0 and steps.max() == pytest.approx(1 / 16)
    assert steps[39:56].tolist() == [1 / 32] + [1 / 16] * 15 + [1 / 32]  # out[40:56] = 1/32, 3/32, ..., 31/32
    assert steps[:39].abs().max() == 0 and steps[56:].abs().max() == 0


def uniform_average(fn, x, tile, overlap):
    """The plain mean of the overlapping tiles (the same tiles as ``denoise_tiled``), for comparison."""
    total, count = torch.zeros_like(x), torch.zeros_like(x)
    for r in tile_starts(x.shape[-2], tile, overlap):
        for c in tile_starts(x.shape[-1], tile, overlap):
            total[..., r : r + tile, c : c + tile] += fn(x[..., r : r + tile, c : c + tile])
            count[..., r : r + tile, c : c + tile] += 1
    return total / count


def test_real_atbsn_is_close_to_the_whole_image_pass():
    """A random-init ATBSN sees across the whole 64-pixel tile (five 2x poolings), so tiles cannot be
    exact; the blend, which drops the tiles' edge pixels, is much closer than a plain mean of the tiles."""
    torch.manual_seed(0)
    model = ATBSN(3, 8, 3).eval()
    x, fn = image(h=80, w=72, dtype=torch.float32), lambda t: model(t, 3)  # noqa: E731
    with torch.no_grad():
        whole = fn(x)
        tiled = denoise_tiled(fn, x, tile=64, overlap=32)
        plain = uniform_average(fn, x, tile=64, overlap=32)
    assert (tiled - whole).square().mean().sqrt() <= 0.15 * whole.std()  # measured 0.121
    assert (tiled - whole).abs().mean() <= 0.75 * (plain - whole).abs().mean()  # measured 0.67


def test_gradients_flow_through():
    x = image(h=20, w=30).requires_grad_()
    denoise_tiled(lambda t: t * t, x, tile=8, overlap=3).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=1e-13, atol=1e-11)


def test_progress_bar_counts_tiles(capsys):
    denoise_tiled(torch.clone, image(), tile=16, overlap=5, progress=True)
    assert "15/15" in capsys.readouterr().err
    denoise_tiled(torch.clone, image(), tile=16, overlap=5)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"tile": 0}, InputError, "tile must be >= 1, got 0"),
        ({"tile": -4}, InputError, "tile must be >= 1"),
        ({"tile": 16.0}, TypeError, "tile must be an int, got float"),
        ({"tile": True}, TypeError, "tile must be an int, got bool"),
        ({"tile": 16, "overlap": -1}, InputError, "overlap must be >= 0, got -1"),
        ({"tile": 16, "overlap": 16}, InputError, r"overlap must be < tile \(16\), got 16"),
        ({"tile": 16, "overlap": "4"}, TypeError, "overlap must be an int, got str"),
    ],
)
def test_bad_tile_or_overlap(kwargs, error, message):
    with pytest.raises(error, match=message):
        denoise_tiled(torch.clone, image(), **kwargs)


def test_bad_fn_or_image():
    with pytest.raises(TypeError, match="fn must be callable"):
        denoise_tiled(None, image(), tile=16)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        denoise_tiled(torch.clone, [[0.0]], tile=16)
    with pytest.raises(InputError, match=r"x must be \(N, C, H, W\), got shape \(3, 37, 53\)"):
        denoise_tiled(torch.clone, image()[0], tile=16)
    with pytest.raises(InputError, match=r"fn must return a tensor of its input's shape \(1, 3, 16, 16\), got \(1, 3, 15, 15\)"):
        denoise_tiled(lambda t: t[..., 1:, 1:], image(), tile=16, overlap=4)
    with pytest.raises(InputError, match="fn must return a tensor of its input's shape .*, got NoneType"):
        denoise_tiled(lambda t: None, image(), tile=16, overlap=4)
