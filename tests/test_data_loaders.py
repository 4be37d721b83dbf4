"""Dataset layouts: SIDD Medium folders and .mat blocks, DND's v7.3 files and upload bundle, patch folders."""

import os

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from atbsn.data.dnd import DNDImages, write_dnd_submission
from atbsn.data.folders import folder_pairs, noisy_patches, patch_pairs
from atbsn.data.sidd import load_sidd_blocks, save_sidd_blocks, sidd_medium_pairs
from atbsn.errors import InputError

SCENE_A = "0001_001_S6_00100_00060_3200_L"
SCENE_B = "0002_001_S6_00100_00020_3200_N"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


# SIDD Medium folders

def make_sidd_medium(root):
    """Two scenes, one with two captures; returns the expected (noisy, gt) pairs."""
    pairs = []
    for scene, image_id, number in [(SCENE_A, "0001", "010"), (SCENE_A, "0001", "011"), (SCENE_B, "0002", "010")]:
        folder = root / "Data" / scene
        pairs.append((touch(folder / f"{image_id}_NOISY_SRGB_{number}.PNG"),
                      touch(folder / f"{image_id}_GT_SRGB_{number}.PNG")))
        touch(folder / f"{image_id}_NOISY_RAW_{number}.MAT")
    return pairs


def test_sidd_medium_pairs_from_root_or_data(tmp_path):
    expected = make_sidd_medium(tmp_path)
    assert sidd_medium_pairs(tmp_path) == expected
    assert sidd_medium_pairs(tmp_path / "Data") == expected


def test_sidd_medium_noisy_without_gt_is_refused(tmp_path):
    make_sidd_medium(tmp_path)
    os.remove(tmp_path / "Data" / SCENE_B / "0002_GT_SRGB_010.PNG")
    with pytest.raises(InputError, match="0002_NOISY_SRGB_010.PNG: no ground truth beside it; expected .*0002_GT_SRGB"):
        sidd_medium_pairs(tmp_path)


def test_sidd_medium_empty_or_missing_is_refused(tmp_path):
    (tmp_path / "Data" / SCENE_A).mkdir(parents=True)
    with pytest.raises(InputError, match="no SIDD Medium images"):
        sidd_medium_pairs(tmp_path)
    with pytest.raises(InputError, match="missing: no such folder"):
        sidd_medium_pairs(tmp_path / "missing")


# SIDD .mat blocks

def random_blocks(shape=(2, 3, 4, 5, 3)):
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


def test_sidd_blocks_round_trip(tmp_path):
    blocks = random_blocks()
    save_sidd_blocks(tmp_path / "ValidationNoisyBlocksSrgb.mat", "ValidationNoisyBlocksSrgb", blocks)
    assert os.listdir(tmp_path) == ["ValidationNoisyBlocksSrgb.mat"]
    loaded = load_sidd_blocks(tmp_path / "ValidationNoisyBlocksSrgb.mat")
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, blocks)
    explicit = load_sidd_blocks(tmp_path / "ValidationNoisyBlocksSrgb.mat", key="ValidationNoisyBlocksSrgb")
    np.testing.assert_array_equal(explicit, blocks)


def test_sidd_blocks_key_choice(tmp_path):
    blocks = random_blocks()
    path = tmp_path / "blocks.mat"
    scipy.io.savemat(path, {"ValidationGtBlocksSrgb": blocks, "notes": np.ones(2)})
    np.testing.assert_array_equal(load_sidd_blocks(path), blocks)
    with pytest.raises(InputError, match=r"blocks.mat: no key 'Other'; found keys \['ValidationGtBlocksSrgb', 'notes"):
        load_sidd_blocks(path, key="Other")

    hint = r"; name the key with --mat-key KEY \(eval\) or mat_key=KEY \(train, distill\)$"
    scipy.io.savemat(path, {"Other": blocks})
    with pytest.raises(InputError, match=r"found keys \['Other'\]; expected exactly one of \['Validation.*" + hint):
        load_sidd_blocks(path)
    np.testing.assert_array_equal(load_sidd_blocks(path, key="Other"), blocks)

    scipy.io.savemat(path, {"ValidationGtBlocksSrgb": blocks, "ValidationNoisyBlocksSrgb": blocks[::-1]})
    with pytest.raises(InputError, match="expected exactly one of.*" + hint):
        load_sidd_blocks(path)
    np.testing.assert_array_equal(load_sidd_blocks(path, key="ValidationNoisyBlocksSrgb"), blocks[::-1])


