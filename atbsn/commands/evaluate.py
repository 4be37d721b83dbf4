"""`atbsn eval`: PSNR/SSIM on noisy/clean pairs (per-image CSV + summary), or DND's upload bundle."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


from atbsn.commands.denoise import check_tiling
from atbsn.data.atomic import atomic_path
from atbsn.data.dnd import DNDImages, write_dnd_submission
from atbsn.data.embedded import NoisyImage
from atbsn.data.folders import folder_pairs
from atbsn.data.sources import read_pairs, validation_images
from atbsn.denoiser import Denoiser, load_denoiser
from atbsn.errors import InputError
from atbsn.evaluation import denoise_image, mean_scores, quantise, score_images
from atbsn.outputs import check_output_folder
from atbsn.progress import progress


def _pairs(args: argparse.Namespace) -> list[NoisyImage]:
    if args.clean is not None:
        return read_pairs(folder_pairs(args.data, args.clean))
    images = validation_images(args.data, mat_key=args.mat_key)
    missing = [image.name for image in images if image.clean is None]
    if missing:
        raise InputError(f"{args.data}: no clean images to compare with (e.g. for {missing[0]}); "
                         f"give --clean FOLDER, or use `atbsn denoise`")
    return images


def _write_scores(output: Path, rows: list[dict], summary: dict) -> None:
    with atomic_path(output / "eval.csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(output / "summary.json") as temporary, open(temporary, "w") as handle:
        json.dump(summary, handle, indent=2)


def _evaluate_pairs(args: argparse.Namespace, denoiser: Denoiser) -> int:
    images = _pairs(args)
    rows = score_images(denoiser, images, denoiser.device, True, args.tile, args.overlap)
    summary = {"model": denoiser.name, "data": args.data, "images": len(rows), **mean_scores(rows)}
    _write_scores(Path(args.output), rows, summary)
    print(f"{'':24}{'PSNR':>8}{'SSIM':>8}")
    print(f"{'noisy input':24}{summary['noisy_psnr']:8.2f}{summary['noisy_ssim']:8.4f}")
    print(f"{denoiser.name:24}{summary['psnr']:8.2f}{summary['ssim']:8.4f}")
    print(f"eval: {len(rows)} images; per-image scores in {Path(args.output) / 'eval.csv'}")
    return 0


def _denoise_dnd(args: argparse.Namespace, denoiser: Denoiser) -> int:
    dataset = DNDImages(args.dnd)
    denoised = []
    for image_index in progress(range(len(dataset)), desc="DND images", unit="image"):
        crops = []
        for crop in dataset.crops(image_index):
            crops.append(quantise(denoise_image(denoiser, crop.pixels, denoiser.device, args.tile, args.overlap)))
        denoised.append(crops)
    paths = write_dnd_submission(args.output, denoised)
    print(f"eval: DND has no public clean images; upload bundle of {len(paths)} files in "
          f"{Path(args.output) / 'bundled'}")
    return 0


def run(args: argparse.Namespace) -> int:
    check_tiling(args)
    check_output_folder(args.output, "--output")
    denoiser = load_denoiser(args.weights, args.model, args.hole, args.backend, args.device)
    return _denoise_dnd(args, denoiser) if args.dnd else _evaluate_pairs(args, denoiser)
