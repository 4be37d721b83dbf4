"""PSNR and SSIM against scikit-image (the independent implementation) and by hand: odd sizes,
random and structured images, several noise levels, batches, 3-D input, identical images, errors."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from atbsn.errors import InputError
from atbsn.metrics import psnr, ssim

SIZES = [(11, 11), (13, 17), (24, 31), (40, 33)]
NOISE = [2.0, 15.0, 50.0]


def random_image(h, w, seed):
    return np.random.default_rng(seed).uniform(0, 255, (h, w, 3))


def structured_image(h, w, seed):
    """Ramps, a sinusoid and a checkerboard: smooth regions and edges, unlike uniform noise."""
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = 255 * (rows / h + cols / w) / 2
    wave = 127.5 + 127.5 * np.sin(rows / 2.3 + cols / 3.1 + seed)
    checker = 255.0 * (((rows // 4) + (cols // 5)) % 2)
    return np.stack([ramp, wave, checker], axis=-1)


def noisy(clean, sigma, seed):
    return np.clip(clean + np.random.default_rng(seed + 100).normal(0, sigma, clean.shape), 0, 255)


def chw(image_hwc):
    return torch.from_numpy(image_hwc).permute(2, 0, 1)


def skimage_ssim(a, b, data_range=255):
    return structural_similarity(a, b, channel_axis=-1, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.mark.parametrize("make", [random_image, structured_image])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sigma", NOISE)
def test_ssim_and_psnr_match_skimage(make, size, sigma):
    clean = make(*size, seed=size[0])
    test = noisy(clean, sigma, seed=size[1])
    assert ssim(chw(clean), chw(test)).item() == pytest.approx(skimage_ssim(clean, test), abs=1e-9)
    assert psnr(chw(clean), chw(test)).item() == pytest.approx(peak_signal_noise_ratio(clean, test, data_range=255), abs=1e-9)


def test_ssim_of_one_channel_matches_skimage_grayscale():
    clean = structured_image(19, 23, seed=0)[..., 1]
    test = noisy(clean, 20.0, seed=1)
    expected = structural_similarity(clean, test, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(torch.from_numpy(clean)[None], torch.from_numpy(test)[None]).item() == pytest.approx(expected, abs=1e-9)


def test_ssim_is_the_mean_of_the_channel_ssims():
    clean, test = structured_image(21, 18, seed=2), noisy(structured_image(21, 18, seed=2), 30.0, seed=3)
    x, y = chw(clean), chw(test)
    per_channel = [ssim(x[c : c + 1], y[c : c + 1]).item() for c in range(3)]
    assert ssim(x, y).item() == pytest.approx(sum(per_channel) / 3, abs=1e-12)


def batch(n=3, h=23, w=19):
    """``n`` clean/noisy pairs with different noise levels, as (N, 3, H, W) float32 tensors."""
    cleans = [structured_image(h, w, seed=k) if k % 2 else random_image(h, w, seed=k) for k in range(n)]
    tests = [noisy(clean, 5.0 + 20 * k, seed=k) for k, clean in enumerate(cleans)]
    stack = lambda images: torch.stack([chw(image) for image in images]).float()  # noqa: E731
    return stack(cleans), stack(tests)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_batch_gives_one_float64_value_per_image(metric):
    x, y = batch()
    values = metric(x, y)
    assert values.shape == (3,) and values.dtype == torch.float64
    for k in range(3):
        single = metric(x[k], y[k])
        assert single.shape == () and single.item() == values[k].item()


def test_batch_matches_skimage_per_image():
    x, y = batch()
    to_hwc = lambda t: t.permute(1, 2, 0).double().numpy()  # noqa: E731
    for k in range(3):
        assert ssim(x, y)[k].item() == pytest.approx(skimage_ssim(to_hwc(x[k]), to_hwc(y[k])), abs=1e-9)
        assert psnr(x, y)[k].item() == pytest.approx(peak_signal_noise_ratio(to_hwc(x[k]), to_hwc(y[k]), data_range=255), abs=1e-9)


def test_identical_images():
    x, _ = batch()
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_psnr_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 255.0  # MSE = 255^2 / 12
    assert psnr(x, y).item() == pytest.approx(10 * math.log10(12), abs=1e-12)
    assert psnr(x + 10, x + 12).item() == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-12)
    assert psnr(x / 255, y / 255, data_range=1.0).item() == pytest.approx(10 * math.log10(12), abs=1e-12)


def test_ssim_data_range_sets_the_constants():
    x, y = batch(n=1)
    assert ssim(x.double() / 255, y.double() / 255, data_range=1.0).item() == pytest.approx(ssim(x, y).item(), abs=1e-12)
    clean, test = (t[0].permute(1, 2, 0).double().numpy() for t in (x, y))
    assert ssim(x, y, data_range=100.0).item() == pytest.approx(skimage_ssim(clean, test, data_range=100), abs=1e-9)
    assert ssim(x, y, data_range=100.0).item() != pytest.approx(ssim(x, y).item(), abs=1e-6)


@pytest.mark.parametrize("shape", [(3, 10, 11), (3, 11, 10), (1, 3, 5, 40)])
def test_ssim_rejects_images_smaller_than_the_window(shape):
    with pytest.raises(InputError, match="at least 11x11"):
        ssim(torch.zeros(shape), torch.zeros(shape))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(metric):
    with pytest.raises(InputError, match=r"\(1, 3, 16, 16\) and \(1, 3, 16, 17\)"):
        metric(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("shape", [(16, 16), (1, 1, 3, 16, 16), (0, 16, 16)])
def test_rejects_bad_dimensions(metric, shape):
    with pytest.raises(InputError, match="images must be"):
        metric(torch.zeros(shape), torch.zeros(shape))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_rejects_non_tensors(metric):
    with pytest.raises(TypeError, match="y must be a real-valued torch.Tensor, got ndarray"):
        metric(torch.zeros(3, 16, 16), np.zeros((3, 16, 16)))
    with pytest.raises(TypeError, match="x must be a real-valued torch.Tensor, got torch.bool"):
        metric(torch.zeros(3, 16, 16, dtype=torch.bool), torch.zeros(3, 16, 16))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("data_range", [0, -1.0, math.inf, math.nan])
def test_rejects_bad_data_range(metric, data_range):
    with pytest.raises(InputError, match="data_range must be positive"):
        metric(torch.zeros(3, 16, 16), torch.ones(3, 16, 16), data_range=data_range)


@pytest.mark.parametrize("data_range", ["255", None, True])
def test_rejects_non_numeric_data_range(data_range):
    with pytest.raises(TypeError, match="data_range must be a real number"):
        psnr(torch.zeros(3, 16, 16), torch.ones(3, 16, 16), data_range=data_range)
