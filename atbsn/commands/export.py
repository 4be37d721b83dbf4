"""`atbsn export`: a checkpoint's model (or one half of a distilled one) as a safetensors file."""

from __future__ import annotations

import argparse

from atbsn.denoiser import MODEL_CHOICES, load_denoiser
from atbsn.models.weights import save_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run checkpoint (last.pt, best.pt), an official .pth or a .safetensors")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--model", choices=MODEL_CHOICES, default=None,
                        help="which half of a distilled checkpoint (default: the student)")
    parser.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")


def run(args: argparse.Namespace) -> int:
    denoiser = load_denoiser(args.checkpoint, args.model, device="cpu")
    save_weights(denoiser.module, args.output, half=args.half)
    print(f"export: {type(denoiser.module).__name__} (width {denoiser.module.mid}) written to {args.output}")
    return 0
