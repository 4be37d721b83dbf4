"""Every command's options, and nothing else: this module imports only argparse (and the light
run configs), so that ``atbsn --help``, ``--version`` and ``atbsn <command> --help`` start without
torch. The work lives in ``atbsn.commands.<command>``, imported when the command runs."""

from __future__ import annotations

import argparse
import dataclasses

MODEL_CHOICES = ("atbsn", "student")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
TUNE_MODELS = ("atbsn", "nbsn", "dbsn")
BACKEND_HELP = "kernel backend: auto, reference, vendor, cpu, cuda, triton (default: auto)"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model choice shared by denoise, eval and demo."""
    parser.add_argument("--weights", default=None,
                        help="a .safetensors, an atbsn checkpoint or an official .pth (default: the shipped weights)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default=None,
                        help="atbsn or student; picks the half of a distilled checkpoint (default: what the file "
                             "holds; the student for the shipped weights)")
    parser.add_argument("--hole", type=int, default=3, help="AT-BSN blind-spot size at inference (default 3)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--tile", type=int, default=512,
                        help="denoise larger images in overlapping tiles of this size (default 512)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")


def add_denoise_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files (PNG, JPEG, TIFF; 8 or 16 bit) or folders of them")
    parser.add_argument("-o", "--output", default="denoised",
                        help="output folder (default: denoised), or an image file name (.png, .jpg, .jpeg, .tif, "
                             ".tiff) for a single input; a name ending in / is always a folder")
    add_model_options(parser)


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="embedded",
                        help="embedded (held-out photos), SIDD's ValidationNoisyBlocksSrgb.mat (or its folder), "
                             "a patch root with Noisy/valid and GT/valid, a SIDD Medium folder, or a folder of "
                             "noisy images with --clean")
    parser.add_argument("--clean", default=None, help="folder of clean images named as in --data")
    parser.add_argument("--mat-key", default=None, metavar="KEY",
                        help="the key of the blocks in a SIDD .mat --data (default: the file's one known key) "
                             "or --sidd-benchmark (default: BenchmarkNoisyBlocksSrgb)")
    parser.add_argument("--dnd", default=None, metavar="ROOT",
                        help="DND root (info.mat, images_srgb/): denoise it and write the upload bundle")
    parser.add_argument("--sidd-benchmark", default=None, metavar="MAT",
                        help="SIDD's BenchmarkNoisyBlocksSrgb.mat: denoise its blocks and write SubmitSrgb.mat "
                             "for SIDD's benchmark site (not with --dnd)")
    parser.add_argument("-o", "--output", default="eval-out", help="folder for eval.csv and summary.json "
                        "(or DND's bundled/*.mat, or SIDD's SubmitSrgb.mat)")
    add_model_options(parser)


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run checkpoint (last.pt, best.pt), an official .pth or a .safetensors")
    parser.add_argument("output", help="the .safetensors file to write (the only format export writes)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default=None,
                        help="which half of a distilled checkpoint (default: the student)")
    parser.add_argument("--half", action="store_true", help="store fp16 weights (half the size)")


def _shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--shape must be N,C,H,W (four positive ints), got {text!r}")
    return shape


def add_tune_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=TUNE_MODELS, help="the network to tune")
    parser.add_argument("--shape", type=_shape, required=True, metavar="N,C,H,W",
                        help="the input shape of the run (a training batch, or 1,3,H,W for denoising)")
    parser.add_argument("--mid", type=int, default=None, help="network width (default: the official one)")
    parser.add_argument("--inference", action="store_true", help="forward only (denoising), no gradients")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="demo-out", help="folder for the table, PNGs and the training run")
    parser.add_argument("--train-steps", type=int, default=400,
                        help="steps of the from-scratch training run (default 400; 0 skips it)")
    parser.add_argument("--backend", default="auto", help=BACKEND_HELP)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", default=None, help="a YAML file of config keys")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, applied after --config")


def config_help(kind: str) -> str:
    """The config keys of `kind` ("train" or "distill") and their defaults, for `--help`."""
    from atbsn.train.config import CONFIGS

    defaults = dataclasses.asdict(CONFIGS[kind]())
    return "config keys (defaults): " + ", ".join(f"{key}={value}" for key, value in defaults.items())
