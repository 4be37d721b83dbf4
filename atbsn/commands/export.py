"""`atbsn export`: a checkpoint's model (or one half of a distilled one) as a safetensors file."""

from __future__ import annotations

import argparse

from atbsn.denoiser import load_denoiser
from atbsn.models.weights import save_weights
from atbsn.outputs import check_output_file


def run(args: argparse.Namespace) -> int:
    check_output_file(args.output, "output", suffixes=(".safetensors",))
    denoiser = load_denoiser(args.checkpoint, args.model, device="cpu")
    save_weights(denoiser.module, args.output, half=args.half)
    print(f"export: {type(denoiser.module).__name__} (width {denoiser.module.mid}) written to {args.output}")
    return 0
