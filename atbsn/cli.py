"""The ``atbsn`` command line (also ``python -m atbsn``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from atbsn import __version__
from atbsn.commands import options
from atbsn.errors import InputError, TrainingDiverged


def _cmd_info(args: argparse.Namespace) -> int:
    from atbsn.info import info_lines, tuning_lines

    print("\n".join(info_lines() + (tuning_lines() if args.tuning else [])))
    return 0


BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"  # in a source checkout


def _bench_runner():
    """``benchmarks/bench_run.py`` of the source checkout this package runs from (InputError outside one)."""
    import importlib

    folder = BENCH_DIR
    if not (folder / "bench_run.py").is_file():
        raise InputError(f"the benchmark suites come with the source checkout, not the installed package "
                         f"(no {folder}); clone the repository and install it with "
                         f"`pip install --no-build-isolation -e .`")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("bench_run")


def _cmd_bench(args: argparse.Namespace) -> int:
    bench = _bench_runner()

    if args.report_only:
        return bench.report(args.report_only, args.output, None)
    official = ["--official-atbsn", args.official_atbsn] if args.official_atbsn else []
    command = shlex.join(["atbsn", "bench", f"--{args.size}", *(["-k", args.select] if args.select else []), *official])
    return bench.run_benchmarks(args.size, args.output, args.select, command, official)


def _cmd_training(args: argparse.Namespace) -> int:
    from atbsn.commands import training

    return training.run(args.command, args)


def _add_training(commands, kind: str, text: str) -> None:
    parser = commands.add_parser(kind, help=text, description=text, epilog=options.config_help(kind))
    options.add_training_options(parser)
    parser.set_defaults(run=_cmd_training)


def _cmd_module(name: str):
    """A handler that runs `atbsn.commands.<name>.run(args)` (imported only when used)."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return importlib.import_module(f"atbsn.commands.{name}").run(args)

    return handler


def _add_command(commands, command: str, module: str, text: str) -> None:
    parser = commands.add_parser(command, help=text, description=text)
    getattr(options, f"add_{command}_options")(parser)
    parser.set_defaults(run=_cmd_module(module))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atbsn", description="Fast asymmetric blind-spot denoising (AT-BSN).")
    parser.add_argument("--version", action="version", version=f"atbsn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="versions, and which backends run on this machine and why not the others")
    info.add_argument("--tuning", action="store_true",
                      help="also list what backend='auto' chose on this machine, with the measured times")
    info.set_defaults(run=_cmd_info)
    bench = commands.add_parser(
        "bench", help="time the fast ops beside their references (pytest-benchmark); write BENCHMARKS.md and plots")
    sizes = bench.add_mutually_exclusive_group()
    for size, text in (("smoke", "tiny shapes, seconds"), ("quick", "real layer shapes, few rounds (default)"),
                       ("full", "real layer shapes, more rounds")):
        sizes.add_argument(f"--{size}", dest="size", action="store_const", const=size, help=text)
    bench.set_defaults(size="quick")
    bench.add_argument("--output", default="bench-out",
                       help="folder for benchmark.json, BENCHMARKS.md and the plots (default: bench-out)")
    bench.add_argument("-k", dest="select", default=None, help="only benchmarks matching this pytest -k expression")
    bench.add_argument("--official-atbsn", metavar="PATH", default=None,
                       help="the official AT-BSN codes/models/modules/arch_atbsn.py: time the model benchmarks "
                            "against it (imported as it is)")
    bench.add_argument("--report-only", metavar="JSON", default=None,
                       help="run nothing: write BENCHMARKS.md and the plots from this benchmark.json into --output")
    bench.set_defaults(run=_cmd_bench)
    _add_training(commands, "train", "self-supervised AT-BSN training: L1(model(noisy, hole), noisy), Adam, cosine "
                  "schedule; resumes from OUT/last.pt")
    _add_training(commands, "distill", "distil a trained AT-BSN (teacher=...) at several hole sizes into the NBSN "
                  "student; resumes from OUT/last.pt")
    _add_command(commands, "denoise", "denoise", "denoise image files or folders (PNG/JPEG/TIFF, 8/16 bit, any "
                 "size); same format out")
    _add_command(commands, "eval", "evaluate", "PSNR/SSIM on noisy/clean pairs (SIDD validation, patch folders, "
                 "folder pairs, embedded) with a per-image CSV; or DND's upload bundle, or SIDD's benchmark submission")
    _add_command(commands, "export", "export", "write a checkpoint's model as safetensors (optionally fp16)")
    _add_command(commands, "tune", "tune", "measure the backends of a model's fused ops at one input shape, ahead "
                 "of a run (backend='auto' then starts at full speed)")
    _add_command(commands, "demo", "demo", "the whole pipeline on the embedded data, no downloads: shipped weights "
                 "vs noisy input, a side-by-side PNG, then a short training run from scratch")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except InputError as error:
        print(f"atbsn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # I/O the checks before the work could not foresee (a disk filling up...)
        from atbsn.outputs import os_reason

        where = f"{error.filename}: " if error.filename else ""
        print(f"atbsn {args.command}: error: {where}{os_reason(error)}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"atbsn {args.command}: training diverged: {error}", file=sys.stderr)
        return 1
