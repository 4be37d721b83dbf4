"""The benchmark report: BENCHMARKS.md and PNG plots from the pytest-benchmark JSON that
``benchmarks/`` writes (``atbsn bench`` calls :func:`write_report` after every run)."""

from __future__ import annotations

from pathlib import Path

from bench_report.markdown import render
from bench_report.plots import write_plots
from bench_report.results import Entry, Run, load_run

REPORT = "BENCHMARKS.md"

__all__ = ["REPORT", "Entry", "Run", "load_run", "write_report"]


def write_report(json_path: str | Path, out_dir: str | Path, command: str | None = None) -> list[Path]:
    """Write ``BENCHMARKS.md`` and the plots for ``json_path`` into ``out_dir``; returns the paths
    written, the report first. ``command`` is the command line shown in the header (default: the
    pytest command recorded in the JSON)."""
    run = load_run(json_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(run, out_dir)
    report = out_dir / REPORT
    report.write_text(render(run, command, plots))
    return [report, *plots]
