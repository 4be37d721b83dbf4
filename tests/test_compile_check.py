"""Every Triton kernel and every .cu file compiles for sm_80 and sm_90 without a GPU."""

import os
import subprocess
import sys

import pytest

from atbsn_kernels import compile_check


def test_tensor_core_detection():
    assert compile_check.tensor_core_instructions("mma.sync.aligned.m16n8k16.row.col.f32.f16") == "mma.sync"
    assert compile_check.tensor_core_instructions("wgmma.mma_async.sync.aligned.m64n64k16") == "wgmma"
    assert compile_check.tensor_core_instructions("fma.rn.f32") == "-"


def test_refuses_to_run_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert compile_check.main(["--skip-cuda"]) == 2


@pytest.mark.slow
def test_every_gpu_kernel_compiles_for_sm80_and_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "atbsn_kernels.compile_check"], capture_output=True, text=True, env=env, timeout=900
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("triton ", "cuda "))]
    triton_rows = [r for r in rows if r[0] == "triton"]
    cuda_rows = [r for r in rows if r[0] == "cuda"]
    expected_triton = {f"{t['module']}.{t['name']}" for t in compile_check.triton_targets()}
    for arch, instruction in (("sm_80", "mma.sync"), ("sm_90", "wgmma")):
        names = {r[1] for r in triton_rows if r[2] == arch}
        assert names == expected_triton
        tensor_core_rows = [r for r in triton_rows if r[2] == arch and instruction in r[4]]
        assert tensor_core_rows, f"no Triton kernel used {instruction} on {arch}"
    assert {(r[1], r[2]) for r in cuda_rows} == {
        (str(s.relative_to(compile_check.REPO_ROOT)), f"sm_{a}") for s in compile_check.cuda_sources() for a in (80, 90)
    }
    assert all(r[3] == "yes" for r in rows)
