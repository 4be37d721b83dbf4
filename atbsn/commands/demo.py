"""`atbsn demo`: the whole pipeline on the embedded data, with no downloads.

1. Held-out noisy photos (never seen in training) are denoised by the shipped AT-BSN at holes
   1, 3, 5 and 9 (all from one shared trunk pass), by the shipped student and by the plain
   hole-1 BSN baseline; a PSNR/SSIM table and the paper's orderings are printed and saved, with
   a side-by-side PNG and the noise's autocorrelation plot.
2. A short training run from scratch shows the training pipeline working, with a loss plot.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from atbsn.commands.training import train_with
from atbsn.data.atomic import atomic_path
from atbsn.data.embedded import NoisyImage, embedded_dataset
from atbsn.data.images import write_image
from atbsn.data.unprocess import channel_autocorrelation
from atbsn.denoiser import load_denoiser
from atbsn.evaluation import quantise
from atbsn.metrics import psnr, ssim
from atbsn.train.config import TrainConfig, load_config
from atbsn.outputs import check_output_folder
from atbsn.train.logs import read_metrics

DEMO_HOLES = (1, 3, 5, 9)
# A plain blind-spot network for comparison: the same AT-BSN trained and run with hole 1 (no
# asymmetry), the same recipe and steps as the shipped AT-BSN (see README, "Shipped weights").
BASELINE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "embedded_bsn1.safetensors"
BASELINE_ROW = "plain BSN (hole 1)"
HELD_OUT_REALISATIONS = 2
PANEL = 160  # side of each crop in the side-by-side PNG
# The from-scratch run: a narrow model on small crops, so it takes about a minute on 2 CPU cores.
SHORT_RUN = ("width=16", "batch=4", "crop=48", "lr=1e-3", "log_every=10", "embedded_realisations=1",
             "val_max_images=1", "resume=false", "overwrite=true")


def _scores(outputs: list[torch.Tensor], images: list[NoisyImage]) -> dict:
    """Mean PSNR/SSIM of 8-bit-quantised outputs (3, H, W) against the clean images."""
    pairs = [(quantise(out), image.clean) for out, image in zip(outputs, images)]
    return {"psnr": sum(float(psnr(o, c)) for o, c in pairs) / len(pairs),
            "ssim": sum(float(ssim(o, c)) for o, c in pairs) / len(pairs)}


@torch.no_grad()
def _denoise_all(args: argparse.Namespace, images: list[NoisyImage]) -> tuple[dict, dict]:
    """{row name: outputs per image}, {row name: seconds per image}; all holes share one trunk pass."""
    atbsn = load_denoiser(model="atbsn", backend=args.backend, device=args.device)
    student = load_denoiser(model="student", backend=args.backend, device=args.device)
    outputs = {"noisy input": [image.noisy for image in images]}
    baseline = load_denoiser(BASELINE_WEIGHTS, model="atbsn", hole=1, backend=args.backend, device=args.device)
    outputs[BASELINE_ROW] = [baseline(image.noisy[None].to(baseline.device))[0].cpu() for image in images]
    # backend="auto" measures each new layer shape on its first call: that pass is timed apart
    start = time.perf_counter()
    for image in images:
        atbsn.module.forward_holes(image.noisy[None].to(atbsn.device), DEMO_HOLES)
        student(image.noisy[None].to(student.device))
    seconds = {"first pass of both (auto measures)": (time.perf_counter() - start) / len(images)}
    start = time.perf_counter()
    per_hole = [atbsn.module.forward_holes(image.noisy[None].to(atbsn.device), DEMO_HOLES) for image in images]
    seconds["AT-BSN, 4 holes"] = (time.perf_counter() - start) / len(images)
    for index, hole in enumerate(DEMO_HOLES):
        outputs[f"AT-BSN hole {hole}"] = [holes[index][0].cpu() for holes in per_hole]
    start = time.perf_counter()
    outputs["student (NBSN)"] = [student(image.noisy[None].to(student.device))[0].cpu() for image in images]
    seconds["student (NBSN)"] = (time.perf_counter() - start) / len(images)
    return outputs, seconds


def _side_by_side(path: Path, outputs: dict, image: NoisyImage, names: list[str]) -> None:
    """Centre crops of one image: each named output, then the clean image, in a row."""
    top, left = (image.clean.shape[1] - PANEL) // 2, (image.clean.shape[2] - PANEL) // 2
    gap = torch.full((3, PANEL, 4), 255.0)
    panels = [quantise(outputs[name][0])[:, top:top + PANEL, left:left + PANEL] for name in names]
    panels.append(image.clean[:, top:top + PANEL, left:left + PANEL])
    row = torch.cat([piece for panel in panels for piece in (panel, gap)][:-1], dim=2)
    write_image(path, row)


def _checks(table: dict) -> list[str]:
    """The paper's orderings on the held-out photos (PSNR), one line each: yes or NO, with the margin."""
    psnr = {name: row["psnr"] for name, row in table.items()}
    hole3, best_hole = psnr["AT-BSN hole 3"], max(psnr[f"AT-BSN hole {hole}"] for hole in DEMO_HOLES)

    def line(text: str, margin: float, needed: float) -> str:
        return f"{text}: {'yes' if margin >= needed else 'NO'} ({margin:+.2f} dB)"

    return [line("AT-BSN hole 3 beats the noisy input by >= 2 dB", hole3 - psnr["noisy input"], 2.0),
            line("AT-BSN hole 3 beats hole 1 by >= 0.2 dB (correlated noise)", hole3 - psnr["AT-BSN hole 1"], 0.2),
            line("AT-BSN hole 3 (train 9 / infer 3) beats the plain BSN (train 1 / infer 1)",
                 hole3 - psnr[BASELINE_ROW], 1e-9),
            line("student at least as good as the best hole", psnr["student (NBSN)"] - best_hole, 0.0)]


