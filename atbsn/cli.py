"""The ``atbsn`` command line (also ``python -m atbsn``)."""

from __future__ import annotations

import argparse
import shlex

from atbsn_kernels._version import __version__


def _cmd_info(args: argparse.Namespace) -> int:
    from atbsn.info import info_lines

    print("\n".join(info_lines()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from atbsn import bench

    if args.report_only:
        return bench.report(args.report_only, args.output, None)
    command = shlex.join(["atbsn", "bench", f"--{args.size}", *(["-k", args.select] if args.select else [])])
    return bench.run_benchmarks(args.size, args.output, args.select, command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atbsn", description="Fast asymmetric blind-spot denoising (AT-BSN).")
    parser.add_argument("--version", action="version", version=f"atbsn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="versions, and which backends run on this machine and why not the others")
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
    bench.add_argument("--report-only", metavar="JSON", default=None,
                       help="run nothing: write BENCHMARKS.md and the plots from this benchmark.json into --output")
    bench.set_defaults(run=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return args.run(args)
