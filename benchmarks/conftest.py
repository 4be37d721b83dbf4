"""pytest-benchmark setup: sizes (--bench-size), providers timed beside their reference in one
group, and a ratio table (reference median / provider median) printed and saved in the JSON."""

from __future__ import annotations

import platform
from collections import defaultdict

import pytest
import torch

import atbsn_kernels

ROUNDS = {"smoke": 1, "quick": 3, "full": 7}


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size", choices=sorted(ROUNDS), default="quick",
        help="smoke: tiny shapes (CI); quick: real layer shapes, few rounds; full: more rounds",
    )


@pytest.fixture(scope="session")
def bench_size(request) -> str:
    return request.config.getoption("--bench-size")


@pytest.fixture
def timed(benchmark, bench_size):
    """``timed(fn, provider, reference=False)``: time ``fn`` in the test's group."""

    def run(fn, provider: str, reference: bool = False):
        benchmark.extra_info.update(
            provider=provider, role="reference" if reference else "fast", size=bench_size,
            torch=torch.__version__, atbsn=atbsn_kernels.__version__, threads=torch.get_num_threads(),
            machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        )
        return benchmark.pedantic(fn, rounds=ROUNDS[bench_size], warmup_rounds=1, iterations=1)

    return run


def ratio_rows(benchmarks) -> list[tuple[str, str, float, float]]:
    """(group, provider, median seconds, speed-up vs the group's reference) per timed provider."""
    by_group = defaultdict(list)
    for bench in benchmarks:
        if bench.stats and bench.stats.rounds:
            by_group[bench.group].append(bench)
    rows = []
    for group, members in sorted(by_group.items()):
        refs = [b for b in members if b.extra_info.get("role") == "reference"]
        base = refs[0].stats.median if refs else float("nan")
        for b in members:
            rows.append((group, b.extra_info.get("provider", b.name), b.stats.median, base / b.stats.median))
    return rows


def pytest_benchmark_update_json(config, benchmarks, output_json):
    ratios = {(g, p): r for g, p, _, r in ratio_rows(benchmarks)}
    for entry in output_json["benchmarks"]:
        entry["extra_info"]["speedup_vs_reference"] = ratios.get((entry["group"], entry["extra_info"].get("provider")))


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = ratio_rows(session.benchmarks) if session is not None else []
    if not rows:
        return
    terminalreporter.section("speed-up vs reference (same run, median)")
    for group, provider, median, ratio in rows:
        terminalreporter.write_line(f"{group:<58} {provider:<22} {median * 1e3:10.2f} ms  {ratio:6.2f}x")
