"""CropSampler: random square crops with the eight flips/rotations, seeded and resumable."""

import pytest
import torch

from atbsn.data.crops import CropSampler
from atbsn.data.sources import TrainingImages
from atbsn.errors import InputError


def arange_image(h, w, offset=0):
    """(3, H, W) float image whose every value is distinct."""
    return (torch.arange(3 * h * w, dtype=torch.float32) + offset).reshape(3, h, w)


def orientations(patch):
    """The eight flips/rotations of a (3, S, S) patch."""
    turns = [torch.rot90(patch, k, dims=(1, 2)) for k in range(4)]
    return turns + [turn.flip(2) for turn in turns]


def windows(image, crop):
    for top in range(image.shape[1] - crop + 1):
        for left in range(image.shape[2] - crop + 1):
            yield top, left, image[:, top:top + crop, left:left + crop]


def find_source(crop, images):
    """(image index, top, left, orientation) of `crop` among `images`, or None."""
    size = crop.shape[-1]
    for index, image in enumerate(images):
        for top, left, window in windows(image, size):
            for orientation, candidate in enumerate(orientations(window)):
                if torch.equal(candidate, crop):
                    return index, top, left, orientation
    return None


def test_shape_dtype_and_range():
    images = [torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8), torch.rand(3, 16, 30) * 255]
    sampler = CropSampler(images, crop=8, batch=5, seed=0)
    for _ in range(3):
        batch = sampler.next_batch()
        assert batch.shape == (5, 3, 8, 8)
        assert batch.dtype == torch.float32
        assert batch.min() >= 0 and batch.max() <= 255


def test_every_crop_is_an_oriented_window_of_an_input_image():
    images = [arange_image(9, 11), arange_image(10, 8, offset=10_000)]
    sampler = CropSampler(images, crop=5, batch=4, seed=3)
    found_images, found_orientations = set(), set()
    for _ in range(30):
        for crop in sampler.next_batch():
            source = find_source(crop, images)
            assert source is not None, crop
            found_images.add(source[0])
            found_orientations.add(source[3])
    # With 120 crops, both images and all eight orientations turn up (chance of missing one is ~1e-6).
    assert found_images == {0, 1}
    assert found_orientations == set(range(8))


def test_positions_cover_the_whole_image():
    image = arange_image(6, 7)
    sampler = CropSampler([image], crop=4, batch=8, seed=1)
    positions = set()
    for _ in range(30):
        for crop in sampler.next_batch():
            _, top, left, _ = find_source(crop, [image])
            positions.add((top, left))
    assert positions == {(top, left) for top in range(3) for left in range(4)}


def test_crop_equal_to_the_image_size():
    image = arange_image(6, 6)
    crops = CropSampler([image], crop=6, batch=16, seed=0).next_batch()
    for crop in crops:
        assert any(torch.equal(crop, candidate) for candidate in orientations(image))


def test_same_seed_same_batches_other_seed_other_batches():
    images = [torch.rand(3, 40, 40)]
    a, b, c = (CropSampler(images, 8, 2, seed) for seed in (7, 7, 8))
    batches_a = [a.next_batch() for _ in range(5)]
    batches_b = [b.next_batch() for _ in range(5)]
    batches_c = [c.next_batch() for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(batches_a, batches_b))
    assert not all(torch.equal(x, y) for x, y in zip(batches_a, batches_c))


def test_the_sampler_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    sampler = CropSampler([torch.ones(3, 20, 20)], 8, 2, 0)
    sampler.next_batch()
    assert torch.equal(torch.rand(4), expected)


def test_state_and_load_state_reproduce_the_following_batches():
    images = [torch.rand(3, 33, 47), torch.rand(3, 40, 36)]
    sampler = CropSampler(images, 16, 3, seed=5)
    for _ in range(4):
        sampler.next_batch()
    state = sampler.state().clone()
    following = [sampler.next_batch() for _ in range(5)]

    # The same sampler rewound, and a fresh one (other seed) loaded with the state.
    sampler.load_state(state)
    again = [sampler.next_batch() for _ in range(5)]
    fresh = CropSampler(images, 16, 3, seed=123)
    fresh.load_state(state)
    restored = [fresh.next_batch() for _ in range(5)]
    for x, y, z in zip(following, again, restored):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_state_survives_torch_save(tmp_path):
    images = [torch.rand(3, 20, 20)]
    sampler = CropSampler(images, 8, 2, seed=9)
    sampler.next_batch()
    torch.save({"sampler": sampler.state()}, tmp_path / "s.pt")
    expected = sampler.next_batch()
    other = CropSampler(images, 8, 2, seed=0)
    other.load_state(torch.load(tmp_path / "s.pt", weights_only=True)["sampler"])
    assert torch.equal(other.next_batch(), expected)


