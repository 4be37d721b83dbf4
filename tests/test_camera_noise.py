"""Synthetic camera noise (unprocess -> raw noise -> process) and the embedded data set built on it."""

import dataclasses

import pytest
import torch

from atbsn.data.embedded import HELD_OUT_IMAGES, SPLITS, TRAIN_IMAGES, clean_image, embedded_dataset
from atbsn.data.unprocess import (NoiseRange, add_camera_noise, demosaic, mosaic, noise_autocorrelation, process,
                                  random_camera, unprocess)
from atbsn.errors import InputError

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: as fast here, and kinder to whatever else runs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def centre_crop(image, size=128):
    h, w = image.shape[1:]
    top, left = (h - size) // 2 // 2 * 2, (w - size) // 2 // 2 * 2
    return image[:, top:top + size, left:left + size].contiguous()


@pytest.fixture(scope="module")
def photos():
    return {name: centre_crop(clean_image(name)) for name in PHOTOS}


def psnr01(noisy, clean):
    return float(10 * torch.log10(1 / ((noisy.double() - clean.double()) ** 2).mean()))


def noisy_versions(photos, cameras=4, seed=0, noise=NoiseRange()):
    generator = torch.Generator().manual_seed(seed)
    for name, clean in photos.items():
        for _ in range(cameras):
            yield name, clean, add_camera_noise(clean, random_camera(generator, noise), generator)


def test_the_measure_sees_white_noise_as_uncorrelated_and_blurred_noise_as_correlated():
    generator = torch.Generator().manual_seed(0)
    white = torch.randn(3, 128, 128, generator=generator)
    assert abs(noise_autocorrelation(white)) < 0.05
    assert abs(noise_autocorrelation(white + 5)) < 0.05  # the mean is removed
    # Averaging horizontal neighbours: lag-1 correlation 0.5 horizontally, 0 vertically -> 0.25.
    pairs = (white[:, :, 1:] + white[:, :, :-1])[:, :127]
    assert noise_autocorrelation(pairs) == pytest.approx(0.25, abs=0.03)


def test_camera_noise_is_spatially_correlated_like_real_srgb_noise(photos):
    values = []
    for name, clean, noisy in noisy_versions(photos):
        correlation = noise_autocorrelation(noisy - clean)
        assert 0.4 <= correlation <= 0.6, (name, correlation)
        values.append(correlation)
    mean = sum(values) / len(values)
    assert 0.45 <= mean <= 0.6


def test_noisy_psnr_lies_in_the_documented_range(photos):
    values = [psnr01(noisy, clean) for _, clean, noisy in noisy_versions(photos, seed=1)]
    assert all(20 <= value <= 31 for value in values), values
    assert max(values) - min(values) > 1  # the cameras really differ in noise level


def test_stronger_shot_noise_gives_lower_psnr(photos):
    clean = photos["coffee.png"]

    def mean_psnr(shot):
        noise = NoiseRange(shot, shot)
        return sum(psnr01(noisy, clean) for _, _, noisy in noisy_versions({"c": clean}, 3, 2, noise)) / 3

    weak, strong = mean_psnr(NoiseRange().min_shot), mean_psnr(NoiseRange().max_shot)
    assert strong < weak - 3
    assert 20 <= strong and weak <= 31


def test_output_is_in_range_same_shape_and_dtype(photos):
    for _, clean, noisy in noisy_versions(photos, cameras=2, seed=3):
        assert noisy.shape == clean.shape and noisy.dtype == clean.dtype == torch.float32
        assert noisy.min() >= 0 and noisy.max() <= 1
        assert not torch.equal(noisy, clean)
    # A bright and a dark image clip at the ends rather than leave [0, 1].
    generator = torch.Generator().manual_seed(0)
    for value in (0.0, 1.0):
        flat = torch.full((3, 16, 16), value)
        noisy = add_camera_noise(flat, random_camera(generator), generator)
        assert noisy.min() >= 0 and noisy.max() <= 1


