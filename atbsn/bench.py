"""``atbsn bench``: run the pytest-benchmark suites of ``benchmarks/`` and save their JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmarks(size: str, output: str, select: str | None = None) -> int:
    """Run the suites at ``size`` (smoke/quick/full); the ratio table goes to stdout and
    ``<output>/benchmark.json`` holds every timing with its speed-up vs its reference."""
    if not BENCH_DIR.is_dir():
        print(f"atbsn bench: the benchmark suites are not installed (expected {BENCH_DIR}); "
              "run from a source checkout installed with `pip install --no-build-isolation -e .`", file=sys.stderr)
        return 2
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", str(BENCH_DIR), "-q", "-p", "no:cacheprovider", f"--bench-size={size}",
           f"--benchmark-json={out_dir / 'benchmark.json'}", "--benchmark-columns=median,iqr,rounds",
           "--benchmark-sort=name", f"--rootdir={BENCH_DIR}"]
    if select:
        cmd += ["-k", select]
    code = subprocess.call(cmd)
    if code == 0:
        print(f"atbsn bench: timings and speed-ups saved to {out_dir / 'benchmark.json'}")
    return code
