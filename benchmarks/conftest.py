"""pytest-benchmark setup: sizes (--bench-size), providers timed beside their reference in one
group, rates and a ratio table (reference median / provider median) printed and saved in the
JSON, and the run's device, versions and same-run peaks in its ``machine_info["atbsn"]``.

On CUDA every call is timed with CUDA events after warm-up; on the CPU with the wall clock.
Benchmarks of whole models carry the ``model_level`` marker (the report charts them apart).
"""

from __future__ import annotations

import platform
import shlex
from collections import defaultdict

import pytest
import torch
from bench_device import describe, device, measure_peaks, use_cuda_events

import atbsn_kernels

ROUNDS = {"cpu": {"smoke": 1, "quick": 3, "full": 7}, "cuda": {"smoke": 1, "quick": 20, "full": 50}}
WARMUP = {"cpu": 1, "cuda": 3}
# per-call quantity in extra_info -> its rate, saved beside it in the JSON
RATES = {"images": "images_per_s", "flops": "flop_per_s", "bytes": "bytes_per_s"}
PEAKS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size", choices=sorted(ROUNDS["cpu"]), default="quick",
        help="smoke: tiny shapes (CI); quick: real layer shapes, few rounds; full: more rounds",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "model_level: a benchmark of a whole model (training step, inference)")


@pytest.fixture(scope="session")
def bench_size(request) -> str:
    return request.config.getoption("--bench-size")


def session_peaks(config) -> dict:
    """Same-run GEMM and copy peaks, measured once before the first timing (not at smoke size,
    whose timings mean nothing)."""
    if PEAKS not in config.stash:
        measure = config.getoption("--bench-size") != "smoke"
        config.stash[PEAKS] = measure_peaks(device()) if measure else {}
    return config.stash[PEAKS]


@pytest.fixture
def timed(benchmark, bench_size, request):
    """``timed(fn, provider, reference=False, floor=False)``: time ``fn`` in the test's group, as
    its reference (speed-ups are relative to it), as a floor (a bound such as the unmasked dense
    conv, shown but not counted as a fast path) or as a fast path."""

    def run(fn, provider: str, reference: bool = False, floor: bool = False):
        dev = device()
        benchmark.extra_info.update(
            provider=provider, role="reference" if reference else "floor" if floor else "fast", size=bench_size,
            level="model" if request.node.get_closest_marker("model_level") else "op",
            device=dev, timer="cuda events" if dev == "cuda" else "wall clock",
            torch=torch.__version__, atbsn=atbsn_kernels.__version__, threads=torch.get_num_threads(),
            machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        )
        if not benchmark.disabled:
            session_peaks(request.config)
            if dev == "cuda":
                use_cuda_events(benchmark)
        return benchmark.pedantic(fn, rounds=ROUNDS[dev][bench_size], warmup_rounds=WARMUP[dev], iterations=1)

    return run


def ratio_rows(benchmarks) -> list[tuple[str, str, float, float, dict]]:
    """(group, provider, median seconds, speed-up vs the group's reference, rates) per timed
    provider; rates maps ``images_per_s``/``flop_per_s``/``bytes_per_s`` for the per-call
    ``images``/``flops``/``bytes`` that the benchmark put in its extra_info."""
    by_group = defaultdict(list)
    for bench in benchmarks:
        if bench.stats and bench.stats.rounds:
            by_group[bench.group].append(bench)
    rows = []
    for group, members in sorted(by_group.items()):
        refs = [b for b in members if b.extra_info.get("role") == "reference"]
        base = refs[0].stats.median if refs else float("nan")
        for b in members:
            median = b.stats.median
            rates = {rate: b.extra_info[key] / median for key, rate in RATES.items() if b.extra_info.get(key)}
            rows.append((group, b.extra_info.get("provider", b.name), median, base / median, rates))
    return rows


def pytest_benchmark_update_json(config, benchmarks, output_json):
    rows = {(g, p): (r, rates) for g, p, _, r, rates in ratio_rows(benchmarks)}
    for entry in output_json["benchmarks"]:
        ratio, rates = rows.get((entry["group"], entry["extra_info"].get("provider")), (None, {}))
        entry["extra_info"]["speedup_vs_reference"] = ratio
        entry["extra_info"].update(rates)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["atbsn"] = {
        **describe(), "size": config.getoption("--bench-size"),
        "command": shlex.join(["pytest", *config.invocation_params.args]), **config.stash.get(PEAKS, {}),
    }


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = ratio_rows(session.benchmarks) if session is not None else []
    if not rows:
        return
    terminalreporter.section("speed-up vs reference (same run, median)")
    for group, provider, median, ratio, rates in rows:
        images = f"  {rates['images_per_s']:8.2f} images/s" if "images_per_s" in rates else ""
        flops = f"  {rates['flop_per_s'] / 1e9:8.1f} GFLOP/s" if "flop_per_s" in rates else ""
        terminalreporter.write_line(f"{group:<58} {provider:<22} {median * 1e3:10.2f} ms  {ratio:6.2f}x{images}{flops}")
