"""`atbsn denoise`: image files or folders in, denoised images of the same format and bit depth out."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


from atbsn.data.images import SUFFIXES, list_images, read_image, write_image
from atbsn.denoiser import load_denoiser
from atbsn.errors import InputError
from atbsn.evaluation import denoise_image
from atbsn.outputs import check_output_file, check_output_folder
from atbsn.progress import progress


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


def _names_one_file(output: str) -> bool:
    """Whether `--output` names an image file (else a folder); a suffix we cannot write is an error."""
    target = Path(output)
    if target.is_dir() or output.endswith(("/", os.sep)) or not target.suffix:
        return False
    if target.suffix.lower() not in SUFFIXES:
        raise InputError(f"--output {output}: {target.suffix} is not an image format atbsn writes "
                         f"({', '.join(SUFFIXES)}); to write into a folder of that name, end it with /")
    return True


def _output_paths(files: list[Path], output: str) -> list[Path]:
    if _names_one_file(output):
        if len(files) != 1:
            raise InputError(f"--output {output} names one image file but there are {len(files)} inputs; "
                             f"give a folder instead")
        paths = [check_output_file(output, "--output")]
    else:
        folder = check_output_folder(output, "--output")
        paths = [folder / file.name for file in files]
        names = [path.name for path in paths]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InputError(f"inputs from different folders share the names {duplicates}; denoise them separately")
        for path in paths:
            if path.is_dir():
                raise InputError(f"--output {output}: {path} is a folder, so the image cannot be written there")
    for source, destination in zip(files, paths):
        if destination.resolve() == source.resolve():
            raise InputError(f"{destination} would overwrite its input; choose another --output")
    return paths


def run(args: argparse.Namespace) -> int:
    check_tiling(args)
    files = _input_files(args.inputs)
    outputs = _output_paths(files, args.output)
    denoiser = load_denoiser(args.weights, args.model, args.hole, args.backend, args.device)
    for source in progress(files, desc="checking inputs", unit="image", leave=False):
        read_image(source)  # every input is readable RGB before any output is written
    for source, destination in progress(list(zip(files, outputs)), desc=f"denoising ({denoiser.name})", unit="image"):
        image = read_image(source)
        denoised = denoise_image(denoiser, image.pixels, denoiser.device, args.tile, args.overlap)
        write_image(destination, denoised, image.bit_depth)
    print(f"denoise: {len(files)} image(s) written to {args.output}")
    return 0
