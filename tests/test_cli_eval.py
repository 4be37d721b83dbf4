"""`atbsn eval`: PSNR/SSIM per image on folder pairs, the patch layout and SIDD's validation .mat
files, checked against scikit-image on the same model's quantised output; DND's upload bundle;
clear errors."""

import csv
import json

import numpy as np
import pytest
import scipy.io
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from synthetic_data import all_files, noisy_pair, tiny_weights, to_chw, write_rgb
from test_data_loaders import BOXES_PER_IMAGE, make_dnd

from atbsn.cli import main
from atbsn.data.sidd import save_sidd_blocks
from atbsn.data.sidd_submission import read_sidd_csv, read_sidd_submission
from atbsn.inference import denoise_tiled

COLUMNS = ["image", "noisy_psnr", "noisy_ssim", "psnr", "ssim"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "atbsn.safetensors"
    return str(path), tiny_weights(path, "atbsn", seed=0)


def evaluate(*args):
    return main(["eval", *map(str, args), "--device", "cpu"])


@torch.no_grad()
def output_of(model, noisy_rgb, hole=3):
    """The model's output on an 8-bit (H, W, 3) image, quantised to the 8-bit grid, as (H, W, 3) float64."""
    out = model(to_chw(noisy_rgb)[None], hole)[0].clamp(0, 255).round()
    return out.permute(1, 2, 0).double().numpy()


def skimage_scores(name, noisy, clean, output):
    """The row `atbsn eval` should write, computed with scikit-image (Gaussian SSIM, sigma 1.5, population stats)."""
    def ssim(x):
        return structural_similarity(clean.astype(np.float64), x.astype(np.float64), channel_axis=2, data_range=255,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False)

    def psnr(x):
        return peak_signal_noise_ratio(clean.astype(np.float64), x.astype(np.float64), data_range=255)

    return {"image": name, "noisy_psnr": psnr(noisy), "noisy_ssim": ssim(noisy), "psnr": psnr(output),
            "ssim": ssim(output)}


def read_results(out):
    with open(out / "eval.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = [{key: value if key == "image" else float(value) for key, value in row.items()} for row in reader]
    summary = json.loads((out / "summary.json").read_text())
    return rows, summary


def check_results(out, expected_rows, data, model_name="ATBSN hole 3"):
    rows, summary = read_results(out)
    assert [row["image"] for row in rows] == [row["image"] for row in expected_rows]
    for row, expected in zip(rows, expected_rows):
        for key in COLUMNS[1:]:
            assert row[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-6), (row["image"], key)
    assert summary["model"] == model_name and summary["data"] == data and summary["images"] == len(rows)
    assert set(summary) == {"model", "data", "images", *COLUMNS[1:]}
    for key in COLUMNS[1:]:
        assert summary[key] == pytest.approx(sum(row[key] for row in rows) / len(rows), rel=1e-12), key
    assert all_files(out) == ["eval.csv", "summary.json"]
    return rows, summary


def test_folder_pairs(tmp_path, weights, capsys):
    path, model = weights
    expected = []
    for name, (height, width), seed in [("a", (24, 20), 0), ("b", (32, 28), 1)]:
        noisy, clean = noisy_pair(height, width, seed=seed)
        write_rgb(tmp_path / "noisy" / f"{name}.png", noisy)
        write_rgb(tmp_path / "clean" / f"{name}.png", clean)
        expected.append(skimage_scores(name, noisy, clean, output_of(model, noisy)))
    write_rgb(tmp_path / "clean" / "unused.png", noisy_pair(24, 20, seed=9)[1])  # extra clean images are fine
    out = tmp_path / "out"
    assert evaluate("--data", tmp_path / "noisy", "--clean", tmp_path / "clean", "-o", out, "--weights", path) == 0
    rows, summary = check_results(out, expected, str(tmp_path / "noisy"))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["PSNR", "SSIM"]
    assert printed[1].split() == ["noisy", "input", f"{summary['noisy_psnr']:.2f}", f"{summary['noisy_ssim']:.4f}"]
    assert printed[2].split() == ["ATBSN", "hole", "3", f"{summary['psnr']:.2f}", f"{summary['ssim']:.4f}"]
    assert printed[3] == f"eval: 2 images; per-image scores in {out / 'eval.csv'}"
    # the noisy rows do not depend on the model; the denoised ones are not the noisy ones
    assert all(row["psnr"] != row["noisy_psnr"] for row in rows)


def test_folder_pairs_with_the_hole_and_tiles(tmp_path, weights):
    path, model = weights
    noisy, clean = noisy_pair(40, 36, seed=2)
    write_rgb(tmp_path / "noisy" / "x.png", noisy)
    write_rgb(tmp_path / "clean" / "x.png", clean)
    out = tmp_path / "out"
    assert evaluate("--data", tmp_path / "noisy", "--clean", tmp_path / "clean", "-o", out, "--weights", path,
                    "--hole", 5) == 0
    check_results(out, [skimage_scores("x", noisy, clean, output_of(model, noisy, 5))], str(tmp_path / "noisy"),
                  "ATBSN hole 5")
    # --tile and --overlap reach the denoiser: the scores are those of the tiled output
    assert evaluate("--data", tmp_path / "noisy", "--clean", tmp_path / "clean", "-o", tmp_path / "tiled",
                    "--weights", path, "--hole", 5, "--tile", 24, "--overlap", 4) == 0
    with torch.no_grad():
        tiled = denoise_tiled(lambda x: model(x, 5), to_chw(noisy)[None], tile=24, overlap=4)
    tiled = tiled[0].clamp(0, 255).round().permute(1, 2, 0).double().numpy()
    assert not np.array_equal(tiled, output_of(model, noisy, 5))
    check_results(tmp_path / "tiled", [skimage_scores("x", noisy, clean, tiled)], str(tmp_path / "noisy"),
                  "ATBSN hole 5")


def test_patch_layout(tmp_path, weights):
    path, model = weights
    expected = []
    for index in range(3):
        noisy, clean = noisy_pair(24, 24, seed=10 + index)
        write_rgb(tmp_path / "root" / "Noisy" / "valid" / f"{index}.png", noisy)
        write_rgb(tmp_path / "root" / "GT" / "valid" / f"{index}_gt.png", clean)
        expected.append(skimage_scores(str(index), noisy, clean, output_of(model, noisy)))
    # the training split is not evaluated
    write_rgb(tmp_path / "root" / "Noisy" / "train" / "9.png", noisy_pair(24, 24, seed=20)[0])
    out = tmp_path / "out"
    assert evaluate("--data", tmp_path / "root", "-o", out, "--weights", path) == 0
    check_results(out, expected, str(tmp_path / "root"))


def _sidd_folder(folder, shape=(2, 2, 32, 32, 3)):
    """SIDD-style validation .mat files; returns the expected rows' inputs (name, noisy, clean) in order."""
    rng = np.random.default_rng(3)
    clean = np.empty(shape, np.uint8)
    for i in range(shape[0]):
        for j in range(shape[1]):
            clean[i, j] = np.round(np.roll(np.linspace(30, 220, shape[2])[:, None, None], i + 2 * j)
                                   + np.zeros(shape[2:]) + 5 * j)
    noisy = np.clip(clean + rng.normal(0, 12, shape).round(), 0, 255).astype(np.uint8)
    save_sidd_blocks(folder / "ValidationNoisyBlocksSrgb.mat", "ValidationNoisyBlocksSrgb", noisy)
    save_sidd_blocks(folder / "ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb", clean)
    blocks = [(noisy[i, j], clean[i, j]) for i in range(shape[0]) for j in range(shape[1])]
    return [(f"block_{index:04d}", n, c) for index, (n, c) in enumerate(blocks)]


@pytest.mark.parametrize("given", ["file", "folder"])
def test_sidd_validation_mat(tmp_path, weights, given):
    path, model = weights
    blocks = _sidd_folder(tmp_path / "sidd")
    expected = [skimage_scores(name, noisy, clean, output_of(model, noisy)) for name, noisy, clean in blocks]
    data = tmp_path / "sidd" / "ValidationNoisyBlocksSrgb.mat" if given == "file" else tmp_path / "sidd"
    out = tmp_path / "out"
    assert evaluate("--data", data, "-o", out, "--weights", path) == 0
    rows, _summary = check_results(out, expected, str(data))
    assert len(rows) == 4


def test_dnd_bundle(tmp_path, weights, capsys):
    path, model = weights
    truth = make_dnd(tmp_path / "dnd", images=2)
    out = tmp_path / "out"
    assert evaluate("--dnd", tmp_path / "dnd", "-o", out, "--weights", path) == 0
    assert "upload bundle of 2 files" in capsys.readouterr().out
    assert all_files(out) == ["bundled/0001.mat", "bundled/0002.mat"]
    for index, (image, boxes) in enumerate(truth):
        contents = scipy.io.loadmat(out / "bundled" / f"{index + 1:04d}.mat")
        assert not contents["israw"].item() and contents["eval_version"].item() == "1.0"
        cell = contents["Idenoised"].reshape(-1)
        assert len(cell) == BOXES_PER_IMAGE
        for crop, (row1, col1, row2, col2) in zip(cell, boxes.astype(int)):
            pixels = image[row1 - 1:row2, col1 - 1:col2]
            assert crop.shape == (row2 - row1 + 1, col2 - col1 + 1, 3) and crop.dtype == np.float32
            with torch.no_grad():
                x = to_chw(pixels, 255)[None]
                expected = model(x, 3)[0].clamp(0, 255).round().permute(1, 2, 0).numpy() / 255
            np.testing.assert_allclose(crop, expected, rtol=1e-6, atol=1e-7)
            assert crop.min() >= 0 and crop.max() <= 1


def _sidd_benchmark(path, shape=(2, 3, 16, 16, 3), key="BenchmarkNoisyBlocksSrgb"):
    """A tiny SIDD-style benchmark file (images x blocks x H x W x 3 uint8); returns the blocks."""
    noisy = np.empty(shape, np.uint8)
    for i in range(shape[0]):
        for j in range(shape[1]):
            noisy[i, j] = noisy_pair(*shape[2:4], seed=30 + 10 * i + j)[0]
    save_sidd_blocks(path, key, noisy)
    return noisy


def _check_submission(out, model, noisy, hole=3):
    """SubmitSrgb.mat in `out` holds, block by block, the model's 8-bit output on each noisy block."""
    assert all_files(out) == ["SubmitSrgb.csv", "SubmitSrgb.mat"]
    path = out / "SubmitSrgb.mat"
    assert scipy.io.whosmat(path) == [("DenoisedBlocksSrgb", noisy.shape[:2], "cell"),
                                      ("TimeMPSrgb", (1, 1), "double"), ("OptionalData", (1, 1), "struct")]
    cell = scipy.io.loadmat(path)["DenoisedBlocksSrgb"]
    assert cell.dtype == object and cell.shape == noisy.shape[:2]
    for (image, block), denoised in np.ndenumerate(cell):
        assert denoised.dtype == np.uint8 and denoised.shape == noisy.shape[2:]
        np.testing.assert_array_equal(denoised, output_of(model, noisy[image, block], hole).astype(np.uint8))
    submission = read_sidd_submission(path)
    assert not np.array_equal(submission.blocks, noisy)
    assert 0 < submission.seconds_per_megapixel < float("inf")
    assert set(submission.optional_data) == {"MethodName", "MachineSpecs"}
    assert "PyTorch" in submission.optional_data["MachineSpecs"]
    np.testing.assert_array_equal(read_sidd_csv(out / "SubmitSrgb.csv", *noisy.shape[:4]), submission.blocks)
    return submission


def test_sidd_benchmark_submission(tmp_path, weights, capsys):
    path, model = weights
    noisy = _sidd_benchmark(tmp_path / "BenchmarkNoisyBlocksSrgb.mat")
    out = tmp_path / "out"
    assert evaluate("--sidd-benchmark", tmp_path / "BenchmarkNoisyBlocksSrgb.mat", "-o", out, "--weights", path) == 0
    submission = _check_submission(out, model, noisy)
    assert submission.optional_data["MethodName"] == "ATBSN hole 3"
    assert "threads (PyTorch" in submission.optional_data["MachineSpecs"]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"eval: SIDD has no public clean benchmark blocks; submission of 2 x 3 blocks "
                       f"({submission.seconds_per_megapixel:.3g} s per megapixel): {out / 'SubmitSrgb.csv'} for "
                       f"the Kaggle benchmark, {out / 'SubmitSrgb.mat'} for the original benchmark page"]


def test_sidd_benchmark_with_the_hole_and_a_mat_key(tmp_path, weights):
    path, model = weights
    noisy = _sidd_benchmark(tmp_path / "mine.mat", shape=(1, 2, 24, 20, 3), key="MyBlocks")
    out = tmp_path / "out"
    assert evaluate("--sidd-benchmark", tmp_path / "mine.mat", "--mat-key", "MyBlocks", "--hole", 5, "-o", out,
                    "--weights", path) == 0
    assert _check_submission(out, model, noisy, hole=5).optional_data["MethodName"] == "ATBSN hole 5"


def test_sidd_benchmark_given_the_validation_file(tmp_path, weights, capsys):
    _sidd_benchmark(tmp_path / "ValidationNoisyBlocksSrgb.mat", key="ValidationNoisyBlocksSrgb")
    assert evaluate("--sidd-benchmark", tmp_path / "ValidationNoisyBlocksSrgb.mat", "-o", tmp_path / "out",
                    "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "ValidationNoisyBlocksSrgb.mat: no key 'BenchmarkNoisyBlocksSrgb'; found keys " \
           "['ValidationNoisyBlocksSrgb']" in line
    assert all_files(tmp_path / "out") == []


def test_dnd_and_sidd_benchmark_together_refused(tmp_path, weights, capsys):
    make_dnd(tmp_path / "dnd", images=1)
    _sidd_benchmark(tmp_path / "BenchmarkNoisyBlocksSrgb.mat")
    assert evaluate("--dnd", tmp_path / "dnd", "--sidd-benchmark", tmp_path / "BenchmarkNoisyBlocksSrgb.mat",
                    "-o", tmp_path / "out", "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == "atbsn eval: error: --dnd and --sidd-benchmark each write one benchmark's upload; " \
                   "give only one of them"
    assert all_files(tmp_path / "out") == []


# errors: exit 2, one error line, nothing written

def _one_error_line(err):
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines[-1] == errors[0] and err.endswith(errors[0] + "\n"), err
    assert errors[0].startswith("atbsn eval: error: ") and "Traceback" not in err
    assert all(line.startswith(("reading", "evaluating", "DND")) for line in lines[:-1]), err  # progress bars only
    return errors[0]


def test_noisy_folder_without_clean_images(tmp_path, weights, capsys):
    write_rgb(tmp_path / "noisy" / "a.png", noisy_pair(24, 20)[0])
    assert evaluate("--data", tmp_path / "noisy", "-o", tmp_path / "out", "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'noisy'}: no clean images to compare with (e.g. for a)" in line and "--clean" in line
    assert all_files(tmp_path / "out") == []


def test_clean_folder_missing_a_name(tmp_path, weights, capsys):
    for name in ("a.png", "b.png"):
        write_rgb(tmp_path / "noisy" / name, noisy_pair(24, 20)[0])
    write_rgb(tmp_path / "clean" / "a.png", noisy_pair(24, 20)[1])
    assert evaluate("--data", tmp_path / "noisy", "--clean", tmp_path / "clean", "-o", tmp_path / "out",
                    "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'noisy' / 'b.png'}: no clean image of the same name; expected " \
           f"{tmp_path / 'clean' / 'b.png'}" in line
    assert all_files(tmp_path / "out") == []


def test_wrong_mat_key(tmp_path, weights, capsys):
    blocks = np.zeros((1, 2, 16, 16, 3), np.uint8)
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"Other": blocks})
    save_sidd_blocks(tmp_path / "ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb", blocks)
    assert evaluate("--data", tmp_path / "ValidationNoisyBlocksSrgb.mat", "-o", tmp_path / "out",
                    "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "ValidationNoisyBlocksSrgb.mat: found keys ['Other']; expected exactly one of" in line
    assert "name the key with --mat-key KEY (eval)" in line
    assert all_files(tmp_path / "out") == []


def test_mat_key_names_the_blocks(tmp_path, weights, capsys):
    blocks = np.random.default_rng(5).integers(0, 256, (1, 2, 16, 16, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "MyNoisyBlocks.mat", {"MyNoisy": blocks, "Other": blocks[:, :1]})
    scipy.io.savemat(tmp_path / "MyGtBlocks.mat", {"MyGt": blocks})
    assert evaluate("--data", tmp_path / "MyNoisyBlocks.mat", "--mat-key", "MyNoisy", "-o", tmp_path / "out",
                    "--weights", weights[0]) == 0
    assert "eval: 2 images" in capsys.readouterr().out


def test_sidd_files_that_do_not_match(tmp_path, weights, capsys):
    save_sidd_blocks(tmp_path / "ValidationNoisyBlocksSrgb.mat", "ValidationNoisyBlocksSrgb",
                     np.zeros((1, 2, 16, 16, 3), np.uint8))
    assert evaluate("--data", tmp_path, "-o", tmp_path / "out", "--weights", weights[0]) == 2
    assert f"{tmp_path / 'ValidationGtBlocksSrgb.mat'}: no such file" in _one_error_line(capsys.readouterr().err)

    save_sidd_blocks(tmp_path / "ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb",
                     np.zeros((1, 1, 16, 16, 3), np.uint8))
    assert evaluate("--data", tmp_path, "-o", tmp_path / "out", "--weights", weights[0]) == 2
    assert "ValidationNoisyBlocksSrgb.mat holds 2 blocks but" in _one_error_line(capsys.readouterr().err)
    assert all_files(tmp_path / "out") == []


def test_dnd_without_info_mat(tmp_path, weights, capsys):
    make_dnd(tmp_path / "dnd", images=1)
    (tmp_path / "dnd" / "info.mat").unlink()
    assert evaluate("--dnd", tmp_path / "dnd", "-o", tmp_path / "out", "--weights", weights[0]) == 2
    assert f"{tmp_path / 'dnd' / 'info.mat'}: no such file" in _one_error_line(capsys.readouterr().err)
    assert all_files(tmp_path / "out") == []


def test_missing_data(tmp_path, weights, capsys):
    assert evaluate("--data", tmp_path / "nowhere", "-o", tmp_path / "out", "--weights", weights[0]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'nowhere'}: no such file or folder; expected 'none' or 'embedded'" in line
    assert all_files(tmp_path / "out") == []
