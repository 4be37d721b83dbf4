"""``python -m atbsn_kernels.gpu_check``: its parsers (cuobjdump, junit), the report, the time
limits, the dry run (what CI can run without a GPU) and the refusals; ``tests/gpu_marks.py``."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from bench_json import synthetic
from gpu_marks import runs_on_gpu

from atbsn_kernels import gpu_check
from atbsn_kernels.gpu_check_report import (Record, benchmark_report, count_sass, exit_code, outcome_line,
                                            parse_junit, parse_resource_usage, step_line, write_report)

SASS = """
Fatbin elf code:
================
arch = sm_90
code version = [1,7]

\tcode for sm_90
\t\tFunction : _Z11conv_kernelPKfPf
\t.headerflags\t@"EF_CUDA_TEXMODE_UNIFIED EF_CUDA_64BIT_ADDRESS EF_CUDA_SM90"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
                                                                              /* 0x000fe40000000800 */
        /*0010*/                   LDG.E R2, desc[UR4][R2.64] ;               /* 0x0000000402027981 */
        /*0020*/              @!P0 LDGSTS.E.BYPASS.128 [R5], desc[UR4][R6.64] ;
        /*0030*/                   LDGDEPBAR ;
        /*0040*/                   HMMA.16816.F32 R8, R12, R16, R8 ;
        /*0050*/               @P1 HMMA.16816.F32 R8, R12, R18, R8 ;
        /*0060*/                   STL [R1], R20 ;
        /*0070*/                   LDL R20, [R1] ;
        /*0080*/                   EXIT ;
        /*0090*/                   BRA 0x90;
\t\t..........


\t\tFunction : _pool_forward_kernel
        /*0000*/                   LDG.E.CONSTANT R0, desc[UR4][R2.64] ;
        /*0010*/                   HGMMA.64x64x16.F32 R24, gdesc[UR4], R24 ;
        /*0020*/                   EXIT ;
\t\t..........

\tcode for sm_80
\t\tFunction : _Z11conv_kernelPKfPf
        /*0000*/                   LDG.E R2, [R2.64] ;
        /*0010*/                   EXIT ;
"""
RESOURCE_USAGE = """
Resource usage:
 Common:
  GLOBAL:0 CONSTANT[3]:8
 Function _Z11conv_kernelPKfPf:
  REG:40 STACK:16 SHARED:0 LOCAL:0 CONSTANT[0]:544 TEXTURE:0 SURFACE:0 SAMPLER:0
  ptxas info    : 8 bytes spill stores, 12 bytes spill loads
 Function _pool_forward_kernel:
  REG:18 STACK:0 SHARED:4096 LOCAL:0 CONSTANT[0]:400 TEXTURE:0 SURFACE:0 SAMPLER:0
"""
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_a" name="test_ok[triton]" time="0.1"/>
<testcase classname="tests.test_a" name="test_ok[cuda]" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad[cuda]">
  <failure message="assert">x</failure><error message="teardown"/></testcase>
<testcase classname="tests.test_b" name="test_err"><error message="fixture">y</error></testcase>
<testcase classname="tests.test_b" name="test_skip"><skipped message="no GPU"/></testcase>
</testsuite></testsuites>
"""


def test_count_sass_counts_each_functions_opcodes():
    counts = count_sass(SASS)
    assert counts == {
        "_Z11conv_kernelPKfPf": {"HMMA": 2, "HGMMA": 0, "LDGSTS": 1, "LDG": 1, "LDL": 1, "STL": 1, "instructions": 10},
        "_pool_forward_kernel": {"HMMA": 0, "HGMMA": 1, "LDGSTS": 0, "LDG": 1, "LDL": 0, "STL": 0, "instructions": 3},
        "_Z11conv_kernelPKfPf (sm_80)": {"HMMA": 0, "HGMMA": 0, "LDGSTS": 0, "LDG": 1, "LDL": 0, "STL": 0,
                                         "instructions": 2},
    }


def test_parse_resource_usage_reads_registers_stack_and_spills():
    assert parse_resource_usage(RESOURCE_USAGE) == {
        "_Z11conv_kernelPKfPf": {"registers": 40, "stack": 16, "shared": 0, "local": 0, "spill_stores": 8,
                                 "spill_loads": 12},
        "_pool_forward_kernel": {"registers": 18, "stack": 0, "shared": 4096, "local": 0},
    }


