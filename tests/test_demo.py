"""`atbsn demo`, end to end, once per session (it is the slowest test): the printed table and
results.json agree, the noisy-input row is what scikit-image says, the side-by-side PNG is laid out
as documented, the short training run logged its steps and plotted its loss; and the AT-BSN rows,
which come from `forward_holes`, equal `forward` run hole by hole.

The shipped weights must show the paper's orderings on the held-out photos (phone noise): AT-BSN
hole 3 beats the noisy input by >= 2 dB and hole 1 by >= 0.2 dB, beats a plain hole-1 BSN trained
the same way, and the student is at least as good as the best hole.
"""

import argparse
import contextlib
import io
import json
import math
import shutil

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from synthetic_data import all_files

import atbsn.denoiser
from atbsn.cli import main
from atbsn.commands import demo
from atbsn.data.embedded import NoisyImage, embedded_dataset
from atbsn.data.unprocess import channel_autocorrelation
from atbsn.denoiser import SHIPPED_WEIGHTS, load_denoiser
from atbsn.models import ATBSN, NBSN
from atbsn.train.logs import read_metrics

ROWS = ["noisy input", "plain BSN (hole 1)", "AT-BSN hole 1", "AT-BSN hole 3", "AT-BSN hole 5", "AT-BSN hole 9",
        "student (NBSN)"]
HELD_OUT = ["chelsea_0", "chelsea_1", "coffee_0", "coffee_1", "grace_hopper_0", "grace_hopper_1", "retina_0",
            "retina_1"]
