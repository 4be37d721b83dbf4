"""`atbsn denoise`: image files or folders in, denoised images of the same format and bit depth out."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from atbsn.data.images import SUFFIXES, list_images, read_image, write_image
from atbsn.denoiser import MODEL_CHOICES, load_denoiser
from atbsn.errors import InputError
from atbsn.evaluation import denoise_image


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model choice shared by denoise, eval and demo."""
    parser.add_argument("--weights", default=None,
                        help="a .safetensors, an atbsn checkpoint or an official .pth (default: the shipped weights)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default=None,
                        help="atbsn or student; picks the half of a distilled checkpoint (default: what the file "
                             "holds; the student for the shipped weights)")
    parser.add_argument("--hole", type=int, default=3, help="AT-BSN blind-spot size at inference (default 3)")
    parser.add_argument("--backend", default="auto", help="kernel backend: auto, cpu, cuda, triton, reference")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--tile", type=int, default=512,
                        help="denoise larger images in overlapping tiles of this size (default 512)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files (PNG, JPEG, TIFF; 8 or 16 bit) or folders of them")
    parser.add_argument("-o", "--output", default="denoised",
                        help="output folder (default: denoised), or an image file name for a single input")
    add_model_arguments(parser)


def check_tiling(args: argparse.Namespace) -> None:
    """--tile and --overlap, checked before any work starts."""
    if args.tile < 1:
        raise InputError(f"--tile must be >= 1, got {args.tile}")
    if not 0 <= args.overlap < args.tile:
        raise InputError(f"--overlap must be >= 0 and < --tile ({args.tile}), got {args.overlap}")


def _input_files(inputs: list[str]) -> list[Path]:
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(Path(p) for p in list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{item}: no such file or folder")
    return files


def _output_paths(files: list[Path], output: str) -> list[Path]:
    target = Path(output)
    if target.suffix.lower() in SUFFIXES:
        if len(files) != 1:
            raise InputError(f"--output {output} names one image file but there are {len(files)} inputs; "
                             f"give a folder instead")
        paths = [target]
    else:
        paths = [target / file.name for file in files]
        names = [path.name for path in paths]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InputError(f"inputs from different folders share the names {duplicates}; denoise them separately")
    for source, destination in zip(files, paths):
        if destination.resolve() == source.resolve():
            raise InputError(f"{destination} would overwrite its input; choose another --output")
    return paths


def run(args: argparse.Namespace) -> int:
    check_tiling(args)
    files = _input_files(args.inputs)
    outputs = _output_paths(files, args.output)
    denoiser = load_denoiser(args.weights, args.model, args.hole, args.backend, args.device)
    for source in tqdm(files, desc="checking inputs", unit="image", leave=False):
        read_image(source)  # every input is readable RGB before any output is written
    for source, destination in tqdm(list(zip(files, outputs)), desc=f"denoising ({denoiser.name})", unit="image"):
        image = read_image(source)
        denoised = denoise_image(denoiser, image.pixels, denoiser.device, args.tile, args.overlap)
        write_image(destination, denoised, image.bit_depth)
    print(f"denoise: {len(files)} image(s) written to {args.output}")
    return 0
