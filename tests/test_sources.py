"""`training_images` / `validation_images`: every `data` / `val_data` spec (embedded, image folders,
the patch layout, SIDD Medium, SIDD .mat blocks, "none"), dtypes, order, `max_images`, errors."""

import re

import numpy as np
import pytest
import scipy.io
import torch
from synthetic_data import random_rgb, write_rgb

import atbsn.data.embedded as embedded
from atbsn.data.crops import CropSampler
from atbsn.data.embedded import NoisyImage, embedded_dataset
from atbsn.data.sidd import MAT_KEY_HINT, save_sidd_blocks
from atbsn.data.sources import training_images, validation_images
from atbsn.errors import InputError

SCENES = ("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N")


def chw(rgb, dtype=torch.uint8):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(dtype)


def assert_images(images, expected):
    assert len(images) == len(expected)
    for image, want in zip(images, expected):
        assert image.dtype == want.dtype and image.shape == want.shape
        assert torch.equal(image, want)


# embedded

def test_embedded_training_images_are_uint8_and_deterministic():
    images = training_images("embedded", realisations=1, seed=0)
    reference = embedded_dataset("train", 1, 0)  # a second, independent draw from the same seed
    assert len(images) == len(embedded.TRAIN_IMAGES) == 5
    for image, noisy in zip(images, reference):
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and image.shape == noisy.noisy.shape
        assert torch.equal(noisy.noisy, noisy.noisy.round()) and noisy.noisy.min() >= 0 and noisy.noisy.max() <= 255
        assert torch.equal(image, noisy.noisy.to(torch.uint8))
        assert image.shape[1] >= 256 and image.shape[2] >= 256
    assert images.names == [f"embedded photo {noisy.name}" for noisy in reference]
    assert images.names[0] == "embedded photo astronaut_0"


def test_embedded_realisations_and_seeds(monkeypatch):
    monkeypatch.setitem(embedded.SPLITS, "train", ("astronaut.png",))  # one photo keeps this quick
    two = training_images("embedded", realisations=2, seed=0)
    assert len(two) == 2 and not torch.equal(two[0], two[1])  # each realisation has its own camera and noise
    assert torch.equal(training_images("embedded", realisations=2, seed=0)[1], two[1])
    other_seed = training_images("embedded", realisations=2, seed=1)
    assert not torch.equal(other_seed[0], two[0])


def test_embedded_validation_images_are_the_held_out_photos():
    images = validation_images("embedded")
    assert [image.name for image in images] == ["chelsea_0", "coffee_0", "grace_hopper_0", "retina_0"]
    train = {name.rsplit(".", 1)[0] for name in embedded.TRAIN_IMAGES}
    assert not train & {image.name.rsplit("_", 1)[0] for image in images}
    for image in images:
        assert isinstance(image, NoisyImage)
        assert image.noisy.dtype == torch.float32 and image.clean.dtype == torch.float32
        assert image.noisy.shape == image.clean.shape and image.noisy.shape[0] == 3
        assert 0 <= image.clean.min() and image.clean.max() <= 255 and image.clean.max() > 100
        assert not torch.equal(image.noisy, image.clean)
    first = validation_images("embedded", max_images=1)
    assert [image.name for image in first] == ["chelsea_0"] and torch.equal(first[0].noisy, images[0].noisy)


# folders of images

def _mixed_folder(folder):
    eight = random_rgb(20, 24, seed=1)
    sixteen = random_rgb(22, 18, seed=2, dtype=np.uint16)
    scaled = random_rgb(16, 16, seed=3).astype(np.uint16) * 257  # 16-bit file holding 8-bit values
    write_rgb(folder / "a.png", eight)
    write_rgb(folder / "b.png", sixteen)
    write_rgb(folder / "c.tif", scaled)
    write_rgb(folder / ".hidden.png", eight)
    (folder / "readme.txt").write_text("not an image")
    (folder / "sub").mkdir()
    write_rgb(folder / "sub" / "d.png", eight)  # no recursion
    return eight, sixteen, scaled