PANEL, GAP = 160, 4


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A snapshot of the shipped weights, used by the demo and by the checks alike (the real files may be
    replaced by a retraining while the tests run)."""
    folder = tmp_path_factory.mktemp("shipped")
    copies = {kind: folder / path.name for kind, path in SHIPPED_WEIGHTS.items()}
    copies["baseline"] = folder / demo.BASELINE_WEIGHTS.name
    for kind, path in {**SHIPPED_WEIGHTS, "baseline": demo.BASELINE_WEIGHTS}.items():
        shutil.copyfile(path, copies[kind])
    with pytest.MonkeyPatch.context() as patch:
        for kind, copy in copies.items():
            if kind != "baseline":
                patch.setitem(atbsn.denoiser.SHIPPED_WEIGHTS, kind, copy)
        patch.setattr(demo, "BASELINE_WEIGHTS", copies["baseline"])
        yield copies


@pytest.fixture(scope="module")
def run(tmp_path_factory, shipped):
    """One `atbsn demo -o OUT --train-steps 3`: (exit code, stdout lines, OUT, results.json)."""
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["demo", "-o", str(out), "--train-steps", "3"])
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return code, stdout.getvalue().splitlines(), out, results


@pytest.fixture(scope="module")
def held_out():
    return embedded_dataset("held_out", demo.HELD_OUT_REALISATIONS)


def _table(lines):
    """{row: (psnr text, ssim text)} from the printed table."""
    start = next(index for index, line in enumerate(lines) if line.split() == ["PSNR", "(dB)", "SSIM"])
    table = {}
    for line in lines[start + 1:start + 1 + len(ROWS)]:
        name, numbers = line[:22].strip(), line[22:].split()
        assert len(numbers) == 2, line
        table[name] = tuple(numbers)
    return table


def test_demo_exits_0_and_writes_its_files(run):
    code, lines, out, results = run
    assert code == 0, "\n".join(lines)
    files = all_files(out)
    for name in ("results.json", "side_by_side.png", "noise_autocorrelation.png", "train-run/metrics.jsonl",
                 "train-run/loss.png",
                 "train-run/last.pt", "train-run/model.safetensors"):
        assert name in files, files
    assert not [name for name in files if name.rsplit("/", 1)[-1].startswith(".")]  # no temporary files left
    assert lines[0].startswith(f"demo: 8 held-out noisy photos ({', '.join(HELD_OUT)})")
    assert lines[-1].startswith("demo: done in ") and lines[-1].endswith(f"results in {out / 'results.json'}")
    assert results["held_out_images"] == HELD_OUT
    assert results["seconds_total"] > 0


def test_noise_autocorrelation_is_plotted_and_recorded(run, held_out):
    _code, lines, out, results = run
    record = results["noise_autocorrelation"]
    assert record["lags"] == [1, 2, 3, 4, 5, 6]
    for channel, name in enumerate(("red", "green", "blue")):
        expected = [np.mean([float(channel_autocorrelation(image.noisy - image.clean, lag)[channel])
                             for image in held_out]) for lag in record["lags"]]
        np.testing.assert_allclose(record[name], expected, rtol=1e-6)
    mean = record["mean"]
    np.testing.assert_allclose(mean, np.mean([record[c] for c in ("red", "green", "blue")], axis=0), rtol=1e-6)
    assert (f"demo: {out / 'noise_autocorrelation.png'}: the noise's autocorrelation against lag (lags 1, 2, 3: "
            f"{mean[0]:.2f}, {mean[1]:.2f}, {mean[2]:.2f}; white noise: 0)") in lines
    assert cv2.imread(str(out / "noise_autocorrelation.png")) is not None


def test_printed_table_matches_results_json(run):
    _code, lines, _out, results = run
    printed = _table(lines)
    assert list(printed) == ROWS
    assert list(results["table"]) == ROWS
    for name in ROWS:
        row = results["table"][name]
        assert printed[name] == (f"{row['psnr']:.2f}", f"{row['ssim']:.4f}"), name
        assert math.isfinite(row["psnr"]) and -1 <= row["ssim"] <= 1
    seconds = results["seconds_per_image"]
    assert list(seconds) == ["first pass of both (auto measures)", "AT-BSN, 4 holes", "student (NBSN)"]
    assert all(value > 0 for value in seconds.values())
    timing = [line for line in lines if line.startswith("time per image: ")]
    assert timing == ["time per image: " + ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())]


def test_noisy_input_row_is_what_scikit_image_says(run, held_out):
    _code, _lines, _out, results = run
    assert [image.name for image in held_out] == HELD_OUT
    psnrs, ssims = [], []
    for image in held_out:
        noisy, clean = (t.permute(1, 2, 0).double().numpy() for t in (image.noisy, image.clean))
        psnrs.append(peak_signal_noise_ratio(clean, noisy, data_range=255))
        ssims.append(structural_similarity(clean, noisy, channel_axis=2, data_range=255, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
    row = results["table"]["noisy input"]
    assert row["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-9)
    assert row["ssim"] == pytest.approx(np.mean(ssims), rel=1e-6)


def test_the_papers_orderings_hold_and_are_printed(run):
    _code, lines, _out, results = run
    psnr = {name: row["psnr"] for name, row in results["table"].items()}
    best_hole = max(psnr[f"AT-BSN hole {hole}"] for hole in (1, 3, 5, 9))
    margins = {
        "AT-BSN hole 3 beats the noisy input by >= 2 dB": (psnr["AT-BSN hole 3"] - psnr["noisy input"], 2.0),
        "AT-BSN hole 3 beats hole 1 by >= 0.2 dB (correlated noise)":
            (psnr["AT-BSN hole 3"] - psnr["AT-BSN hole 1"], 0.2),
        "AT-BSN hole 3 (train 9 / infer 3) beats the plain BSN (train 1 / infer 1)":
            (psnr["AT-BSN hole 3"] - psnr["plain BSN (hole 1)"], 1e-9),
        "student at least as good as the best hole": (psnr["student (NBSN)"] - best_hole, 0.0),
    }
    for text, (margin, needed) in margins.items():
        assert f"{text}: {'yes' if margin >= needed else 'NO'} ({margin:+.2f} dB)" in lines, (text, lines)
    failed = {text: round(margin, 3) for text, (margin, needed) in margins.items() if margin < needed}
    assert not failed, failed


def test_side_by_side_png_has_five_panels(run, held_out):
    _code, lines, out, _results = run
    assert f"demo: {out / 'side_by_side.png'}: noisy | AT-BSN hole 1 | hole 3 | student | clean" in lines
    picture = cv2.imread(str(out / "side_by_side.png"), cv2.IMREAD_UNCHANGED)
    assert picture.dtype == np.uint8 and picture.shape == (PANEL, 5 * PANEL + 4 * GAP, 3)
    rgb = picture[:, :, ::-1].astype(np.float64)
    panels = [rgb[:, k * (PANEL + GAP): k * (PANEL + GAP) + PANEL] for k in range(5)]
    for k in range(4):
        assert (rgb[:, k * (PANEL + GAP) + PANEL: (k + 1) * (PANEL + GAP)] == 255).all()  # white gaps
    image = held_out[0]
    top, left = (image.clean.shape[1] - PANEL) // 2, (image.clean.shape[2] - PANEL) // 2

    def crop(t):
        return t[:, top:top + PANEL, left:left + PANEL].clamp(0, 255).round().permute(1, 2, 0).double().numpy()

    np.testing.assert_array_equal(panels[0], crop(image.noisy))
    np.testing.assert_array_equal(panels[4], crop(image.clean))
    for k in (1, 2, 3):  # the denoised panels are neither the input nor each other
        assert not np.array_equal(panels[k], panels[0])
    assert not np.array_equal(panels[1], panels[2]) and not np.array_equal(panels[2], panels[3])


def test_short_training_run(run):
    _code, lines, out, results = run
    assert any(line.startswith("demo: training an AT-BSN from scratch for 3 steps") for line in lines)
    records = read_metrics(out / "train-run" / "metrics.jsonl")
    losses = [record for record in records if "loss" in record]
    validations = [record for record in records if "val_psnr" in record]
    assert max(record["step"] for record in records) == 3
    assert losses and losses[-1]["step"] == 3 and all(math.isfinite(record["loss"]) for record in losses)
    assert len(validations) == 1 and validations[0]["step"] == 3
    training = results["short_training"]
    assert training["steps"] == 3 and training["seconds"] > 0
    assert training["first_loss"] == losses[0]["loss"] and training["last_loss"] == losses[-1]["loss"]
    assert training["val_psnr_hole3"] == validations[0]["val_psnr"]
    plot_line = f"demo: loss {training['first_loss']:.2f} -> {training['last_loss']:.2f} in "
    assert any(line.startswith(plot_line) and line.endswith(f"plot in {out / 'train-run' / 'loss.png'}")
               for line in lines), lines
    plot = cv2.imread(str(out / "train-run" / "loss.png"))
    assert plot is not None and plot.shape[0] > 100 and plot.shape[1] > 100
    assert (plot != plot[0, 0]).any()  # something is drawn


@torch.no_grad()
def test_forward_holes_rows_equal_forward_per_hole(shipped, held_out):
    """The demo's AT-BSN outputs (one trunk pass for all holes) equal `forward(x, hole)` per hole."""
    full = held_out[0]
    # a corner of one held-out photo, of a size that is not a multiple of 32: cheap, and padded like any photo
    image = NoisyImage(full.name, full.noisy[:, :100, :140].contiguous(), full.clean[:, :100, :140].contiguous())
    args = argparse.Namespace(backend="auto", device="cpu")
    outputs, _seconds = demo._denoise_all(args, [image])
    assert list(outputs) == ROWS

    atbsn = load_denoiser(model="atbsn", device="cpu")
    student = load_denoiser(model="student", device="cpu")
    assert isinstance(atbsn.module, ATBSN) and isinstance(student.module, NBSN)
    assert atbsn.module.mid == student.module.mid
    x = image.noisy[None]
    for hole in demo.DEMO_HOLES:
        direct = atbsn.module(x, hole)[0]
        from_demo = outputs[f"AT-BSN hole {hole}"][0]
        assert from_demo.shape == (3, 100, 140)
        torch.testing.assert_close(from_demo, direct, rtol=1e-4, atol=1e-3)
        scores, direct_scores = demo._scores([from_demo], [image]), demo._scores([direct], [image])
        assert scores["psnr"] == pytest.approx(direct_scores["psnr"], abs=1e-3)
        assert scores["ssim"] == pytest.approx(direct_scores["ssim"], abs=1e-4)
    assert not torch.equal(outputs["AT-BSN hole 1"][0], outputs["AT-BSN hole 9"][0])
    torch.testing.assert_close(outputs["student (NBSN)"][0], student.module(x)[0])
    assert torch.equal(outputs["noisy input"][0], image.noisy)


def test_shipped_weights_beat_the_noisy_input_and_the_student_keeps_up(run):
    psnr = {name: row["psnr"] for name, row in run[3]["table"].items()}
    assert psnr["AT-BSN hole 3"] > psnr["noisy input"] + 1.0
    assert psnr["student (NBSN)"] >= max(psnr[f"AT-BSN hole {hole}"] for hole in (1, 3, 5, 9)) - 0.3
