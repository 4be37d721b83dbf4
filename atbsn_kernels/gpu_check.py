"""Check the GPU side of atbsn on a CUDA machine in one command (under 8 minutes with --quick):
``python -m atbsn_kernels.gpu_check [--out DIR] [--quick] [--no-build] [--dry-run]``.

Steps, each timed and recorded; a failed step makes the exit status 1 and the others still run:

  environment  torch, Triton, CUDA and cuDNN versions, the GPU (name, compute capability, SMs),
               Python, the test and benchmark packages, nvcc and cuobjdump
  build        python setup.py build_ext --inplace in the checkout, with the CUDA sources for this
               GPU (TORCH_CUDA_ARCH_LIST = its compute capability, MAX_JOBS = min(16, cores),
               unless set); then the built extension must hold the CUDA kernels (build.log)
  tests        pytest tests -m gpu: every test that runs a CUDA tensor or the Triton kernels
               (tests/gpu_marks.py marks them), compiled, not interpreted (tests.log)
  determinism  the weight gradient of a 3x3 blind-1 conv (fp32, 2x48x64x64) twice per GPU backend
               (triton, cuda): bitwise equal or not
  sass         cuobjdump of the built extension and of our Triton kernels' cubins in the Triton
               cache: HMMA/HGMMA (tensor cores), LDGSTS, LDG per kernel, registers, stack and
               spills (sass.log)
  benchmarks   the pytest-benchmark suites at --bench-size=quick (--quick: the AT-BSN, AP-BSN and
               LG-BPN layers, the ATBSN training step and seven-hole inference), then BENCHMARKS.md
               with the report code of benchmarks/bench_report (bench.log, benchmark.json)

Every subprocess has a time limit (the *_TIMEOUT_S constants), cut to what is left of the whole
run's budget (8 minutes with --quick); a step that runs past it fails, nothing hangs. The report
is at most 8 files in --out: gpu_check.json, GPU_CHECK.md, the logs, benchmark.json and
BENCHMARKS.md. --dry-run checks the plumbing on any machine, GPU or not: the environment, the
test selection (pytest --collect-only -m gpu) and the report; the other steps are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import torch

from atbsn_kernels import _ext, available_backends, blind_spot_conv2d
from atbsn_kernels.gpu_check_report import (JSON_NAME, MARKDOWN_KEY, MARKDOWN_NAME, CheckError, Record,
                                            benchmark_report, count_sass, ended, exit_code, outcome_line, parse_junit,
                                            parse_resource_usage, sass_summary, step_line, triton_cache, triton_cubins,
                                            triton_metadata, write_report)

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
BENCH_DIR = REPO_ROOT / "benchmarks"
BUILD_TIMEOUT_S = 240
TESTS_TIMEOUT_S = 150
DETERMINISM_TIMEOUT_S = 90
CHECK_TIMEOUT_S = 60  # loading the built extension
CUOBJDUMP_TIMEOUT_S = 60
BENCH_TIMEOUT_S = {"quick": 150, "full": 900}
BUDGET_S = {"quick": 470, "full": 1500}  # the whole run, reporting included
REPORT_RESERVE_S = 10  # kept back from every limit for the report
OUTPUT_FILES = (JSON_NAME, MARKDOWN_NAME, "build.log", "tests.log", "sass.log", "bench.log", "benchmark.json",
                "BENCHMARKS.md")
# pytest arguments of the benchmark step
BENCHMARKS = {
    "quick": ["benchmarks/test_bench_blind_spot_conv2d.py", "benchmarks/test_bench_directions.py",
              "benchmarks/test_bench_models.py",
              "-k", "AT-BSN or AP-BSN or LG-BPN or test_atbsn_train_step or test_atbsn_seven_hole_inference"],
    "full": ["benchmarks"],
}
REQUIRED_MODULES = ("triton", "pytest", "pytest_benchmark", "matplotlib")
NO_CUDA = ("gpu_check: no CUDA device (torch.cuda.is_available() is False); "
           "use --dry-run to check the plumbing")
# python -c code whose result is the JSON after RESULT_PREFIX on its last such output line
RESULT_PREFIX = "gpu_check result: "
DETERMINISM_CODE = (f"import json; from atbsn_kernels.gpu_check import determinism; "
                    f"print({RESULT_PREFIX!r} + json.dumps(determinism()))")
EXTENSION_CODE = (f"import json; from atbsn_kernels import _ext; "
                  f"print({RESULT_PREFIX!r} + json.dumps([_ext.cuda_kernels_built(), _ext.LOAD_ERROR]))")


class Skipped(Exception):
    """A step did not run, for the reason in the message."""


@dataclass
class Outcome:
    ok: bool
    summary: str
    details: dict = field(default_factory=dict)


class Budget:
    """What is left of the run's time: each subprocess's limit is cut to it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def limit(self, seconds: float) -> float:
        """``seconds``, or less where less is left (CheckError when nothing is)."""
        left = self.deadline - time.monotonic() - REPORT_RESERVE_S
        if left < 1:
            raise CheckError(f"not run: the run's budget of {self.seconds:.0f} s is spent")
        return min(seconds, left)