def test_training_images_from_a_folder(tmp_path):
    eight, sixteen, scaled = _mixed_folder(tmp_path)
    images = training_images(str(tmp_path))
    assert len(images) == 3
    assert images[0].dtype == torch.uint8 and torch.equal(images[0], chw(eight))  # RGB order, exact
    assert images[1].dtype == torch.float32
    torch.testing.assert_close(images[1], chw(sixteen, torch.float64).float() * (255 / 65535), rtol=1e-6, atol=1e-4)
    assert not torch.equal(images[1], images[1].round())
    assert images[2].dtype == torch.uint8 and torch.equal(images[2], chw(scaled // 257))
    assert images.names == [str(tmp_path / name) for name in ("a.png", "b.png", "c.tif")]
    assert training_images(str(tmp_path), mat_key="ignored").names == images.names  # only .mat files use it


def test_a_training_image_smaller_than_the_crop_is_named_by_its_file(tmp_path):
    write_rgb(tmp_path / "big.png", random_rgb(40, 40))
    write_rgb(tmp_path / "small.png", random_rgb(24, 40))
    with pytest.raises(InputError, match=f"^training image {tmp_path / 'small.png'} is 24x40, smaller than the "
                                         f"crop 32"):
        CropSampler(training_images(str(tmp_path)), 32, 1, seed=0)


def test_validation_images_from_a_folder_have_no_clean_images(tmp_path):
    eight, _sixteen, _scaled = _mixed_folder(tmp_path)
    images = validation_images(str(tmp_path))
    assert [image.name for image in images] == ["a", "b", "c"]
    assert all(image.clean is None for image in images)
    assert images[0].noisy.dtype == torch.float32 and torch.equal(images[0].noisy, chw(eight, torch.float32))
    assert [image.name for image in validation_images(str(tmp_path), max_images=2)] == ["a", "b"]
    assert len(validation_images(str(tmp_path), max_images=10)) == 3
    assert len(validation_images(str(tmp_path), max_images=0)) == 3


# the official patch layout

def _patch_root(root):
    pictures = {}
    for split, count in (("train", 3), ("valid", 2)):
        for index in range(count):
            noisy, clean = random_rgb(16, 20, seed=10 * index), random_rgb(16, 20, seed=10 * index + 1)
            write_rgb(root / "Noisy" / split / f"{index}.png", noisy)
            write_rgb(root / "GT" / split / f"{index}_gt.png", clean)
            pictures[split, index] = noisy, clean
    return pictures


def test_patch_layout_training_reads_noisy_train_only(tmp_path):
    pictures = _patch_root(tmp_path)
    images = training_images(str(tmp_path))
    assert_images(images, [chw(pictures["train", index][0]) for index in range(3)])


def test_patch_layout_validation_pairs_noisy_and_gt_valid(tmp_path):
    pictures = _patch_root(tmp_path)
    images = validation_images(str(tmp_path))
    assert [image.name for image in images] == ["0", "1"]
    for index, image in enumerate(images):
        noisy, clean = pictures["valid", index]
        assert torch.equal(image.noisy, chw(noisy, torch.float32))
        assert torch.equal(image.clean, chw(clean, torch.float32))
    assert len(validation_images(str(tmp_path), max_images=1)) == 1


def test_patch_layout_with_unequal_folders_is_refused(tmp_path):
    _patch_root(tmp_path)
    (tmp_path / "GT" / "valid" / "1_gt.png").unlink()
    with pytest.raises(InputError, match="Noisy/valid holds 2 images but .*GT/valid holds 1"):
        validation_images(str(tmp_path))


# SIDD Medium

def _sidd_medium(root):
    pairs = []
    for scene, image_id, number, seed in [(SCENES[0], "0001", "010", 0), (SCENES[0], "0001", "011", 1),
                                          (SCENES[1], "0002", "010", 2)]:
        folder = root / "Data" / scene
        noisy, clean = random_rgb(18, 14, seed=seed), random_rgb(18, 14, seed=seed + 50)
        write_rgb(folder / f"{image_id}_NOISY_SRGB_{number}.PNG", noisy)
        write_rgb(folder / f"{image_id}_GT_SRGB_{number}.PNG", clean)
        (folder / f"{image_id}_NOISY_RAW_{number}.MAT").write_bytes(b"raw data is ignored")
        pairs.append((f"{image_id}_NOISY_SRGB_{number}", noisy, clean))
    return pairs


@pytest.mark.parametrize("below", ["", "Data"])
def test_sidd_medium(tmp_path, below):
    pairs = _sidd_medium(tmp_path)
    spec = str(tmp_path / below) if below else str(tmp_path)
    assert_images(training_images(spec), [chw(noisy) for _name, noisy, _clean in pairs])
    images = validation_images(spec)
    assert [image.name for image in images] == [name for name, _noisy, _clean in pairs]
    for image, (_name, noisy, clean) in zip(images, pairs):
        assert torch.equal(image.noisy, chw(noisy, torch.float32))
        assert torch.equal(image.clean, chw(clean, torch.float32))


def test_sidd_medium_without_ground_truth_is_refused(tmp_path):
    _sidd_medium(tmp_path)
    (tmp_path / "Data" / SCENES[1] / "0002_GT_SRGB_010.PNG").unlink()
    for load in (training_images, validation_images):
        with pytest.raises(InputError, match="0002_NOISY_SRGB_010.PNG: no ground truth beside it"):
            load(str(tmp_path))


# SIDD .mat blocks

def _sidd_mat(folder, shape=(2, 3, 12, 16, 3)):
    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 256, size=shape, dtype=np.uint8)
    clean = rng.integers(0, 256, size=shape, dtype=np.uint8)
    save_sidd_blocks(folder / "ValidationNoisyBlocksSrgb.mat", "ValidationNoisyBlocksSrgb", noisy)
    save_sidd_blocks(folder / "ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb", clean)
    return noisy, clean


def test_sidd_mat_blocks_become_training_images(tmp_path):
    noisy, _clean = _sidd_mat(tmp_path)
    images = training_images(str(tmp_path / "ValidationNoisyBlocksSrgb.mat"))
    assert_images(images, [chw(noisy[i, j]) for i in range(2) for j in range(3)])
    assert images.names == [f"{tmp_path / 'ValidationNoisyBlocksSrgb.mat'} block {k}" for k in range(6)]
    with pytest.raises(InputError, match=r"ValidationNoisyBlocksSrgb.mat block 0 is 12x16, smaller than the crop"):
        CropSampler(images, 13, 1, seed=0)


def test_mat_key_picks_the_training_blocks(tmp_path):
    noisy, _clean = _sidd_mat(tmp_path)
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"ValidationNoisyBlocksSrgb": noisy, "ValidationGtBlocksSrgb": noisy[::-1]})
    with pytest.raises(InputError) as error:
        training_images(str(path))
    assert str(error.value) == (f"{path}: found keys ['ValidationNoisyBlocksSrgb', 'ValidationGtBlocksSrgb']; "
                                f"expected exactly one of ['ValidationNoisyBlocksSrgb', 'ValidationGtBlocksSrgb', "
                                f"'BenchmarkNoisyBlocksSrgb']; name the key with --mat-key KEY (eval) or "
                                f"mat_key=KEY (train, distill)")
    images = training_images(str(path), mat_key="ValidationGtBlocksSrgb")
    assert_images(images, [chw(noisy[::-1][i, j]) for i in range(2) for j in range(3)])

    scipy.io.savemat(path, {"mine": noisy})
    with pytest.raises(InputError, match=rf"two.mat: found keys \['mine'\]; .*; {re.escape(MAT_KEY_HINT)}$"):
        training_images(str(path))
    assert_images(training_images(str(path), mat_key="mine"), [chw(noisy[i, j]) for i in range(2) for j in range(3)])
    with pytest.raises(InputError, match=r"two.mat: no key 'other'; found keys \['mine'\]"):
        training_images(str(path), mat_key="other")