def test_the_noise_is_roughly_zero_mean(photos):
    clean = photos["chelsea.png"]
    generator = torch.Generator().manual_seed(4)
    noise = add_camera_noise(clean, random_camera(generator), generator) - clean
    assert abs(float(noise.mean())) < 0.1 * float(noise.std())


def test_deterministic_for_a_seeded_generator(photos):
    clean = photos["chelsea.png"]

    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        camera = random_camera(generator)
        return camera, add_camera_noise(clean, camera, generator)

    (camera_a, a), (camera_b, b), (_, c) = draw(11), draw(11), draw(12)
    assert torch.equal(a, b)
    assert torch.equal(camera_a.rgb_to_cam, camera_b.rgb_to_cam) and camera_a.shot_noise == camera_b.shot_noise
    assert not torch.equal(a, c)


def test_a_camera_without_noise_returns_the_clean_image():
    generator = torch.Generator().manual_seed(0)
    silent = dataclasses.replace(random_camera(generator), shot_noise=0.0, read_noise=0.0)
    clean = torch.rand(3, 16, 20, generator=generator)
    assert torch.equal(add_camera_noise(clean, silent, generator), clean)


def test_random_cameras_are_plausible():
    generator = torch.Generator().manual_seed(0)
    noise = NoiseRange()
    for _ in range(20):
        camera = random_camera(generator, noise)
        assert torch.allclose(camera.rgb_to_cam.sum(dim=1), torch.ones(3))
        assert (camera.rgb_to_cam > 0).all()
        assert noise.min_shot <= camera.shot_noise <= noise.max_shot
        assert 0 < camera.read_noise
        assert 1.9 <= camera.red_gain <= 2.4 and 1.5 <= camera.blue_gain <= 1.9
        assert 0 < camera.rgb_gain <= 2


@pytest.mark.parametrize("shape", [(3, 15, 16), (3, 16, 15), (3, 15, 15), (1, 16, 16), (16, 16), (1, 3, 16, 16)])
def test_odd_size_or_wrong_shape_is_refused(shape):
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match="even H and W"):
        add_camera_noise(torch.rand(shape), random_camera(generator), generator)


@pytest.mark.parametrize("low, high", [(0.0, 1e-3), (2e-3, 1e-3), (-1e-3, 1e-3)])
def test_bad_noise_range(low, high):
    with pytest.raises(InputError, match="noise range"):
        NoiseRange(low, high)