@dataclass
class Context:
    out: Path
    dry_run: bool
    quick: bool
    build: bool
    budget: Budget
    command: str
    records: dict[str, Record] = field(default_factory=dict)


def run(cmd: list[str], limit: float, env: dict | None = None) -> tuple[int | None, str]:
    """Run ``cmd`` in the checkout, stdout and stderr together: (exit status, or None when it ran
    past ``limit`` seconds and was killed with its children; its output)."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        return None, output + f"\ngpu_check: killed after {limit:.0f} s (time limit)\n"
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, output


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def write_log(ctx: Context, name: str, cmd: list[str], output: str) -> None:
    (ctx.out / name).write_text(f"$ {shlex.join(cmd)}\n{output}")


def child_env(**defaults: str) -> dict:
    """This process's environment without TRITON_INTERPRET (kernels are compiled), plus ``defaults``
    where not set."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return {**defaults, **env}


def python_result(code: str, limit: float):
    """The result ``python -c code`` printed as JSON after :data:`RESULT_PREFIX` (CheckError if it failed)."""
    status, output = run([sys.executable, "-c", code], limit, child_env())
    results = [line[len(RESULT_PREFIX):] for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if status != 0 or not results:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise CheckError(f"a python subprocess gave no result ({ended(status, limit)}): {tail}")
    return json.loads(results[-1])


def find_tool(name: str) -> str | None:
    """A CUDA tool: on PATH, in CUDA_HOME/bin or /usr/local/cuda/bin, or the copy Triton ships."""
    folders = [Path(f) / "bin" for f in (os.environ.get("CUDA_HOME"), "/usr/local/cuda") if f]
    triton = importlib.util.find_spec("triton")
    if triton is not None and triton.origin:
        folders.append(Path(triton.origin).parent / "backends" / "nvidia" / "bin")
    candidates = [folder / name for folder in folders]
    return shutil.which(name) or next((str(c) for c in candidates if c.is_file()), None)


def module_version(name: str) -> str | None:
    try:
        return getattr(__import__(name), "__version__", "?")
    except ImportError:
        return None


def gpu_details() -> dict:
    if not torch.cuda.is_available():
        return {"gpu": "none (torch.cuda.is_available() is False)"}
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1), "gpus": torch.cuda.device_count()}