@pytest.mark.parametrize("given", ["file", "folder"])
def test_sidd_mat_validation_pairs(tmp_path, given):
    noisy, clean = _sidd_mat(tmp_path)
    spec = str(tmp_path / "ValidationNoisyBlocksSrgb.mat") if given == "file" else str(tmp_path)
    images = validation_images(spec)
    assert [image.name for image in images] == [f"block_{index:04d}" for index in range(6)]
    for index, image in enumerate(images):
        i, j = divmod(index, 3)
        assert image.noisy.dtype == torch.float32 and image.noisy.shape == (3, 12, 16)
        assert torch.equal(image.noisy, chw(noisy[i, j], torch.float32))
        assert torch.equal(image.clean, chw(clean[i, j], torch.float32))
    assert [image.name for image in validation_images(spec, max_images=4)] == [f"block_{i:04d}" for i in range(4)]


def test_mat_key_picks_the_validation_blocks_and_their_gt_twin(tmp_path):
    noisy, clean = _sidd_mat(tmp_path)
    spec = str(tmp_path / "ValidationNoisyBlocksSrgb.mat")
    scipy.io.savemat(spec, {"MyNoisy": noisy})
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"MyGt": clean})
    hint = re.escape(MAT_KEY_HINT)
    with pytest.raises(InputError, match=rf"NoisyBlocksSrgb.mat: found keys \['MyNoisy'\]; .*{hint}$"):
        validation_images(spec)
    images = validation_images(spec, mat_key="MyNoisy")  # the clean file's key: "Noisy" -> "Gt"
    assert len(images) == 6
    assert torch.equal(images[4].noisy, chw(noisy[1, 1], torch.float32))
    assert torch.equal(images[4].clean, chw(clean[1, 1], torch.float32))
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"Other": clean})
    with pytest.raises(InputError, match=r"ValidationGtBlocksSrgb.mat: no key 'MyGt'; found keys \['Other'\]"):
        validation_images(str(tmp_path), mat_key="MyNoisy")