@pytest.mark.parametrize("blocks, found", [
    (random_blocks().astype(np.float64), "float64 array of shape \\(2, 3, 4, 5, 3\\)"),
    (random_blocks((3, 4, 5, 3)), "uint8 array of shape \\(3, 4, 5, 3\\)"),
    (random_blocks((2, 3, 4, 5, 4)), "uint8 array of shape \\(2, 3, 4, 5, 4\\)"),
])
def test_sidd_blocks_of_wrong_type_or_shape_are_refused(tmp_path, blocks, found):
    scipy.io.savemat(tmp_path / "blocks.mat", {"BenchmarkNoisyBlocksSrgb": blocks})
    with pytest.raises(InputError, match=f"blocks.mat: key 'BenchmarkNoisyBlocksSrgb' holds a {found}; "
                                         f"expected a uint8 array of shape \\(images, blocks, height, width, 3\\)"):
        load_sidd_blocks(tmp_path / "blocks.mat")
    with pytest.raises(InputError, match=f"key 'Key' holds a {found}"):
        save_sidd_blocks(tmp_path / "out.mat", "Key", blocks)
    assert not (tmp_path / "out.mat").exists()


def test_sidd_blocks_without_blocks_are_refused(tmp_path):
    empty = random_blocks((2, 0, 4, 5, 3))
    scipy.io.savemat(tmp_path / "empty.mat", {"ValidationNoisyBlocksSrgb": empty})
    with pytest.raises(InputError, match=r"empty.mat: key 'ValidationNoisyBlocksSrgb' holds no blocks "
                                         r"\(shape \(2, 0, 4, 5, 3\)\)"):
        load_sidd_blocks(tmp_path / "empty.mat")