NOISE_LAGS = tuple(range(1, 7))


def _noise_correlation(images: list[NoisyImage], png_path: Path) -> dict:
    """Plot the autocorrelation of the held-out noise (noisy - clean) against lag; return it per channel
    and averaged (`mean`), one value per lag of `NOISE_LAGS`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_lag = torch.stack([torch.stack([channel_autocorrelation(image.noisy - image.clean, lag) for lag in NOISE_LAGS])
                           for image in images]).mean(dim=0)  # (lags, channels)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for channel, (name, colour) in enumerate((("red", "tab:red"), ("green", "tab:green"), ("blue", "tab:blue"))):
        axes.plot(NOISE_LAGS, per_lag[:, channel].tolist(), marker="o", color=colour, label=name)
    axes.axhline(0.0, color="grey", linestyle="--", linewidth=1, label="white noise")
    axes.set_xlabel("lag (pixels)")
    axes.set_ylabel("autocorrelation")
    axes.set_title("embedded noise of the held-out photos (noisy - clean)")
    axes.legend()
    figure.tight_layout()
    with atomic_path(png_path) as temporary:
        figure.savefig(temporary)
    plt.close(figure)
    channels = {name: per_lag[:, c].tolist() for c, name in enumerate(("red", "green", "blue"))}
    return {"lags": list(NOISE_LAGS), **channels, "mean": per_lag.mean(dim=1).tolist()}


def _plot_loss(metrics_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(metrics_path) if "loss" in r]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([r["step"] for r in records], [r["loss"] for r in records], marker=".")
    axes.set_xlabel("step")
    axes.set_ylabel("L1 loss (0-255 scale)")
    axes.set_title("from-scratch AT-BSN training on the embedded data")
    figure.tight_layout()
    with atomic_path(png_path) as temporary:
        figure.savefig(temporary)
    plt.close(figure)


def _short_training(args: argparse.Namespace, out: Path) -> dict:
    steps = args.train_steps
    overrides = [f"out={out}", f"steps={steps}", f"val_every={steps}", f"checkpoint_every={steps}",
                 f"device={args.device}", f"backend={args.backend}", *SHORT_RUN]
    config = load_config(TrainConfig, None, overrides)
    start = time.perf_counter()
    train_with("train", config)
    seconds = time.perf_counter() - start
    _plot_loss(out / "metrics.jsonl", out / "loss.png")
    records = read_metrics(out / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    return {"steps": steps, "seconds": seconds, "first_loss": losses[0], "last_loss": losses[-1],
            "val_psnr_hole3": [r["val_psnr"] for r in records if "val_psnr" in r][-1]}


def _print_table(table: dict, seconds: dict) -> list[str]:
    lines = [f"{'':22}{'PSNR (dB)':>10}{'SSIM':>8}"]
    lines += [f"{name:22}{row['psnr']:10.2f}{row['ssim']:8.4f}" for name, row in table.items()]
    lines += ["time per image: " + ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())]
    return lines


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.output, "--output")
    started = time.perf_counter()
    images = embedded_dataset("held_out", HELD_OUT_REALISATIONS)
    print(f"demo: {len(images)} held-out noisy photos ({', '.join(image.name for image in images)}), "
          f"phone camera noise (raw noise, demosaic, noise reduction, sharpening, JPEG); shipped weights")
    outputs, seconds = _denoise_all(args, images)
    table = {name: _scores(values, images) for name, values in outputs.items()}
    lines = _print_table(table, seconds) + _checks(table)
    print("\n".join(lines))
    _side_by_side(out / "side_by_side.png", outputs, images[0],
                  ["noisy input", "AT-BSN hole 1", "AT-BSN hole 3", "student (NBSN)"])
    print(f"demo: {out / 'side_by_side.png'}: noisy | AT-BSN hole 1 | hole 3 | student | clean")
    results = {"held_out_images": [image.name for image in images], "table": table, "seconds_per_image": seconds,
               "noise_autocorrelation": _noise_correlation(images, out / "noise_autocorrelation.png")}
    mean = results["noise_autocorrelation"]["mean"]
    print(f"demo: {out / 'noise_autocorrelation.png'}: the noise's autocorrelation against lag "
          f"(lags 1, 2, 3: {mean[0]:.2f}, {mean[1]:.2f}, {mean[2]:.2f}; white noise: 0)")
    if args.train_steps > 0:
        print(f"demo: training an AT-BSN from scratch for {args.train_steps} steps (far too few to converge; "
              f"it shows the pipeline runs)")
        results["short_training"] = _short_training(args, out / "train-run")
        short = results["short_training"]
        print(f"demo: loss {short['first_loss']:.2f} -> {short['last_loss']:.2f} in {short['seconds']:.0f} s; "
              f"plot in {out / 'train-run' / 'loss.png'}")
    results["seconds_total"] = time.perf_counter() - started
    with atomic_path(out / "results.json") as temporary, open(temporary, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"demo: done in {results['seconds_total']:.0f} s; results in {out / 'results.json'}")
    return 0