def test_uint8_images_give_float_batches_with_the_same_values():
    pixels = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8)
    as_uint8 = CropSampler([pixels], 6, 4, seed=2).next_batch()
    as_float = CropSampler([pixels.float()], 6, 4, seed=2).next_batch()
    assert as_uint8.dtype == torch.float32
    assert torch.equal(as_uint8, as_float)
    assert as_uint8.max() > 1  # values stay in [0, 255], not rescaled


def test_batches_are_copies_not_views_of_the_images():
    image = torch.rand(3, 8, 8)
    original = image.clone()
    batch = CropSampler([image], 8, 1, seed=0).next_batch()
    batch.add_(1)
    assert torch.equal(image, original)


def test_image_smaller_than_the_crop_names_its_index():
    images = [torch.rand(3, 40, 40), torch.rand(3, 40, 40), torch.rand(3, 40, 31)]
    with pytest.raises(InputError, match=r"training image 2 is 40x31, smaller than the crop 32"):
        CropSampler(images, 32, 1, seed=0)
    with pytest.raises(InputError, match=r"training image 0 is 20x50"):
        CropSampler([torch.rand(3, 20, 50)], 32, 1, seed=0)


def test_named_images_name_their_file_in_every_error():
    good, small = torch.rand(3, 40, 40), torch.rand(3, 40, 31)
    names = ["/data/a.png", "/data/b.png"]
    with pytest.raises(InputError, match=r"^training image /data/b.png is 40x31, smaller than the crop 32; lower"):
        CropSampler([good, small], 32, 1, seed=0, names=names)
    with pytest.raises(InputError, match=r"^training image /data/b.png is 40x31"):  # names from training_images
        CropSampler(TrainingImages([good, small], names), 32, 1, seed=0)
    nan = good.clone()
    nan[0, 1, 2] = float("nan")
    with pytest.raises(InputError, match=r"^training image x.mat block 1 holds NaN or infinite values"):
        CropSampler([good, nan], 8, 1, seed=0, names=["x.mat block 0", "x.mat block 1"])
    with pytest.raises(InputError, match=r"^training image embedded photo rocket_0 has shape \(1, 40, 40\)"):
        CropSampler([torch.rand(1, 40, 40)], 8, 1, seed=0, names=["embedded photo rocket_0"])
    with pytest.raises(ValueError, match="1 names for 2 images"):
        CropSampler([good, good], 8, 1, seed=0, names=["one"])


def test_named_images_sample_as_plain_lists_do():
    images = [arange_image(12, 12), arange_image(10, 14, offset=1000)]
    plain = CropSampler(images, 8, 4, seed=3).next_batch()
    named = CropSampler(TrainingImages(images, ["a", "b"]), 8, 4, seed=3).next_batch()
    assert torch.equal(plain, named)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_image_is_refused(bad):
    image = torch.rand(3, 40, 40)
    image[1, 5, 7] = bad
    with pytest.raises(InputError, match="training image 1 holds NaN or infinite"):
        CropSampler([torch.rand(3, 40, 40), image], 32, 1, seed=0)


def test_no_images():
    with pytest.raises(InputError, match="no training images"):
        CropSampler([], 32, 1, seed=0)


@pytest.mark.parametrize("shape", [(1, 40, 40), (40, 40), (4, 40, 40), (40, 40, 3), (1, 3, 40, 40)])
def test_grey_or_wrongly_shaped_image_is_refused(shape):
    with pytest.raises(InputError, match=r"training image 0 has shape .*expected \(3, H, W\) RGB"):
        CropSampler([torch.rand(shape)], 8, 1, seed=0)