def step_environment(ctx: Context) -> Outcome:
    versions = {name: module_version(name) for name in REQUIRED_MODULES}
    gpu = gpu_details()
    details = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
               "cudnn": torch.backends.cudnn.version(), **gpu, **versions, "cpus": os.cpu_count(),
               **{tool: find_tool(tool) for tool in ("nvcc", "cuobjdump")}, "ninja": shutil.which("ninja"),
               "extension before the build": _ext.LOAD_ERROR or f"loaded, CUDA kernels: {_ext.cuda_kernels_built()}"}
    missing = [name for name, version in versions.items() if version is None]
    device = f"{gpu['gpu']} ({gpu['capability']}, {gpu['sms']} SMs)" if "capability" in gpu else "no GPU"
    summary = (f"{device}; torch {torch.__version__} (CUDA {torch.version.cuda}), triton {versions['triton']}, "
               f"python {details['python']}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    return Outcome(not missing, summary, details)


def extension_path() -> Path | None:
    """The built ``atbsn_kernels/_C`` of this interpreter, if there is one."""
    return next((p for p in (PACKAGE_DIR / f"_C{s}" for s in EXTENSION_SUFFIXES) if p.is_file()), None)


def step_build(ctx: Context) -> Outcome:
    if not ctx.build:
        raise Skipped("skipped (--no-build)")
    if not (REPO_ROOT / "setup.py").is_file():
        raise CheckError(f"gpu_check needs a checkout: no setup.py in {REPO_ROOT}")
    major, minor = torch.cuda.get_device_capability()
    env = child_env(TORCH_CUDA_ARCH_LIST=f"{major}.{minor}", MAX_JOBS=str(min(16, os.cpu_count() or 1)))
    cmd, limit = [sys.executable, "setup.py", "build_ext", "--inplace"], ctx.budget.limit(BUILD_TIMEOUT_S)
    code, output = run(cmd, limit, env)
    write_log(ctx, "build.log", cmd, output)
    details = {"command": shlex.join(cmd), "TORCH_CUDA_ARCH_LIST": env["TORCH_CUDA_ARCH_LIST"],
               "MAX_JOBS": env["MAX_JOBS"], "extension": str(extension_path())}
    if code != 0:
        errors = [line for line in output.splitlines() if "error" in line.lower()] or ["(no error line)"]
        return Outcome(False, f"setup.py failed ({ended(code, limit)}; see build.log): {errors[-1].strip()}", details)
    cuda_built, load_error = python_result(EXTENSION_CODE, ctx.budget.limit(CHECK_TIMEOUT_S))
    if not cuda_built:  # setup.py's own line says why it left the CUDA sources out
        why = next((line.strip() for line in output.splitlines() if line.strip().startswith("CUDA sources")), "")
        return Outcome(False, f"the built extension has no CUDA kernels: {load_error or why}", details)
    return Outcome(True, f"built for sm_{major}{minor} in the checkout, with the CUDA kernels", details)


def pytest_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "tests", "-m", "gpu", "-q", "-p", "no:cacheprovider", *options]


def collect_gpu_tests(ctx: Context) -> Outcome:
    """The dry run's test step: how many tests ``-m gpu`` selects."""
    cmd, limit = pytest_command("--collect-only"), ctx.budget.limit(TESTS_TIMEOUT_S)
    code, output = run(cmd, limit, child_env())
    write_log(ctx, "tests.log", cmd, output)
    selected = sum("::" in line for line in output.splitlines())
    details = {"command": shlex.join(cmd), "selected": selected}
    if code != 0 or not selected:
        hint = "; does tests/conftest.py load tests/gpu_marks.py?" if code == 5 else ""
        return Outcome(False, f"pytest --collect-only -m gpu: {selected} selected, {ended(code, limit)}{hint}", details)
    return Outcome(True, f"{selected} tests selected by -m gpu (collected only)", details)


def step_tests(ctx: Context) -> Outcome:
    if ctx.dry_run:
        return collect_gpu_tests(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd, limit = pytest_command(f"--junitxml={junit}"), ctx.budget.limit(TESTS_TIMEOUT_S)
        code, output = run(cmd, limit, child_env())
        write_log(ctx, "tests.log", cmd, output)
        if not junit.is_file():
            return Outcome(False, f"pytest -m gpu wrote no junit XML ({ended(code, limit)}; see tests.log)",
                           {"command": shlex.join(cmd)})
        counts = parse_junit(junit)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "errors", "skipped"))
    return Outcome(code == 0, f"{summary} ({ended(code, limit)})", {"command": shlex.join(cmd), **counts})


def weight_grad_twice(backend: str, device: str) -> dict:
    """The weight gradient of one 3x3 blind-1 conv (fp32, 2x48x64x64, random output gradient),
    computed twice on ``backend``: bitwise equal or not, and the largest difference."""
    gen = torch.Generator().manual_seed(0)
    x, weight, grad_out = (torch.randn(*shape, generator=gen).to(device)
                           for shape in ((2, 48, 64, 64), (48, 48, 3, 3), (2, 48, 64, 64)))
    grads = []
    for _ in range(2):
        w = weight.clone().requires_grad_()
        blind_spot_conv2d(x, w, blind=1, backend=backend).backward(grad_out)
        grads.append(w.grad)
    return {"backend": backend, "device": device, "bitwise_equal": torch.equal(*grads),
            "max_abs_diff": float((grads[0] - grads[1]).abs().max())}


