"""Image files: 8/16-bit PNG/TIFF/JPEG round trips, channel order, bad files, atomic writes, listing."""

import contextlib
import os

import cv2
import numpy as np
import pytest
import torch

import atbsn.data.images as images_module
from atbsn.data.atomic import atomic_path
from atbsn.data.images import (SUFFIXES, from_hwc, list_images, read_image, to_float_hwc, to_uint8_hwc,
                               write_image)
from atbsn.errors import InputError


def random_pixels(height, width, bit_depth, seed=0):
    """(3, H, W) float32 pixels on the grid of values a ``bit_depth`` file can hold exactly, and those codes."""
    generator = np.random.default_rng(seed)
    max_value = 2 ** bit_depth - 1
    codes = generator.integers(0, max_value + 1, size=(3, height, width))
    return torch.from_numpy(codes * (255 / max_value)).float(), codes


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".PNG"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_lossless_round_trip_is_exact(tmp_path, suffix, bit_depth):
    pixels, codes = random_pixels(5, 7, bit_depth)
    path = tmp_path / f"image{suffix}"
    write_image(path, pixels, bit_depth=bit_depth)

    stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    np.testing.assert_array_equal(stored[:, :, ::-1].transpose(2, 0, 1), codes)
    image = read_image(path)
    assert image.bit_depth == bit_depth and image.path == str(path)
    assert image.pixels.dtype == torch.float32 and image.pixels.shape == (3, 5, 7)
    torch.testing.assert_close(image.pixels, pixels, rtol=0, atol=1e-4)


def test_jpeg_round_trip_is_close(tmp_path):
    rows = torch.linspace(0, 255, 32).view(1, 32, 1).expand(3, 32, 48)
    pixels = torch.stack([rows[0], 255 - rows[1], torch.full((32, 48), 100.0)])
    write_image(tmp_path / "image.jpg", pixels)
    image = read_image(tmp_path / "image.jpg")
    assert image.bit_depth == 8 and image.pixels.shape == (3, 32, 48)
    assert (image.pixels - pixels).abs().mean() < 2


def test_red_stays_red_on_disk_and_back(tmp_path):
    red = torch.zeros(3, 4, 6)
    red[0] = 255
    write_image(tmp_path / "red.png", red)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "red.png"))[0, 0], [0, 0, 255])  # BGR on disk
    pixels = read_image(tmp_path / "red.png").pixels
    assert (pixels[0] == 255).all() and (pixels[1:] == 0).all()


def test_reads_a_bgr_file_as_rgb(tmp_path):
    blue_bgr = np.zeros((3, 5, 3), np.uint8)
    blue_bgr[:, :, 0] = 255
    cv2.imwrite(str(tmp_path / "blue.png"), blue_bgr)
    pixels = read_image(tmp_path / "blue.png").pixels
    assert (pixels[2] == 255).all() and (pixels[:2] == 0).all()


def test_write_clamps_and_rounds(tmp_path):
    pixels = torch.tensor([-5.0, 300.0, 127.6, 127.4]).view(1, 1, 4).expand(3, 1, 4)
    write_image(tmp_path / "clamped.png", pixels)
    assert read_image(tmp_path / "clamped.png").pixels[0, 0].tolist() == [0, 255, 128, 127]
    write_image(tmp_path / "clamped16.png", pixels, bit_depth=16)
    stored = cv2.imread(str(tmp_path / "clamped16.png"), cv2.IMREAD_UNCHANGED)
    assert stored[0, :, 0].tolist() == [0, 65535, round(127.6 * 65535 / 255), round(127.4 * 65535 / 255)]


def test_write_creates_parent_folders(tmp_path):
    write_image(tmp_path / "a" / "b" / "image.png", torch.zeros(3, 2, 2))
    assert read_image(tmp_path / "a" / "b" / "image.png").pixels.shape == (3, 2, 2)