def test_mosaic_keeps_one_colour_per_site_rggb():
    image = torch.stack([torch.full((4, 6), 1.0), torch.full((4, 6), 2.0), torch.full((4, 6), 3.0)])
    bayer = mosaic(image)
    assert bayer.shape == (4, 6)
    assert torch.equal(bayer[0::2, 0::2], torch.full((2, 3), 1.0))
    assert torch.equal(bayer[0::2, 1::2], torch.full((2, 3), 2.0))
    assert torch.equal(bayer[1::2, 0::2], torch.full((2, 3), 2.0))
    assert torch.equal(bayer[1::2, 1::2], torch.full((2, 3), 3.0))


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_demosaic_of_a_constant_mosaic_is_constant(smoothing):
    bayer = torch.full((10, 12), 0.37, dtype=torch.float64)
    assert torch.allclose(demosaic(bayer, smoothing), torch.full((3, 10, 12), 0.37, dtype=torch.float64), atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_demosaic_recovers_constant_colours_and_linear_ramps(smoothing):
    colour = torch.tensor([0.3, 0.6, 0.2], dtype=torch.float64).view(3, 1, 1).expand(3, 8, 10)
    assert torch.allclose(demosaic(mosaic(colour), smoothing), colour, atol=1e-7)
    rows, cols = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    ramp = (0.05 * cols + 0.03 * rows).double()
    image = torch.stack([ramp, 0.5 * ramp + 0.1, 1 - 0.4 * ramp])
    # Both interpolations are exact for linear images away from the (mirrored) border.
    restored = demosaic(mosaic(image), smoothing)
    assert torch.allclose(restored[:, 2:-2, 2:-2], image[:, 2:-2, 2:-2], atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_demosaic_keeps_the_sampled_values(smoothing):
    bayer = torch.rand(12, 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(mosaic(demosaic(bayer, smoothing)), bayer)


def test_unprocess_then_process_returns_a_flat_image():
    generator = torch.Generator().manual_seed(5)
    camera = random_camera(generator)
    for value in (0.1, 0.4, 0.7):
        clean = torch.full((3, 8, 8), value, dtype=torch.float64) * torch.tensor([0.9, 1.0, 0.8]).view(3, 1, 1)
        restored = process(mosaic(unprocess(clean, camera)), camera)
        assert torch.allclose(restored, clean, atol=1e-6)


def test_embedded_splits_are_disjoint():
    assert set(TRAIN_IMAGES).isdisjoint(HELD_OUT_IMAGES)
    assert SPLITS == {"train": TRAIN_IMAGES, "held_out": HELD_OUT_IMAGES}


@pytest.mark.parametrize("kind,psnr_range", [("phone", (15, 31)), ("raw", (20, 31))])
def test_embedded_held_out_data_is_deterministic_8_bit_and_named(kind, psnr_range):
    first = embedded_dataset("held_out", realisations=2, seed=0, kind=kind)
    second = embedded_dataset("held_out", realisations=2, seed=0, kind=kind)
    other_seed = embedded_dataset("held_out", realisations=1, seed=1, kind=kind)
    assert [image.name for image in first] == [f"{name.split('.')[0]}_{index}" for name in HELD_OUT_IMAGES
                                               for index in range(2)]
    for a, b in zip(first, second):
        assert a.name == b.name and torch.equal(a.noisy, b.noisy) and torch.equal(a.clean, b.clean)
    for image in first:
        assert image.noisy.dtype == torch.float32 and image.noisy.shape == image.clean.shape
        assert image.noisy.shape[1] % 2 == 0 and image.noisy.shape[2] % 2 == 0
        assert torch.equal(image.noisy, image.noisy.round())
        assert image.noisy.min() >= 0 and image.noisy.max() <= 255
        assert psnr_range[0] <= psnr01(image.noisy / 255, image.clean / 255) <= psnr_range[1]
    if kind == "raw":  # the phone's ground truth is the photo through its lens (tests/test_isp.py)
        assert torch.equal(first[0].clean, clean_image(HELD_OUT_IMAGES[0]) * 255)
    assert not torch.equal(first[0].noisy, first[1].noisy)  # each realisation has its own camera
    assert not torch.equal(first[0].noisy, other_seed[0].noisy)


def test_embedded_train_and_held_out_do_not_share_images():
    train = embedded_dataset("train", realisations=1, seed=0)
    held_out = embedded_dataset("held_out", realisations=1, seed=0)
    train_names = {image.name.rsplit("_", 1)[0] for image in train}
    held_out_names = {image.name.rsplit("_", 1)[0] for image in held_out}
    assert len(train) == len(TRAIN_IMAGES) and len(held_out) == len(HELD_OUT_IMAGES)
    assert train_names.isdisjoint(held_out_names)
    for image in train:
        assert torch.equal(image.noisy, image.noisy.round()) and 0 <= image.noisy.min() <= image.noisy.max() <= 255
    # No held-out photo's pixels hide in the training set under another name.
    for image in held_out:
        for other in train:
            assert image.clean.shape != other.clean.shape or not torch.equal(image.clean, other.clean)


@pytest.mark.parametrize("kwargs", [{"split": "test"}, {"realisations": 0}])
def test_embedded_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        embedded_dataset(**kwargs)