def determinism() -> list[dict]:
    """:func:`weight_grad_twice` on CUDA for the Triton and CUDA backends (a row with the reason
    for one that is not available)."""
    status = available_backends("cuda")
    return [weight_grad_twice(name, "cuda") if status[name][0] else {"backend": name, "available": status[name][1]}
            for name in ("triton", "cuda")]


def step_determinism(ctx: Context) -> Outcome:
    rows = python_result(DETERMINISM_CODE, ctx.budget.limit(DETERMINISM_TIMEOUT_S))
    said = [f"{r['backend']}: " + ("not available" if "available" in r else "bitwise equal" if r["bitwise_equal"]
                                   else f"differs (max |diff| {r['max_abs_diff']:.2g})") for r in rows]
    # the Triton weight gradient sums its splits in a fixed order, so it must give the same bits
    ok = all(r.get("bitwise_equal", True) for r in rows if r["backend"] == "triton")
    return Outcome(ok, "grad_weight twice: " + "; ".join(said), {"runs": rows})


def cuobjdump(ctx: Context, tool: str, option: str, path: Path) -> str:
    limit = ctx.budget.limit(CUOBJDUMP_TIMEOUT_S)
    code, output = run([tool, option, str(path)], limit)
    if code != 0:
        last = output.strip().splitlines()[-1:] or ["no output"]
        raise CheckError(f"cuobjdump {option} {path.name}: {ended(code, limit)}: {last[0][:200]}")
    return output


def dump_binary(ctx: Context, tool: str, path: Path) -> tuple[dict[str, dict], str]:
    """Per kernel function of the binary at ``path``: its SASS counts and resource usage; and the
    resource usage text, for the log (CheckError if cuobjdump fails or finds no kernel)."""
    usage = cuobjdump(ctx, tool, "--dump-resource-usage", path)
    resources = parse_resource_usage(usage)
    sass = count_sass(cuobjdump(ctx, tool, "--dump-sass", path))
    if not sass:
        raise CheckError(f"no kernel functions in {path.name}")
    return {name: {**resources.get(name, {}), **counts} for name, counts in sass.items()}, usage


def sass_binaries(ctx: Context, problems: list[str]) -> list[tuple[str, Path, dict]]:
    """(kind, path, metadata) of the built extension and of our Triton kernels' cubins; what is
    missing goes to ``problems``."""
    extension, binaries = extension_path(), []
    if extension is None:
        problems.append("no built extension atbsn_kernels/_C*.so")
    elif ctx.records["build"].ok is False:
        problems.append("extension not dumped: the build failed, so its binary is not this run's")
    else:
        binaries.append(("extension", extension, {}))
    cubins = triton_cubins()
    if not cubins:
        problems.append(f"no cubin of our Triton kernels in {triton_cache()}")
    return binaries + [("triton", cubin, triton_metadata(cubin)) for cubin in cubins]


def sass_rows(ctx: Context, tool: str, log: list[str], problems: list[str]) -> list[dict]:
    """One row per kernel of every binary (dumped in parallel); resource usage texts go to ``log``,
    failures to ``problems``."""
    def dump(binary):
        try:
            return dump_binary(ctx, tool, binary[1])
        except CheckError as err:
            return err

    binaries = sass_binaries(ctx, problems)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(dump, binaries))
    rows = []
    for (kind, path, meta), result in zip(binaries, results, strict=True):
        if isinstance(result, CheckError):
            problems.append(str(result))
            continue
        kernels, usage = result
        log.append(f"$ {tool} --dump-resource-usage {path}\n{usage}")
        # a Triton kernel's shared memory is dynamic: its metadata's "shared", not the ELF's static SHARED
        rows += [{"kind": kind, "kernel": name, **counts, **meta} for name, counts in kernels.items()]
    return rows