@pytest.mark.parametrize("array, found", [
    (np.zeros((4, 5), np.uint8), "grey image"),
    (np.zeros((4, 5, 4), np.uint8), "RGBA image"),
])
def test_non_rgb_images_are_refused(tmp_path, array, found):
    cv2.imwrite(str(tmp_path / "bad.png"), array)
    with pytest.raises(InputError, match=f"bad.png: the models take 3-channel RGB images; found an? {found}"):
        read_image(tmp_path / "bad.png")


def test_float_tiff_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "float.tif"), np.zeros((4, 5, 3), np.float32))
    with pytest.raises(InputError, match="float.tif: found float32 pixels; expected 8-bit or 16-bit"):
        read_image(tmp_path / "float.tif")


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_corrupt_files_are_refused(tmp_path, content):
    if content == "truncated":
        content = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))[1][:200]
    (tmp_path / "corrupt.png").write_bytes(bytes(content))
    with pytest.raises(InputError, match="corrupt.png: not a readable image"):
        read_image(tmp_path / "corrupt.png")


def _random_file(suffix):
    return cv2.imencode(suffix, np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[1].tobytes()


def _opencv_lines(text):
    return [line for line in text.splitlines() if line.startswith(("[ WARN", "[ERROR"))]


# Files OpenCV fails to decode, most of them with a log line (to fd 2, from C++): OpenCV 5.0 logs
# libpng's "PNG input buffer is incomplete" for the truncated PNG (5.1 no longer does) and "IHDR chunk
# shall be first" for the garbage one, libtiff's "Seek error accessing TIFF directory" for both TIFFs.
# (A truncated JPEG fails silently; JPEG bytes in a .png file decode.)
UNREADABLE = {
    "truncated.png": lambda: _random_file(".png")[:3000],
    "garbage.png": lambda: b"\x89PNG\r\n\x1a\n" + bytes(200),
    "truncated.tif": lambda: _random_file(".tif")[:4000],
    "garbage.tif": lambda: b"II*\x00" + bytes(range(256)) * 4,
}


def test_most_unreadable_files_make_opencv_log(tmp_path, capfd):
    """The files below are worth their test: OpenCV itself logs for at least three of them."""
    logged = []
    for name, make in UNREADABLE.items():
        (tmp_path / name).write_bytes(make())
        capfd.readouterr()
        assert cv2.imdecode(np.fromfile(tmp_path / name, np.uint8), cv2.IMREAD_UNCHANGED) is None
        if _opencv_lines(capfd.readouterr().err):
            logged.append(name)
    assert len(logged) >= 3, f"OpenCV {cv2.__version__} logs only for {logged}: pick other inputs"


@pytest.mark.parametrize("name", UNREADABLE)
def test_opencv_prints_nothing_before_our_error_for_an_unreadable_file(tmp_path, capfd, name):
    (tmp_path / name).write_bytes(UNREADABLE[name]())
    level = cv2.utils.logging.getLogLevel()
    with pytest.raises(InputError, match=f"{name}: not a readable image"):
        read_image(tmp_path / name)
    assert _opencv_lines(capfd.readouterr().err) == []
    assert cv2.utils.logging.getLogLevel() == level


def test_opencv_prints_nothing_before_our_error_for_a_failed_write(tmp_path, capfd, monkeypatch):
    unopenable = str(tmp_path / "no" / "such" / "folder" / "out.tif")  # libtiff's TIFFOpen fails there
    assert not cv2.imwrite(unopenable, np.zeros((2, 2, 3), np.uint8))
    assert _opencv_lines(capfd.readouterr().err), "the write no longer makes OpenCV log: pick another"
    monkeypatch.setattr(images_module, "atomic_path", lambda path: contextlib.nullcontext(unopenable))
    with pytest.raises(InputError, match="out.tif: could not write the image"):
        write_image(tmp_path / "out.tif", torch.zeros(3, 2, 2))
    assert _opencv_lines(capfd.readouterr().err) == []


def test_opencv_quiet_restores_the_log_level_after_nesting_and_errors():
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    try:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
        with images_module._opencv_quiet():
            with images_module._opencv_quiet():
                assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
            assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
        assert logging.getLogLevel() == logging.LOG_LEVEL_ERROR
        with pytest.raises(RuntimeError), images_module._opencv_quiet():
            raise RuntimeError("inside")
        assert logging.getLogLevel() == logging.LOG_LEVEL_ERROR
    finally:
        logging.setLogLevel(previous)


def test_missing_file_and_folder_path_are_refused(tmp_path):
    with pytest.raises(InputError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="cannot read the file"):
        read_image(tmp_path)


def test_unsupported_outputs_are_refused(tmp_path):
    pixels = torch.zeros(3, 2, 2)
    with pytest.raises(InputError, match=r"image.bmp: unknown image suffix '.bmp'; expected one of .png, .jpg"):
        write_image(tmp_path / "image.bmp", pixels)
    with pytest.raises(InputError, match="JPEG holds 8-bit images only"):
        write_image(tmp_path / "image.jpeg", pixels, bit_depth=16)
    with pytest.raises(InputError, match="bit depth 12 is not supported"):
        write_image(tmp_path / "image.png", pixels, bit_depth=12)
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "image.png", torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="expected \\(3, H, W\\)"):
        write_image(tmp_path / "image.png", torch.zeros(2, 2))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "image.png"
    write_image(path, torch.full((3, 2, 2), 10.0))
    monkeypatch.setattr(cv2, "imwrite", lambda *args: False)
    with pytest.raises(InputError, match="image.png: could not write the image"):
        write_image(path, torch.full((3, 2, 2), 200.0))
    assert os.listdir(tmp_path) == ["image.png"]
    assert (read_image(path).pixels == 10).all()


