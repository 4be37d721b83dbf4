"""SIDD's sRGB benchmark submission: SubmitSrgb.mat with the DenoisedBlocksSrgb cell array, TimeMPSrgb
and the OptionalData struct, read back with scipy as MATLAB would see it; SubmitSrgb.csv (Kaggle) read
back as its base64 rows; bad inputs refused."""

import base64
import csv

import h5py
import numpy as np
import pytest
import scipy.io
from synthetic_data import all_files

from atbsn.data.sidd_submission import (CSV_NAME, SUBMISSION_NAME, read_sidd_csv, read_sidd_submission,
                                        seconds_per_megapixel_of, write_sidd_csv, write_sidd_submission)
from atbsn.errors import InputError


def blocks(shape=(3, 4, 8, 6, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_round_trip_as_matlab_sees_it(tmp_path):
    denoised = blocks()
    path = write_sidd_submission(tmp_path / "out", denoised, 0.125, method_name="ATBSN hole 3",
                                 authors="A. Author", paper_title="A title", venue="CVPR", machine_specs="a GPU")
    assert path == str(tmp_path / "out" / SUBMISSION_NAME) and SUBMISSION_NAME == "SubmitSrgb.mat"
    assert all_files(tmp_path / "out") == ["SubmitSrgb.mat"]  # no temporary file left
    # MATLAB classes: a cell array, a double, a struct
    assert scipy.io.whosmat(path) == [("DenoisedBlocksSrgb", (3, 4), "cell"), ("TimeMPSrgb", (1, 1), "double"),
                                      ("OptionalData", (1, 1), "struct")]
    contents = scipy.io.loadmat(path)
    cell = contents["DenoisedBlocksSrgb"]
    assert cell.dtype == object and cell.shape == (3, 4)
    for (image, block), entry in np.ndenumerate(cell):
        assert entry.dtype == np.uint8 and entry.shape == (8, 6, 3)
        np.testing.assert_array_equal(entry, denoised[image, block])
    assert contents["TimeMPSrgb"].shape == (1, 1) and contents["TimeMPSrgb"].item() == 0.125
    struct = contents["OptionalData"]
    assert struct.shape == (1, 1)
    assert struct.dtype.names == ("MethodName", "Authors", "PaperTitle", "Venue", "MachineSpecs")
    assert [struct[0, 0][name].item() for name in struct.dtype.names] == \
        ["ATBSN hole 3", "A. Author", "A title", "CVPR", "a GPU"]

    submission = read_sidd_submission(path)
    np.testing.assert_array_equal(submission.blocks, denoised)
    assert submission.blocks.dtype == np.uint8 and submission.seconds_per_megapixel == 0.125
    assert submission.optional_data == {"MethodName": "ATBSN hole 3", "Authors": "A. Author",
                                        "PaperTitle": "A title", "Venue": "CVPR", "MachineSpecs": "a GPU"}


def test_benchmark_shape_and_defaults(tmp_path):
    denoised = np.zeros((40, 32, 256, 256, 3), np.uint8)
    denoised[39, 31, 255, 255] = [1, 2, 3]
    denoised[0, 1, 2, 3, 1] = 200
    path = write_sidd_submission(tmp_path, denoised, 2.5)
    assert scipy.io.whosmat(path)[0] == ("DenoisedBlocksSrgb", (40, 32), "cell")
    submission = read_sidd_submission(path)  # checks every cell is a uint8 block of the shape of cell (1, 1)
    assert submission.blocks.shape == (40, 32, 256, 256, 3) and submission.blocks.dtype == np.uint8
    assert list(submission.blocks[39, 31, 255, 255]) == [1, 2, 3] and submission.blocks[0, 1, 2, 3, 1] == 200
    assert submission.optional_data == {"MethodName": "atbsn"}  # the fields not given are left out
    assert submission.seconds_per_megapixel == 2.5
    assert np.array_equal(submission.blocks, denoised)  # (assert_array_equal takes seconds on 250 MB)


def test_one_image_one_block_and_rewrite(tmp_path):
    write_sidd_submission(tmp_path, blocks((2, 2, 4, 4, 3)), 1.0)
    one = blocks((1, 1, 5, 7, 3), seed=1)
    path = write_sidd_submission(tmp_path, one, 0.0, method_name="")  # replaces the file
    assert scipy.io.whosmat(path)[0] == ("DenoisedBlocksSrgb", (1, 1), "cell")
    submission = read_sidd_submission(path)
    np.testing.assert_array_equal(submission.blocks, one)
    assert submission.seconds_per_megapixel == 0.0 and submission.optional_data == {"MethodName": ""}


def test_seconds_per_megapixel_counts_as_sidd_does():
    # SIDD's code: total seconds * 1024 * 1024 / (images * blocks * height * width)
    assert seconds_per_megapixel_of(3.0, 40 * 32 * 256 * 256) == pytest.approx(3.0 / 80)
    assert seconds_per_megapixel_of(1.0, 1024 * 1024) == 1.0
    with pytest.raises(ValueError, match="pixels must be positive, got 0"):
        seconds_per_megapixel_of(1.0, 0)


@pytest.mark.parametrize("denoised, error, message", [
    ([[1]], TypeError, "denoised_blocks must be a numpy uint8 array of shape (images, blocks, height, width, 3)"),
    (np.zeros((1, 1, 4, 4, 3), np.float32), TypeError, "got dtype float32"),
    (np.zeros((1, 4, 4, 3), np.uint8), ValueError, "got shape (1, 4, 4, 3)"),
    (np.zeros((1, 1, 4, 4, 1), np.uint8), ValueError, "got shape (1, 1, 4, 4, 1)"),
    (np.zeros((0, 32, 4, 4, 3), np.uint8), ValueError, "non-empty"),
])
def test_bad_blocks_refused(tmp_path, denoised, error, message):
    with pytest.raises(error) as info:
        write_sidd_submission(tmp_path, denoised, 1.0)
    assert message in str(info.value)
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("time, error, message", [
    ("1", TypeError, "seconds_per_megapixel must be a real number of seconds, got str"),
    (True, TypeError, "got bool"),
    (float("nan"), ValueError, "seconds_per_megapixel must be finite and >= 0, got nan"),
    (float("inf"), ValueError, "got inf"),
    (-0.5, ValueError, "got -0.5"),
])
def test_bad_time_refused(tmp_path, time, error, message):
    with pytest.raises(error) as info:
        write_sidd_submission(tmp_path, blocks(), time)
    assert message in str(info.value)
    assert all_files(tmp_path) == []


def test_bad_text_fields_refused(tmp_path):
    with pytest.raises(TypeError, match="method_name must be a str, got NoneType"):
        write_sidd_submission(tmp_path, blocks(), 1.0, method_name=None)
    with pytest.raises(TypeError, match="authors must be a str or None, got int"):
        write_sidd_submission(tmp_path, blocks(), 1.0, authors=3)
    assert all_files(tmp_path) == []


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="SubmitSrgb.mat: cannot write"):
        write_sidd_submission(tmp_path / "file", blocks(), 1.0)


def test_reader_refuses_what_is_not_a_submission(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_sidd_submission(tmp_path / "missing.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(InputError, match="junk.mat: not a readable MATLAB v5 .mat file"):
        read_sidd_submission(tmp_path / "junk.mat")
    with h5py.File(tmp_path / "v73.mat", "w") as file:
        file["DenoisedBlocksSrgb"] = np.zeros(3)
    with pytest.raises(InputError, match="v73.mat: a MATLAB v7.3 \\(HDF5\\) file"):
        read_sidd_submission(tmp_path / "v73.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"DenoisedBlocksSrgb": blocks()})
    with pytest.raises(InputError, match="other.mat: no key 'TimeMPSrgb'; found keys \\['DenoisedBlocksSrgb'\\]"):
        read_sidd_submission(tmp_path / "other.mat")

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = blocks((1, 1, 4, 4, 3))[0, 0], np.zeros((4, 4, 3), np.float64)
    scipy.io.savemat(tmp_path / "float.mat", {"DenoisedBlocksSrgb": cell, "TimeMPSrgb": 1.0})
    with pytest.raises(InputError, match="float.mat: key 'DenoisedBlocksSrgb' cell \\(1, 2\\) holds a float64 array "
                                         "of shape \\(4, 4, 3\\); expected an H x W x 3 uint8 block"):
        read_sidd_submission(tmp_path / "float.mat")
    cell[0, 1] = np.zeros((5, 4, 3), np.uint8)
    scipy.io.savemat(tmp_path / "ragged.mat", {"DenoisedBlocksSrgb": cell, "TimeMPSrgb": 1.0})
    with pytest.raises(InputError, match="same shape as cell \\(1, 1\\), \\(4, 4, 3\\)"):
        read_sidd_submission(tmp_path / "ragged.mat")
    scipy.io.savemat(tmp_path / "time.mat", {"DenoisedBlocksSrgb": blocks(), "TimeMPSrgb": "fast"})
    with pytest.raises(InputError, match="key 'TimeMPSrgb' is not one number"):
        read_sidd_submission(tmp_path / "time.mat")


def test_reader_takes_a_five_dimensional_array(tmp_path):
    # some tools write the blocks as one uint8 array instead of a cell array; the reader takes both
    denoised = blocks((2, 3, 4, 4, 3))
    scipy.io.savemat(tmp_path / "array.mat", {"DenoisedBlocksSrgb": denoised, "TimeMPSrgb": 0.5})
    submission = read_sidd_submission(tmp_path / "array.mat")
    np.testing.assert_array_equal(submission.blocks, denoised)
    assert submission.seconds_per_megapixel == 0.5 and submission.optional_data == {}


def test_csv_rows_are_the_blocks_in_image_block_order_in_base64(tmp_path):
    denoised = blocks()
    path = write_sidd_csv(tmp_path / "out", denoised)
    assert path == str(tmp_path / "out" / CSV_NAME) and CSV_NAME == "SubmitSrgb.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["ID", "BLOCK"] and len(rows) == 1 + 3 * 4
    for index, (identifier, text) in enumerate(rows[1:]):
        image, block = divmod(index, 4)
        assert identifier == str(index)
        decoded = np.frombuffer(base64.b64decode(text), np.uint8).reshape(8, 6, 3)
        np.testing.assert_array_equal(decoded, denoised[image, block])
    np.testing.assert_array_equal(read_sidd_csv(path, 3, 4, 8, 6), denoised)


@pytest.mark.parametrize("shape", [(3, 4, 8, 6), (2, 4, 8, 6), (3, 4, 8, 5)])
def test_csv_that_does_not_fit_is_refused(tmp_path, shape):
    path = write_sidd_csv(tmp_path, blocks())
    if shape == (3, 4, 8, 6):
        with open(path, "a") as handle:
            handle.write("12,AAAA\n")
    with pytest.raises(InputError, match="SubmitSrgb.csv"):
        read_sidd_csv(path, *shape)
