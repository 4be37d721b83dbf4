"""pytest-benchmark setup: sizes (--bench-size), the ``compare`` fixture that times every provider
of a comparison interleaved, and the run's device, CPU, versions and same-run peaks in the JSON's
``machine_info["atbsn"]``.

A comparison is one benchmark: after a warm-up call of each provider (where ``backend="auto"``
measures), every round calls each provider once, in alternating order (A B C, C B A, ...), so
slow drifts of a shared machine hit all of them alike. pytest-benchmark's own statistics are
those of whole rounds; each provider's median over the rounds, its speed-up against the
comparison's reference (reference median / median, same rounds) and its rates are stored in
``extra_info["providers"]``, which the report reads. On CUDA each call is timed with CUDA events,
on the CPU with the wall clock. ``--official-atbsn PATH`` names the official AT-BSN
``arch_atbsn.py`` (imported as it is, from outside the repository) for the model benchmarks.
"""

from __future__ import annotations

import os
import platform
import shlex
import tempfile

os.environ.setdefault("ATBSN_AUTOTUNE", "1")  # auto measures in the benchmarks ...
os.environ.setdefault("ATBSN_CACHE_DIR", tempfile.mkdtemp(prefix="atbsn-bench-cache-"))  # ... afresh, in this run

import pytest  # noqa: E402
import torch  # noqa: E402
from bench_compare import Provider, provider_records  # noqa: E402
from bench_device import call_timer, describe, device, measure_peaks  # noqa: E402

import atbsn_kernels  # noqa: E402

ROUNDS = {"cpu": {"smoke": 1, "quick": 5, "full": 9}, "cuda": {"smoke": 1, "quick": 20, "full": 50}}
WARMUP = {"cpu": 1, "cuda": 3}
PEAKS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size", choices=sorted(ROUNDS["cpu"]), default="quick",
        help="smoke: tiny shapes (CI); quick: real layer shapes, 5 rounds; full: more rounds",
    )
    parser.addoption("--official-atbsn", metavar="PATH", default=None,
                     help="the official AT-BSN codes/models/modules/arch_atbsn.py, timed as a baseline")


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
def compare(benchmark, bench_size, request):
    """``compare(group, providers, rounds_scale=1, **info)``: time the ``providers`` (name ->
    :class:`Provider`) interleaved, ``rounds_scale`` times the size's rounds (for short calls, whose
    medians need more of them), record them in the benchmark's ``extra_info`` and return their
    medians (seconds)."""

    def run(group: str, providers: dict[str, Provider], rounds_scale: int = 1, **info) -> dict[str, float]:
        if sum(p.role == "reference" for p in providers.values()) != 1:
            raise ValueError(f"{group}: a comparison needs exactly one reference provider")
        dev = device()
        benchmark.group = group
        benchmark.extra_info.update(
            level="model" if request.node.get_closest_marker("model_level") else "op", size=bench_size, device=dev,
            timer="cuda events" if dev == "cuda" else "wall clock", torch=torch.__version__,
            atbsn=atbsn_kernels.__version__, threads=torch.get_num_threads(),
            machine=f"{platform.machine()} {platform.processor() or ''}".strip(), interleaved=True, **info,
        )
        if not benchmark.disabled:
            session_peaks(request.config)
        for _ in range(WARMUP[dev]):
            for p in providers.values():
                p.run()
        timer, names = call_timer(dev), list(providers)
        times = {name: [] for name in names}

        def one_round():
            order = names if len(times[names[0]]) % 2 == 0 else names[::-1]
            for name in order:
                times[name].append(timer(providers[name].run))

        benchmark.pedantic(one_round, rounds=rounds_scale * ROUNDS[dev][bench_size], warmup_rounds=0, iterations=1)
        records = provider_records(providers, times)
        benchmark.extra_info["providers"] = records
        return {r["provider"]: r["median"] for r in records}

    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["atbsn"] = {
        **describe(), "size": config.getoption("--bench-size"), "autotune": os.environ.get("ATBSN_AUTOTUNE"),
        "command": shlex.join(["pytest", *config.invocation_params.args]), **config.stash.get(PEAKS, {}),
    }


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = [(bench.group, record) for bench in (session.benchmarks if session is not None else [])
            for record in bench.extra_info.get("providers", ())]
    if not rows:
        return
    terminalreporter.section("speed-up vs reference (same run, interleaved, median)")
    for group, r in rows:
        images = f"  {r['images_per_s']:8.2f} images/s" if r.get("images_per_s") else ""
        flops = f"  {r['flop_per_s'] / 1e9:8.1f} GFLOP/s" if r.get("flop_per_s") else ""
        choice = f"  auto: {r['auto']}" if r.get("auto") else ""
        terminalreporter.write_line(f"{group:<58} {r['provider']:<22} {r['median'] * 1e3:10.2f} ms  "
                                    f"{r['speedup_vs_reference']:6.2f}x{images}{flops}{choice}")