def test_sidd_mat_without_blocks_is_refused(tmp_path):
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat",
                     {"ValidationNoisyBlocksSrgb": np.zeros((0, 3, 12, 16, 3), np.uint8)})
    with pytest.raises(InputError, match=r"ValidationNoisyBlocksSrgb.mat: key 'ValidationNoisyBlocksSrgb' holds "
                                         r"no blocks \(shape \(0, 3, 12, 16, 3\)\)"):
        training_images(str(tmp_path / "ValidationNoisyBlocksSrgb.mat"))


def test_sidd_mat_without_its_gt_file_is_refused(tmp_path):
    _sidd_mat(tmp_path)
    (tmp_path / "ValidationGtBlocksSrgb.mat").unlink()
    with pytest.raises(InputError, match="ValidationGtBlocksSrgb.mat: no such file"):
        validation_images(str(tmp_path))


# "none" and errors

def test_none_means_no_validation():
    assert validation_images("none") == []
    assert validation_images("none", max_images=3) == []


def test_missing_paths_list_what_is_accepted(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(InputError) as error:
        training_images(missing)
    message = str(error.value)
    assert message.startswith(f"data: {missing}: no such file or folder; expected ")
    for accepted in ("'embedded'", "a folder of noisy images", "Noisy/<split>", "SIDD Medium", "Data/",
                     "ValidationNoisyBlocksSrgb.mat"):
        assert accepted in message, accepted

    with pytest.raises(InputError) as error:
        validation_images(missing)
    message = str(error.value)
    assert message.startswith(f"val_data: {missing}: no such file or folder; expected 'none' or 'embedded'")
    assert "Noisy/<split>" in message and "ValidationNoisyBlocksSrgb.mat" in message

    with pytest.raises(InputError, match="missing.mat: no such file"):
        training_images(str(tmp_path / "missing.mat"))


def test_folders_without_images_are_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("no images")
    for load in (training_images, validation_images):
        with pytest.raises(InputError, match=f"{tmp_path}: no image files; expected files ending in .png"):
            load(str(tmp_path))


def test_unreadable_images_in_a_folder_are_refused(tmp_path):
    write_rgb(tmp_path / "a.png", random_rgb(16, 16))
    write_rgb(tmp_path / "grey.png", random_rgb(16, 16)[:, :, 0])
    with pytest.raises(InputError, match="grey.png: the models take 3-channel RGB images"):
        training_images(str(tmp_path))