def test_sidd_blocks_hdf5_corrupt_and_missing_files_are_refused(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as file:
        file["ValidationNoisyBlocksSrgb"] = random_blocks().T
    with open(tmp_path / "v73.mat", "r+b") as file:
        file.write(header)
    with pytest.raises(InputError, match="v73.mat: a MATLAB v7.3 \\(HDF5\\) file; expected a MATLAB v5"):
        load_sidd_blocks(tmp_path / "v73.mat")

    (tmp_path / "corrupt.mat").write_bytes(b"this is not a mat file" * 20)
    with pytest.raises(InputError, match="corrupt.mat: not a readable MATLAB v5 .mat file"):
        load_sidd_blocks(tmp_path / "corrupt.mat")

    save_sidd_blocks(tmp_path / "whole.mat", "ValidationNoisyBlocksSrgb", random_blocks())
    (tmp_path / "truncated.mat").write_bytes((tmp_path / "whole.mat").read_bytes()[:300])
    with pytest.raises(InputError, match="truncated.mat: not a readable MATLAB v5 .mat file"):
        load_sidd_blocks(tmp_path / "truncated.mat")

    with pytest.raises(InputError, match="missing.mat: no such file"):
        load_sidd_blocks(tmp_path / "missing.mat")


# DND

IMAGE_HEIGHT, IMAGE_WIDTH, BOXES_PER_IMAGE = 40, 48, 20


def make_dnd(root, images=2, break_box=None):
    """Synthetic DND sRGB data in the real v7.3 layout; returns each image (H, W, 3) and its 1-based boxes."""
    generator = np.random.default_rng(1)
    truth = []
    (root / "images_srgb").mkdir(parents=True)
    with h5py.File(root / "info.mat", "w") as info:
        references = np.empty((1, images), dtype=h5py.ref_dtype)
        for image_index in range(images):
            row_starts = generator.integers(0, IMAGE_HEIGHT - 8, BOXES_PER_IMAGE)
            col_starts = generator.integers(0, IMAGE_WIDTH - 8, BOXES_PER_IMAGE)
            heights = generator.integers(1, 8, BOXES_PER_IMAGE)
            widths = heights + generator.integers(1, 4, BOXES_PER_IMAGE)  # never square: catches swapped axes
            boxes = np.stack([row_starts + 1, col_starts + 1, row_starts + heights, col_starts + widths], axis=1)
            boxes = boxes.astype(np.float64)  # MATLAB doubles
            if break_box is not None:
                boxes[0] = break_box
            table = info.create_dataset(f"#refs#/box{image_index}", data=boxes.T)
            references[0, image_index] = table.ref
            image = generator.random((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.float32)
            with h5py.File(root / "images_srgb" / f"{image_index + 1:04d}.mat", "w") as image_file:
                image_file["InoisySRGB"] = image.T
            truth.append((image, boxes))
        info.create_group("info").create_dataset("boundingboxes", data=references)
    return truth


def test_dnd_crops_are_the_boxed_slices(tmp_path):
    truth = make_dnd(tmp_path)
    dnd = DNDImages(tmp_path)
    assert len(dnd) == 2
    for image_index, (image, boxes) in enumerate(truth):
        crops = dnd.crops(image_index)
        assert [(crop.image_index, crop.crop_index) for crop in crops] == \
            [(image_index, crop_index) for crop_index in range(BOXES_PER_IMAGE)]
        for crop, (row1, col1, row2, col2) in zip(crops, boxes.astype(int)):
            expected = torch.from_numpy(image[row1 - 1:row2, col1 - 1:col2].transpose(2, 0, 1) * 255)
            assert crop.pixels.dtype == torch.float32
            torch.testing.assert_close(crop.pixels, expected)
        np.testing.assert_array_equal(dnd.boxes(image_index), boxes[:, [0, 2, 1, 3]] - [1, 0, 1, 0])


def test_dnd_missing_files_and_keys_are_refused(tmp_path):
    with pytest.raises(InputError, match="info.mat: no such file"):
        DNDImages(tmp_path)
    make_dnd(tmp_path)
    os.remove(tmp_path / "images_srgb" / "0002.mat")
    with pytest.raises(InputError, match="0002.mat: no such file; info.mat lists 2 images"):
        DNDImages(tmp_path)

    with h5py.File(tmp_path / "images_srgb" / "0002.mat", "w") as image_file:
        image_file["Inoisy"] = np.zeros((3, IMAGE_WIDTH, IMAGE_HEIGHT), np.float32)
    with pytest.raises(InputError, match="0002.mat: no dataset 'InoisySRGB'"):
        DNDImages(tmp_path).crops(1)

    with h5py.File(tmp_path / "info.mat", "a") as info:
        del info["info"]
    with pytest.raises(InputError, match="info.mat: no dataset 'info/boundingboxes'"):
        DNDImages(tmp_path)


def test_dnd_v5_info_file_is_refused(tmp_path):
    scipy.io.savemat(tmp_path / "info.mat", {"info": np.zeros(2)})
    with pytest.raises(InputError, match="info.mat: not a readable MATLAB v7.3 \\(HDF5\\) file"):
        DNDImages(tmp_path)


def test_dnd_boundingboxes_without_references_are_refused(tmp_path):
    with h5py.File(tmp_path / "info.mat", "w") as info:
        info["info/boundingboxes"] = np.zeros((1, 2))
    with pytest.raises(InputError, match="key 'info/boundingboxes' holds a float64 array of shape \\(1, 2\\); "
                                         "expected \\(1, images\\) object references"):
        DNDImages(tmp_path)


@pytest.mark.parametrize("box, message", [
    ([1, 1, 41, 5], "box 0 from info.mat \\(rows 0:41, cols 0:5\\) lies outside the 40 x 48 image"),
    ([1, 1, 5, 49], "box 0 from info.mat \\(rows 0:5, cols 0:49\\) lies outside the 40 x 48 image"),
])
def test_dnd_boxes_outside_the_image_are_refused(tmp_path, box, message):
    make_dnd(tmp_path, images=1, break_box=box)
    with pytest.raises(InputError, match=message):
        DNDImages(tmp_path).crops(0)


@pytest.mark.parametrize("box, message", [
    ([0, 1, 5, 5], "empty or negative boxes"),
    ([3, 1, 2, 5], "empty or negative boxes"),
    ([1.5, 1, 5, 5], "non-integer or NaN box corners"),
])
def test_dnd_bad_boxes_are_refused(tmp_path, box, message):
    make_dnd(tmp_path, images=1, break_box=box)
    with pytest.raises(InputError, match=f"info.mat: key 'info/boundingboxes' entry 0 holds {message}"):
        DNDImages(tmp_path)


def test_dnd_bad_images_are_refused(tmp_path):
    make_dnd(tmp_path, images=1, break_box=[1, 1, 5, 5])
    image = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.float32)
    image[2, 3, 1] = np.nan
    with h5py.File(tmp_path / "images_srgb" / "0001.mat", "w") as image_file:
        image_file["InoisySRGB"] = image.T
    with pytest.raises(InputError, match="0001.mat: key 'InoisySRGB' holds NaN or infinite values in box 0"):
        DNDImages(tmp_path).crops(0)
    with h5py.File(tmp_path / "images_srgb" / "0001.mat", "w") as image_file:
        image_file["InoisySRGB"] = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.float32)
    with pytest.raises(InputError, match="key 'InoisySRGB' holds a float32 array of stored shape \\(40, 48\\)"):
        DNDImages(tmp_path).crops(0)