def test_parse_junit_counts_each_test_once(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    assert parse_junit(path) == {"passed": 2, "failed": 1, "errors": 1, "skipped": 1,
                                 "failures": ["tests.test_a::test_bad[cuda]", "tests.test_b::test_err"]}


def fake_records(build_ok: bool) -> list[Record]:
    return [Record("environment", True, 1.25, "NVIDIA H200 (9.0, 132 SMs)", {"torch": "2.11.0", "cpus": 16}),
            Record("build", build_ok, 200.0, "setup.py failed (exit status 1)" if not build_ok else "built"),
            Record("sass", True, 3.0, "extension: 2 kernels", {"kernels": [{"kind": "triton", "kernel": "_pool"}]}),
            Record("benchmarks", None, 0.0, "skipped (dry run)")]


def test_report_of_a_failed_step(tmp_path):
    records = fake_records(build_ok=False)
    json_path, md_path = write_report(records, tmp_path, {"command": "python -m atbsn_kernels.gpu_check"})
    assert exit_code(records) == 1
    assert step_line(records[1]).split()[:2] == ["FAILED", "build"]
    assert outcome_line(records, md_path) == f"gpu_check: 2 ok, 1 FAILED, 1 skipped in 204 s; report: {md_path}"
    data = json.loads(json_path.read_text())
    assert data["ok"] is False
    assert [(s["step"], s["ok"]) for s in data["steps"]] == [("environment", True), ("build", False), ("sass", True),
                                                            ("benchmarks", None)]
    md = md_path.read_text()
    assert "## build: FAILED (200.0 s)" in md and "| build | **FAILED** | 200.0 |" in md
    assert "| kind | kernel |" in md and "| triton | _pool |" in md and "| cpus | 16 |" in md


def test_skipped_steps_do_not_fail_the_check():
    assert exit_code(fake_records(build_ok=True)) == 0


def test_a_subprocess_past_its_limit_is_killed():
    code, output = gpu_check.run([sys.executable, "-c", "import time; time.sleep(60)"], 1)
    assert code is None and "killed after 1 s" in output


def test_a_spent_budget_fails_the_step_with_a_message(tmp_path):
    ctx = gpu_check.Context(tmp_path, False, True, True, gpu_check.Budget(0), "cmd")
    record = gpu_check.run_step(ctx, "tests", gpu_check.step_tests, False)
    assert record.ok is False and "budget of 0 s is spent" in record.summary


def test_sass_step_reads_the_extension_and_our_cached_cubins(tmp_path, monkeypatch):
    tool = tmp_path / "cuobjdump"
    (tmp_path / "sass.txt").write_text(SASS)
    (tmp_path / "usage.txt").write_text(RESOURCE_USAGE)
    tool.write_text(f'#!/bin/sh\nif [ "$1" = --dump-sass ]; then cat {tmp_path}/sass.txt\n'
                    f'else cat {tmp_path}/usage.txt; fi\n')
    tool.chmod(0o755)
    cache = tmp_path / "cache"
    for folder, name in (("abcdef123456", "_conv_kernel"), ("zz", "unrelated_kernel")):
        (cache / folder).mkdir(parents=True)
        (cache / folder / f"{name}.cubin").write_bytes(b"\x7fELF")
    meta = {"num_warps": 8, "shared": 49152, "maxnreg": None, "target": {"arch": 90}, "x": 1}
    (cache / "abcdef123456" / "_conv_kernel.json").write_text(json.dumps(meta))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(cache))
    monkeypatch.setattr(gpu_check, "find_tool", lambda name: str(tool))
    ctx = gpu_check.Context(tmp_path, False, True, True, gpu_check.Budget(60), "cmd",
                            {"build": Record("build", True, 1.0, "built")})
    outcome = gpu_check.step_sass(ctx)
    assert outcome.ok, outcome.summary
    kernels = outcome.details["kernels"]
    assert [(r["kind"], r["kernel"]) for r in kernels] == [("extension", "_Z11conv_kernelPKfPf"),
                                                          ("extension", "_pool_forward_kernel"),
                                                          ("extension", "_Z11conv_kernelPKfPf (sm_80)")] + [
        ("triton", name) for name in ("_Z11conv_kernelPKfPf", "_pool_forward_kernel", "_Z11conv_kernelPKfPf (sm_80)")]
    conv = kernels[3]
    assert "maxnreg" not in conv and "x" not in conv
    want = {"cache": "abcdef12", "arch": 90, "num_warps": 8, "shared": 49152, "registers": 40, "spill_stores": 8,
            "HMMA": 2}
    assert {key: conv[key] for key in want} == want
    assert outcome.summary == ("extension: 3 kernels, 2 with HMMA/HGMMA; triton: 3 kernels, 2 with HMMA/HGMMA; "
                               "2 with spills (LDL/STL)")
    assert "REG:40" in (tmp_path / "sass.log").read_text()


