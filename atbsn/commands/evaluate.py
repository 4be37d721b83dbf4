"""`atbsn eval`: PSNR/SSIM on noisy/clean pairs (per-image CSV + summary), DND's upload bundle, or SIDD's
benchmark submission."""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from atbsn.commands.denoise import check_tiling
from atbsn.data.atomic import atomic_path
from atbsn.data.dnd import DNDImages, write_dnd_submission
from atbsn.data.embedded import NoisyImage
from atbsn.data.folders import folder_pairs
from atbsn.data.images import from_hwc
from atbsn.data.sidd import load_sidd_blocks
from atbsn.data.sidd_submission import seconds_per_megapixel_of, write_sidd_csv, write_sidd_submission
from atbsn.data.sources import read_pairs, validation_images
from atbsn.denoiser import Denoiser, load_denoiser
from atbsn.errors import InputError
from atbsn.evaluation import denoise_image, mean_scores, quantise, score_images
from atbsn.outputs import check_output_folder
from atbsn.progress import progress
from atbsn_kernels.machine import describe_cpu


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


def _machine_specs(device: torch.device) -> str:
    """What the time per megapixel was measured on, for the submission's ``OptionalData.MachineSpecs``."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (PyTorch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{describe_cpu()}, {torch.get_num_threads()} threads (PyTorch {torch.__version__})"


def _denoise_sidd_benchmark(args: argparse.Namespace, denoiser: Denoiser) -> int:
    noisy = load_sidd_blocks(args.sidd_benchmark, key=args.mat_key or "BenchmarkNoisyBlocksSrgb")
    images, blocks, height, width = noisy.shape[:4]

    def denoise(block: np.ndarray) -> torch.Tensor:
        return denoise_image(denoiser, from_hwc(block), denoiser.device, args.tile, args.overlap)

    denoise(noisy[0, 0])  # warm-up (kernel selection, compilation), not timed
    denoised = np.empty_like(noisy)
    seconds = 0.0
    for image in progress(range(images), desc="SIDD benchmark images", unit="image"):
        for block in range(blocks):
            start = time.perf_counter()
            output = denoise(noisy[image, block])  # on the CPU when it returns: the device is done
            seconds += time.perf_counter() - start
            denoised[image, block] = quantise(output).permute(1, 2, 0).to(torch.uint8).numpy()
    time_mp = seconds_per_megapixel_of(seconds, images * blocks * height * width)
    mat = write_sidd_submission(args.output, denoised, time_mp, method_name=denoiser.name,
                                machine_specs=_machine_specs(denoiser.device))
    csv_path = write_sidd_csv(args.output, denoised)
    print(f"eval: SIDD has no public clean benchmark blocks; submission of {images} x {blocks} blocks "
          f"({time_mp:.3g} s per megapixel): {csv_path} for the Kaggle benchmark, {mat} for the original "
          f"benchmark page")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.dnd and args.sidd_benchmark:
        raise InputError("--dnd and --sidd-benchmark each write one benchmark's upload; give only one of them")
    check_tiling(args)
    check_output_folder(args.output, "--output")
    denoiser = load_denoiser(args.weights, args.model, args.hole, args.backend, args.device)
    if args.sidd_benchmark:
        return _denoise_sidd_benchmark(args, denoiser)
    return _denoise_dnd(args, denoiser) if args.dnd else _evaluate_pairs(args, denoiser)
