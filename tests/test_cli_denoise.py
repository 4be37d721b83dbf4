"""`atbsn denoise`: files and folders in, same size / format / bit depth out, equal to running the
model directly; tiles, hole sizes and distilled checkpoints; clear errors and no stray files."""

import cv2
import numpy as np
import pytest
import torch
from synthetic_data import all_files, noisy_pair, random_rgb, read_rgb, tiny_model, tiny_weights, to_chw, write_rgb

from atbsn.cli import main
from atbsn.inference import denoise_tiled
from atbsn.models import ATBSN
from atbsn.models.weights import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Tiny weight files: an ATBSN, an NBSN student and a distilled pair (nbsn.* + bsn.*)."""
    folder = tmp_path_factory.mktemp("weights")
    atbsn = tiny_weights(folder / "atbsn.safetensors", "atbsn", seed=0)
    student = tiny_weights(folder / "student.safetensors", "student", seed=1)
    teacher, pupil = tiny_model("atbsn", seed=2), tiny_model("student", seed=3)
    state = {**{f"bsn.{k}": v for k, v in teacher.state_dict().items()},
             **{f"nbsn.{k}": v for k, v in pupil.state_dict().items()}}
    torch.save(state, folder / "distilled.pth")
    return {"atbsn": (str(folder / "atbsn.safetensors"), atbsn),
            "student": (str(folder / "student.safetensors"), student),
            "distilled": (str(folder / "distilled.pth"), teacher, pupil)}


def denoise(*args):
    return main(["denoise", *map(str, args), "--device", "cpu"])


@torch.no_grad()
def expected_8bit(model, rgb, hole=3):
    """What the model makes of an 8-bit (H, W, 3) image, rounded to 8 bits, as (H, W, 3) uint8."""
    x = to_chw(rgb)[None]
    out = model(x, hole) if isinstance(model, ATBSN) else model(x)
    return out[0].clamp(0, 255).round().permute(1, 2, 0).numpy().astype(np.uint8)


def test_single_8bit_png(tmp_path, weights, capsys):
    path, model = weights["atbsn"]
    noisy, _clean = noisy_pair(24, 20, seed=0)
    source = write_rgb(tmp_path / "in" / "photo.png", noisy)
    assert denoise(source, "-o", tmp_path / "out", "--weights", path) == 0
    assert capsys.readouterr().out.strip().endswith(f"denoise: 1 image(s) written to {tmp_path / 'out'}")
    assert all_files(tmp_path / "out") == ["photo.png"]
    result = read_rgb(tmp_path / "out" / "photo.png")
    assert result.dtype == np.uint8 and result.shape == (24, 20, 3)
    assert not np.array_equal(result, noisy)
    # an image smaller than the tile: one pass of the model, rounded
    np.testing.assert_array_equal(result, expected_8bit(model, noisy))
    assert all_files(tmp_path / "in") == ["photo.png"]


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_16bit_input_gives_16bit_output(tmp_path, weights, suffix):
    path, model = weights["atbsn"]
    noisy = random_rgb(26, 30, seed=1, dtype=np.uint16)
    source = write_rgb(tmp_path / f"deep{suffix}", noisy)
    assert denoise(source, "-o", tmp_path / "out", "--weights", path) == 0
    result = read_rgb(tmp_path / "out" / f"deep{suffix}")
    assert result.dtype == np.uint16 and result.shape == (26, 30, 3)
    with torch.no_grad():
        out = model(to_chw(noisy, 255 / 65535)[None], 3)[0].double().clamp(0, 255) * (65535 / 255)
    expected = out.round().permute(1, 2, 0).numpy().astype(np.uint16)
    np.testing.assert_array_equal(result, expected)
    assert (result % 257 != 0).any()  # real 16-bit values, not 8-bit ones scaled up


def test_jpeg(tmp_path, weights):
    path, model = weights["atbsn"]
    noisy, _clean = noisy_pair(32, 40, seed=2)
    source = write_rgb(tmp_path / "snap.jpg", noisy, (cv2.IMWRITE_JPEG_QUALITY, 95))
    decoded = read_rgb(source)
    assert denoise(source, "-o", tmp_path / "out", "--weights", path) == 0
    assert all_files(tmp_path / "out") == ["snap.jpg"]
    with open(tmp_path / "out" / "snap.jpg", "rb") as file:
        assert file.read(3) == b"\xff\xd8\xff"  # a JPEG, as the name says
    result = read_rgb(tmp_path / "out" / "snap.jpg")
    assert result.dtype == np.uint8 and result.shape == (32, 40, 3)
    expected = expected_8bit(model, decoded).astype(float)
    assert np.abs(result - expected).mean() < 0.2 * np.abs(decoded - expected).mean()  # JPEG is lossy, but close


def test_folder_keeps_names_formats_and_depths(tmp_path, weights, capsys):
    path, model = weights["atbsn"]
    folder = tmp_path / "in"
    eight = write_rgb(folder / "a.png", random_rgb(24, 20, seed=3))
    write_rgb(folder / "b.jpg", random_rgb(30, 22, seed=4))
    write_rgb(folder / "c.tiff", random_rgb(20, 24, seed=5, dtype=np.uint16))
    (folder / "notes.txt").write_text("not an image")
    write_rgb(folder / ".hidden.png", random_rgb(24, 20, seed=6))
    assert denoise(folder, "-o", tmp_path / "out", "--weights", path) == 0
    assert "denoise: 3 image(s) written" in capsys.readouterr().out
    assert all_files(tmp_path / "out") == ["a.png", "b.jpg", "c.tiff"]
    shapes = {name: read_rgb(tmp_path / "out" / name) for name in ["a.png", "b.jpg", "c.tiff"]}
    assert {name: (image.shape, image.dtype) for name, image in shapes.items()} == {
        "a.png": ((24, 20, 3), np.uint8), "b.jpg": ((30, 22, 3), np.uint8), "c.tiff": ((20, 24, 3), np.uint16)}
    np.testing.assert_array_equal(shapes["a.png"], expected_8bit(model, read_rgb(eight)))


def test_files_and_folders_together(tmp_path, weights):
    path, _model = weights["student"]
    write_rgb(tmp_path / "one" / "a.png", random_rgb(24, 20, seed=7))
    write_rgb(tmp_path / "one" / "b.png", random_rgb(24, 20, seed=8))
    single = write_rgb(tmp_path / "c.png", random_rgb(24, 20, seed=9))
    assert denoise(tmp_path / "one", single, "-o", tmp_path / "out", "--weights", path) == 0
    assert all_files(tmp_path / "out") == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("name, bit_depth", [("result.png", 8), ("result.tif", 8), ("deep/result.tif", 16)])
def test_output_file_name_for_one_input(tmp_path, weights, name, bit_depth):
    path, model = weights["atbsn"]
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    noisy = random_rgb(24, 20, seed=10, dtype=dtype)
    source = write_rgb(tmp_path / "in" / "photo.png", noisy)
    assert denoise(source, "-o", tmp_path / "out" / name, "--weights", path) == 0
    assert all_files(tmp_path / "out") == [name]
    result = read_rgb(tmp_path / "out" / name)
    assert result.dtype == dtype and result.shape == (24, 20, 3)
    if bit_depth == 8:
        np.testing.assert_array_equal(result, expected_8bit(model, noisy))


def test_large_images_are_denoised_in_tiles(tmp_path, weights, monkeypatch):
    path, model = weights["atbsn"]
    noisy, _clean = noisy_pair(70, 66, seed=11)
    source = write_rgb(tmp_path / "big.png", noisy)
    calls = []
    forward = ATBSN.forward

    def spy(self, x, hole_size=1):
        calls.append(tuple(x.shape))
        return forward(self, x, hole_size)

    monkeypatch.setattr(ATBSN, "forward", spy)
    assert denoise(source, "-o", tmp_path / "out", "--weights", path, "--tile", 32, "--overlap", 8) == 0
    # 70 rows -> tiles at 0, 24, 38; 66 columns -> 0, 24, 34: nine 32 x 32 tiles
    assert calls == [(1, 3, 32, 32)] * 9
    result = read_rgb(tmp_path / "out" / "big.png")
    assert result.shape == (70, 66, 3) and result.dtype == np.uint8

    with torch.no_grad():
        tiled = denoise_tiled(lambda x: forward(model, x, 3), to_chw(noisy)[None], tile=32, overlap=8)
    np.testing.assert_array_equal(result, tiled[0].clamp(0, 255).round().permute(1, 2, 0).numpy().astype(np.uint8))
    whole = expected_8bit(model, noisy)
    assert not np.array_equal(result, whole)  # an 8-pixel overlap is too little to match the whole-image pass

    # the default tile (512) takes the image in one pass
    calls.clear()
    assert denoise(source, "-o", tmp_path / "whole", "--weights", path) == 0
    assert calls == [(1, 3, 70, 66)]
    np.testing.assert_array_equal(read_rgb(tmp_path / "whole" / "big.png"), whole)


def test_hole_size_is_used(tmp_path, weights):
    path, model = weights["atbsn"]
    noisy, _clean = noisy_pair(32, 28, seed=12)
    source = write_rgb(tmp_path / "photo.png", noisy)
    results = {}
    for hole in (3, 5, 0):
        assert denoise(source, "-o", tmp_path / f"hole{hole}", "--weights", path, "--model", "atbsn",
                       "--hole", hole) == 0
        results[hole] = read_rgb(tmp_path / f"hole{hole}" / "photo.png")
        np.testing.assert_array_equal(results[hole], expected_8bit(model, noisy, hole))
    assert not np.array_equal(results[3], results[5])
    assert not np.array_equal(results[3], results[0])


def test_student_weights(tmp_path, weights):
    path, model = weights["student"]
    noisy, _clean = noisy_pair(24, 36, seed=13)
    source = write_rgb(tmp_path / "photo.png", noisy)
    assert denoise(source, "-o", tmp_path / "out", "--weights", path, "--model", "student") == 0
    np.testing.assert_array_equal(read_rgb(tmp_path / "out" / "photo.png"), expected_8bit(model, noisy))


def test_distilled_checkpoint_atbsn_or_student(tmp_path, weights, capsys):
    path, teacher, student = weights["distilled"]
    noisy, _clean = noisy_pair(24, 20, seed=14)
    source = write_rgb(tmp_path / "photo.png", noisy)
    assert denoise(source, "-o", tmp_path / "teacher", "--weights", path, "--model", "atbsn") == 0
    assert denoise(source, "-o", tmp_path / "default", "--weights", path) == 0
    assert denoise(source, "-o", tmp_path / "student", "--weights", path, "--model", "student") == 0
    from_teacher = read_rgb(tmp_path / "teacher" / "photo.png")
    from_student = read_rgb(tmp_path / "student" / "photo.png")
    np.testing.assert_array_equal(from_teacher, expected_8bit(teacher, noisy))
    np.testing.assert_array_equal(from_student, expected_8bit(student, noisy))
    np.testing.assert_array_equal(read_rgb(tmp_path / "default" / "photo.png"), from_student)
    assert not np.array_equal(from_teacher, from_student)
    err = capsys.readouterr().err
    assert "denoising (ATBSN hole 3)" in err and "denoising (student (NBSN))" in err


# bad input: exit 2, one error line, nothing written

def _write_bad_input(case, folder):
    """The inputs of an error case (under `folder`) and the extra arguments; [] inputs for a missing one."""
    folder.mkdir(parents=True)
    good = lambda name: write_rgb(folder / name, random_rgb(24, 20, seed=15))  # noqa: E731
    if case == "missing input":
        return [str(folder / "nowhere.png")], []
    if case == "grey PNG":
        return [write_rgb(folder / "grey.png", random_rgb(24, 20)[:, :, 0])], []
    if case == "RGBA PNG":
        rgba = np.concatenate([random_rgb(24, 20), np.full((24, 20, 1), 255, np.uint8)], axis=2)
        return [write_rgb(folder / "rgba.png", rgba)], []
    if case == "corrupt file":
        (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 30)
        return [str(folder / "corrupt.png")], []
    if case == "empty folder":
        (folder / "empty").mkdir()
        (folder / "empty" / "notes.txt").write_text("no images here")
        return [str(folder / "empty")], []
    if case == "two inputs, one output file":
        return [good("a.png"), good("b.png")], ["OUT_FILE"]
    if case == "same names from two folders":
        return [write_rgb(folder / "x" / "a.png", random_rgb(24, 20)), write_rgb(folder / "y" / "a.png",
                                                                                random_rgb(24, 20))], []
    if case == "even hole":
        return [good("a.png")], ["--hole", "4"]
    if case == "student asked of ATBSN weights":
        return [good("a.png")], ["--model", "student"]
    if case == "missing weights":
        return [good("a.png")], ["--weights", str(folder / "missing.safetensors")]
    if case == "overlap not below tile":
        return [good("a.png")], ["--tile", "16", "--overlap", "16"]
    raise AssertionError(case)


BAD_INPUTS = {
    "missing input": "nowhere.png: no such file or folder",
    "grey PNG": "grey.png: the models take 3-channel RGB images; found a grey image (1 channel)",
    "RGBA PNG": "rgba.png: the models take 3-channel RGB images; found an RGBA image (4 channels)",
    "corrupt file": "corrupt.png: not a readable image",
    "empty folder": "empty: no image files",
    "two inputs, one output file": "names one image file but there are 2 inputs",
    "same names from two folders": "inputs from different folders share the names ['a.png']",
    "even hole": "hole must be 0 or an odd positive number, got 4",
    "student asked of ATBSN weights": "atbsn.safetensors holds an ATBSN, not the student asked for with --model",
    "missing weights": "missing.safetensors: no such weight file",
    "overlap not below tile": "--overlap must be >= 0 and < --tile (16), got 16",
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, weights, capsys, case):
    inputs, extra = _write_bad_input(case, tmp_path / "in")
    before = {name: (tmp_path / "in" / name).read_bytes() for name in all_files(tmp_path / "in")}
    output = tmp_path / "out" / "result.png" if "OUT_FILE" in extra else tmp_path / "out"
    extra = [arg for arg in extra if arg != "OUT_FILE"]
    if "--weights" not in extra:
        extra += ["--weights", weights["atbsn"][0]]
    assert denoise(*inputs, "-o", output, *extra) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = [line for line in captured.err.replace("\r", "\n").splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, captured.err
    assert error_lines[0].startswith("atbsn denoise: error: ") and BAD_INPUTS[case] in error_lines[0], captured.err
    assert captured.err.endswith(error_lines[0] + "\n")
    assert "Traceback" not in captured.err
    # anything else on stderr is the input check's progress bar (nothing is denoised), before the error
    others = [line.strip() for line in captured.err.replace("\r", "\n").splitlines()
              if line.strip() and line != error_lines[0]]
    assert all(line.startswith("checking inputs") for line in others), captured.err
    assert all_files(tmp_path / "out") == []  # no output, not even a temporary file
    assert {name: (tmp_path / "in" / name).read_bytes() for name in all_files(tmp_path / "in")} == before


@pytest.mark.parametrize("how", ["file", "folder"])
def test_output_onto_the_input_is_refused(tmp_path, weights, capsys, how):
    source = write_rgb(tmp_path / "in" / "photo.png", random_rgb(24, 20, seed=16))
    before = (tmp_path / "in" / "photo.png").read_bytes()
    target = source if how == "file" else tmp_path / "in"
    source_arg = source if how == "file" else tmp_path / "in"
    assert denoise(source_arg, "-o", target, "--weights", weights["atbsn"][0]) == 2
    err = capsys.readouterr().err
    assert err == f"atbsn denoise: error: {source} would overwrite its input; choose another --output\n"
    assert all_files(tmp_path / "in") == ["photo.png"]
    assert (tmp_path / "in" / "photo.png").read_bytes() == before

    # the same file reached through another spelling of its path is refused too
    other_spelling = tmp_path / "in" / ".." / "in" / "photo.png"
    assert denoise(source, "-o", other_spelling, "--weights", weights["atbsn"][0]) == 2
    assert "would overwrite its input" in capsys.readouterr().err
    assert (tmp_path / "in" / "photo.png").read_bytes() == before


@pytest.mark.parametrize("name", ["o.bmp", "results.v2"])
def test_an_output_suffix_we_cannot_write_is_an_error_not_a_folder(tmp_path, weights, capsys, name):
    source = write_rgb(tmp_path / "photo.png", random_rgb(24, 20, seed=17))
    assert denoise(source, "-o", tmp_path / name, "--weights", weights["atbsn"][0]) == 2
    err = capsys.readouterr().err
    assert "is not an image format atbsn writes" in err and "end it with /" in err and len(err.splitlines()) == 1
    assert not (tmp_path / name).exists()


def test_a_trailing_slash_or_an_existing_folder_names_a_folder(tmp_path, weights):
    source = write_rgb(tmp_path / "photo.png", random_rgb(24, 20, seed=17))
    assert denoise(source, "-o", f"{tmp_path / 'results.v2'}/", "--weights", weights["atbsn"][0]) == 0
    assert all_files(tmp_path / "results.v2") == ["photo.png"]
    (tmp_path / "shots.bmp").mkdir()
    assert denoise(source, "-o", tmp_path / "shots.bmp", "--weights", weights["atbsn"][0]) == 0
    assert all_files(tmp_path / "shots.bmp") == ["photo.png"]


def test_weights_saved_half_precision_still_denoise(tmp_path, weights):
    _path, model = weights["atbsn"]
    save_weights(model, tmp_path / "half.safetensors", half=True)
    noisy, _clean = noisy_pair(24, 20, seed=18)
    source = write_rgb(tmp_path / "photo.png", noisy)
    assert denoise(source, "-o", tmp_path / "out", "--weights", tmp_path / "half.safetensors") == 0
    result = read_rgb(tmp_path / "out" / "photo.png").astype(int)
    assert np.abs(result - expected_8bit(model, noisy)).max() <= 3