def test_benchmark_report_uses_the_checkouts_report_code(tmp_path):
    data = synthetic(device="cuda")
    (tmp_path / "benchmark.json").write_text(json.dumps(data))
    groups, tables = benchmark_report(tmp_path / "benchmark.json", tmp_path, "python -m atbsn_kernels.gpu_check",
                                      gpu_check.BENCH_DIR)
    assert groups == len({b["group"] for b in data["benchmarks"]})
    assert tables.startswith("### ") and "### Summary" in tables and "\n## " not in tables
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "**GPU figures**" in report and "`python -m atbsn_kernels.gpu_check`" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "benchmark.json"]  # no plots


def test_determinism_step_runs_in_a_subprocess(tmp_path):
    outcome = gpu_check.step_determinism(gpu_check.Context(tmp_path, False, True, True, gpu_check.Budget(120), "cmd"))
    assert outcome.ok, outcome.summary
    rows = outcome.details["runs"]
    assert [r["backend"] for r in rows] == ["triton", "cuda"]
    if not torch.cuda.is_available():
        assert outcome.summary == "grad_weight twice: triton: not available; cuda: not available"
        assert all("torch.cuda.is_available() is False" in r["available"] for r in rows)


def test_the_weight_gradient_twice_is_bitwise_equal_on_the_cpu_backend():
    result = gpu_check.weight_grad_twice("cpu", "cpu")
    assert result == {"backend": "cpu", "device": "cpu", "bitwise_equal": True, "max_abs_diff": 0.0}


def item(name, id_=None, **params):
    return SimpleNamespace(name=name, callspec=None if id_ is None else SimpleNamespace(id=id_, params=params))


def test_gpu_marks_select_cuda_tensors_and_the_gpu_kernels():
    assert runs_on_gpu(item("test_x[triton-float32]", "triton-float32", pair=("triton", "cpu")))
    assert runs_on_gpu(item("test_x[reference-cuda]", "reference-cuda", pair=("reference", "cuda")))
    assert runs_on_gpu(item("test_y[dev0]", "dev0", device=torch.device("cuda")))
    assert runs_on_gpu(item("test_z[2]", "2", pair=("vendor", "cuda")))
    assert not runs_on_gpu(item("test_x[cpu-float32]", "cpu-float32", pair=("cpu", "cpu")))
    assert not runs_on_gpu(item("test_cuda_backend_refuses_float64"))


def test_dry_run_checks_the_plumbing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "benchmark.json").write_text("{}")  # a stale file of an earlier run
    proc = subprocess.run([sys.executable, "-m", "atbsn_kernels.gpu_check", "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=gpu_check.REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) <= 25
    data = json.loads((out / "gpu_check.json").read_text())
    steps = {s["step"]: s for s in data["steps"]}
    assert list(steps) == ["environment", "build", "tests", "determinism", "sass", "benchmarks"]
    assert steps["environment"]["ok"] and steps["environment"]["details"]["torch"] == torch.__version__
    assert steps["tests"]["ok"] and steps["tests"]["details"]["selected"] > 0
    assert "--collect-only" in steps["tests"]["details"]["command"]
    for name in ("build", "determinism", "sass", "benchmarks"):
        assert steps[name]["ok"] is None and steps[name]["summary"] == "skipped (dry run)"
    assert "## tests: ok" in (out / "GPU_CHECK.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["GPU_CHECK.md", "gpu_check.json", "tests.log"]
    assert f"report: {out / 'GPU_CHECK.md'}" in proc.stdout


def test_without_cuda_it_refuses_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--quick", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == gpu_check.NO_CUDA + "\n"
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(["--dry-run", "--out", str(path)])
    assert exit_.value.code == 2
    assert f"--out {path}: exists and is not a folder" in capsys.readouterr().err


def test_help_names_every_step_and_the_budget(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--help"])
    text = capsys.readouterr().out
    assert "8 minutes" in text
    assert all(f"  {name} " in text for name, _, _ in gpu_check.STEPS)
