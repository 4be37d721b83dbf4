"""Run the pytest-benchmark suites of this folder, save their JSON and write the report
(BENCHMARKS.md and plots) beside it: what ``atbsn bench`` runs from a source checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench_report import write_report

BENCH_DIR = Path(__file__).resolve().parent
JSON_NAME = "benchmark.json"


def report(json_path: str | Path, output: str, command: str | None) -> int:
    """Write BENCHMARKS.md and the plots for ``json_path`` into ``output``; 2 on a bad JSON file."""
    try:
        written = write_report(json_path, output, command)
    except (OSError, ValueError) as err:
        print(f"atbsn bench: cannot write the report: {err}", file=sys.stderr)
        return 2
    print(f"atbsn bench: report written to {written[0]}" + (f" with {len(written) - 1} plots" if written[1:] else ""))
    return 0


def run_benchmarks(size: str, output: str, select: str | None = None, command: str | None = None,
                   extra: list[str] = ()) -> int:
    """Run the suites at ``size`` (smoke/quick/full); the ratio table goes to stdout,
    ``<output>/benchmark.json`` holds every timing with its speed-up vs its reference, and
    ``<output>/BENCHMARKS.md`` and the plots are written from it (``command`` is named in its
    header), also after failures, from what ran; ``extra`` are more pytest options. Returns pytest's
    exit code, or the report's if pytest passed."""
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / JSON_NAME
    json_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", str(BENCH_DIR), "-q", "-p", "no:cacheprovider", f"--bench-size={size}",
           f"--benchmark-json={json_path}", "--benchmark-columns=median,iqr,rounds",
           "--benchmark-sort=name", f"--rootdir={BENCH_DIR}"]
    if select:
        cmd += ["-k", select]
    cmd += list(extra)
    code = subprocess.call(cmd)
    if not json_path.is_file():
        print(f"atbsn bench: pytest wrote no {json_path}, so there is no report", file=sys.stderr)
        return code or 2
    print(f"atbsn bench: timings and speed-ups saved to {json_path}")
    report_code = report(json_path, output, command)
    return code or report_code