def test_dnd_submission_round_trip(tmp_path):
    generator = torch.Generator().manual_seed(0)
    denoised = [[torch.rand(3, 2 + k % 3, 3 + k % 2, generator=generator) * 255 for k in range(BOXES_PER_IMAGE)]
                for _ in range(2)]
    denoised[0][0][0, 0, 0] = 300.0
    paths = write_dnd_submission(tmp_path, denoised)
    assert paths == [str(tmp_path / "bundled" / "0001.mat"), str(tmp_path / "bundled" / "0002.mat")]
    assert sorted(os.listdir(tmp_path / "bundled")) == ["0001.mat", "0002.mat"]
    for path, crops in zip(paths, denoised):
        contents = scipy.io.loadmat(path)
        assert not contents["israw"].item() and contents["eval_version"].item() == "1.0"
        cell = contents["Idenoised"].reshape(-1)
        assert len(cell) == BOXES_PER_IMAGE
        for stored, crop in zip(cell, crops):
            assert stored.dtype == np.float32
            np.testing.assert_allclose(stored, crop.clamp(0, 255).permute(1, 2, 0).numpy() / 255, rtol=1e-6)
    assert scipy.io.loadmat(paths[0])["Idenoised"].reshape(-1)[0][0, 0, 0] == 1.0


# Folder layouts

def test_patch_pairs_pair_by_sorted_order(tmp_path):
    noisy = [touch(tmp_path / "Noisy" / "train" / name) for name in ["0.png", "1.png"]]
    clean = [touch(tmp_path / "GT" / "train" / name) for name in ["0_gt.png", "1_gt.png"]]
    assert patch_pairs(tmp_path, "train") == list(zip(noisy, clean))
    assert noisy_patches(tmp_path, "train") == noisy


def test_patch_pairs_refuse_unequal_or_missing_folders(tmp_path):
    touch(tmp_path / "Noisy" / "train" / "0.png")
    touch(tmp_path / "Noisy" / "train" / "1.png")
    with pytest.raises(InputError, match="GT/train: no such folder"):
        patch_pairs(tmp_path, "train")
    touch(tmp_path / "GT" / "train" / "0.png")
    with pytest.raises(InputError, match="Noisy/train holds 2 images but .*GT/train holds 1"):
        patch_pairs(tmp_path, "train")
    with pytest.raises(InputError, match="Noisy/test: no such folder"):
        noisy_patches(tmp_path, "test")


def test_folder_pairs_match_file_names(tmp_path):
    noisy = [touch(tmp_path / "noisy" / name) for name in ["a.png", "b.png"]]
    clean = [touch(tmp_path / "clean" / name) for name in ["b.png", "a.png", "extra.png"]]
    assert folder_pairs(tmp_path / "noisy", tmp_path / "clean") == [(noisy[0], clean[1]), (noisy[1], clean[0])]
    touch(tmp_path / "noisy" / "c.png")
    with pytest.raises(InputError, match="c.png: no clean image of the same name; expected .*clean/c.png"):
        folder_pairs(tmp_path / "noisy", tmp_path / "clean")