def step_sass(ctx: Context) -> Outcome:
    tool = find_tool("cuobjdump")
    if tool is None:
        raise CheckError("cuobjdump not found (PATH, CUDA_HOME/bin, /usr/local/cuda/bin, Triton's backends/nvidia/bin)")
    log, problems = [], []
    rows = sass_rows(ctx, tool, log, problems)
    (ctx.out / "sass.log").write_text("\n".join(log))
    return Outcome(not problems, "; ".join([*problems, sass_summary(rows)]), {"problems": problems, "kernels": rows})


def step_benchmarks(ctx: Context) -> Outcome:
    json_path, size = ctx.out / "benchmark.json", "quick" if ctx.quick else "full"
    cmd = [sys.executable, "-m", "pytest", *BENCHMARKS[size], "-q", "-p", "no:cacheprovider", "--bench-size=quick",
           f"--benchmark-json={json_path}"]
    limit = ctx.budget.limit(BENCH_TIMEOUT_S[size])
    code, output = run(cmd, limit, child_env())
    write_log(ctx, "bench.log", cmd, output)
    details = {"command": shlex.join(cmd)}
    if not json_path.is_file():
        return Outcome(False, f"pytest wrote no benchmark.json ({ended(code, limit)}; see bench.log)", details)
    groups, tables = benchmark_report(json_path, ctx.out, ctx.command, BENCH_DIR)
    return Outcome(code == 0, f"{groups} comparisons, BENCHMARKS.md written ({ended(code, limit)})",
                   {**details, MARKDOWN_KEY: tables})


# (name, step, runs in a dry run)
STEPS: list[tuple[str, Callable[[Context], Outcome], bool]] = [
    ("environment", step_environment, True), ("build", step_build, False), ("tests", step_tests, True),
    ("determinism", step_determinism, False), ("sass", step_sass, False), ("benchmarks", step_benchmarks, False),
]


def run_step(ctx: Context, name: str, step: Callable[[Context], Outcome], in_dry_run: bool) -> Record:
    """Run one step, timed; any error is a failed record with its message, never an abort."""
    start = time.monotonic()
    try:
        if ctx.dry_run and not in_dry_run:
            raise Skipped("skipped (dry run)")
        outcome = step(ctx)
    except Skipped as why:
        return Record(name, None, time.monotonic() - start, str(why))
    except Exception as err:  # a failed step is reported; the later steps still run
        outcome = Outcome(False, str(err) if isinstance(err, CheckError) else f"{type(err).__name__}: {err}")
    return Record(name, outcome.ok, time.monotonic() - start, outcome.summary, outcome.details)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m atbsn_kernels.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-check-out"), metavar="DIR",
                        help="folder for the report files (default: gpu-check-out)")
    parser.add_argument("--quick", action="store_true", help="benchmark only the AT-BSN, AP-BSN and LG-BPN layers "
                        "and two model benchmarks: the whole check stays under 8 minutes")
    parser.add_argument("--no-build", dest="build", action="store_false",
                        help="skip the build step (the extension is built already)")
    parser.add_argument("--dry-run", action="store_true", help="no GPU needed: environment, test selection "
                        "(collected only) and report; skip the other steps")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    out = args.out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"gpu_check: cannot make --out {out}: {err.strerror}", file=sys.stderr)
        return 2
    for name in OUTPUT_FILES:  # the folder holds this run's files only
        (out / name).unlink(missing_ok=True)
    mode = "dry run" if args.dry_run else "quick" if args.quick else "full"
    command = shlex.join(["python", "-m", "atbsn_kernels.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    budget = Budget(BUDGET_S["quick" if args.quick else "full"])
    ctx = Context(out, args.dry_run, args.quick, args.build, budget, command)
    print(f"gpu_check ({mode}, budget {ctx.budget.seconds:.0f} s): {len(STEPS)} steps, report in {out}", flush=True)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    for name, step, in_dry_run in STEPS:
        ctx.records[name] = run_step(ctx, name, step, in_dry_run)
        print(step_line(ctx.records[name]), flush=True)
    records = list(ctx.records.values())
    header = {"command": command, "mode": mode, "started": started,
              "seconds": round(sum(r.seconds for r in records), 1)}
    _, markdown_path = write_report(records, out, header)
    print(outcome_line(records, markdown_path))
    return exit_code(records)


if __name__ == "__main__":
    sys.exit(main())