def test_writer_error_becomes_input_error(tmp_path, monkeypatch):
    def refuse(path, array):
        raise cv2.error("no writer")

    monkeypatch.setattr(cv2, "imwrite", refuse)
    with pytest.raises(InputError, match="image.png: could not write the image"):
        write_image(tmp_path / "image.png", torch.zeros(3, 2, 2))
    assert list(tmp_path.iterdir()) == []


def test_write_interrupted_half_way_leaves_nothing(tmp_path, monkeypatch):
    def write_half_then_fail(path, array):
        with open(path, "wb") as file:
            file.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(cv2, "imwrite", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(tmp_path / "image.tif", torch.zeros(3, 2, 2))
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_suffix_and_folder(tmp_path):
    target = tmp_path / "sub" / "model.pt"
    with atomic_path(target) as temporary:
        assert os.path.dirname(temporary) == str(tmp_path / "sub") and temporary.endswith(".pt")
        with open(temporary, "w") as file:
            file.write("content")
        assert not target.exists()
    assert target.read_text() == "content" and os.listdir(tmp_path / "sub") == ["model.pt"]


def test_list_images_is_sorted_flat_and_filtered(tmp_path):
    for name in ["b.png", "a.JPG", "c.tiff", "d.jpeg", "e.tif", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "folder.png" / "nested.png").write_bytes(b"")
    names = [os.path.basename(path) for path in list_images(tmp_path)]
    assert names == ["a.JPG", "b.png", "c.tiff", "d.jpeg", "e.tif"]


def test_list_images_refuses_missing_and_empty_folders(tmp_path):
    with pytest.raises(InputError, match="missing: no such folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_bytes(b"")
    with pytest.raises(InputError, match=f"no image files; expected files ending in {', '.join(SUFFIXES)}"):
        list_images(tmp_path)


def test_hwc_converters():
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    pixels = from_hwc(array)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 2, 3)
    assert pixels[1, 0, 2].item() == array[0, 2, 1]
    np.testing.assert_array_equal(to_uint8_hwc(pixels), array)
    np.testing.assert_allclose(to_float_hwc(pixels, scale=0.5), array / 2)
    torch.testing.assert_close(from_hwc(array, scale=2.0), pixels * 2)
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) array"):
        from_hwc(np.zeros((2, 3)))
