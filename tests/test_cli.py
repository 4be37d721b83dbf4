"""The ``atbsn`` command line: --version, info, bench, and --help of every command."""

import json
import os
import subprocess
import sys

import pytest
import torch
from bench_json import synthetic

import atbsn_kernels
from atbsn.cli import main


def test_version_via_python_m():
    proc = subprocess.run([sys.executable, "-m", "atbsn", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"atbsn {atbsn_kernels.__version__}"


def test_info_lists_backends_and_reasons(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "triton" in out
    assert "extension        loaded" in out
    for device_type, name in [("cpu", "cpu"), ("cpu", "reference"), ("cpu", "vendor"), ("cuda", "triton"),
                              ("cuda", "cuda")]:
        assert any(line.split()[:2] == [device_type, name] for line in out.splitlines()), (device_type, name)
    if not torch.cuda.is_available():
        assert "torch.cuda.is_available() is False" in out
        assert not any(line.split()[:3] in (["cuda", name, "yes"] for name in ("reference", "vendor", "triton"))
                       for line in out.splitlines()), "no backend runs CUDA tensors without a GPU"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: atbsn" in capsys.readouterr().out


def test_bench_help_names_sizes_output_and_report_only(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--smoke", "--quick", "--full", "-k", "--output", "--report-only"):
        assert option in out, option
    assert "BENCHMARKS.md" in out


def test_bench_report_only_writes_the_report(tmp_path, capsys):
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(synthetic()))
    assert main(["bench", "--report-only", str(path), "--output", str(tmp_path / "out")]) == 0
    assert "report written to" in capsys.readouterr().out
    assert (tmp_path / "out" / "BENCHMARKS.md").is_file()
    assert (tmp_path / "out" / "speedup_models.png").is_file()


@pytest.mark.parametrize("content", [None, "{}"])
def test_bench_report_only_fails_clearly_on_a_missing_or_bad_file(tmp_path, capsys, content):
    path = tmp_path / "benchmark.json"
    if content is not None:
        path.write_text(content)
    assert main(["bench", "--report-only", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "atbsn bench: cannot write the report" in capsys.readouterr().err


def test_bench_smoke_run_writes_json_report_and_plots(tmp_path):
    cmd = [sys.executable, "-m", "atbsn", "bench", "--smoke", "-k", "test_shifted", "--output", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["machine_info"]["atbsn"]["device"] in ("cpu", "cuda")
    entries = data["benchmarks"]
    assert {e["extra_info"]["op"] for e in entries} == {"shifted_conv2d", "shifted_max_pool2d"}
    records = [(e["extra_info"]["op"], r) for e in entries for r in e["extra_info"]["providers"]]
    assert all(r["speedup_vs_reference"] > 0 and len(r["times"]) == 1 for _, r in records)
    assert all(r["flop_per_s"] > 0 for op, r in records if op == "shifted_conv2d")
    assert {r["provider"] for _, r in records} >= {"auto", "vendor", "cpu"}
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "`atbsn bench --smoke -k test_shifted`" in report and "### shifted_conv2d forward" in report


@pytest.mark.parametrize("command, names", [
    ("train", ["--config", "KEY=VALUE", "lr=0.0003", "hole=9", "steps=400000"]),
    ("distill", ["--config", "teacher=", "holes=[0, 1, 3, 5, 7, 9, 11]"]),
    ("denoise", ["--weights", "--model", "--hole", "--tile", "--overlap", "--backend", "--device"]),
    ("eval", ["--data", "--clean", "--dnd", "--weights"]),
    ("export", ["--half", "--model"]),
    ("demo", ["--train-steps", "--output"]),
])
def test_every_command_has_help(capsys, command, names):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in names), text


def run_cli(*args, env_extra=None, tmp_path=None):
    env = {**os.environ, "ATBSN_AUTOTUNE": "1", "ATBSN_CACHE_DIR": str(tmp_path), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "atbsn", *args], capture_output=True, text=True, env=env, timeout=300)


def test_tune_fills_the_cache_that_info_tuning_lists(tmp_path):
    proc = run_cli("tune", "atbsn", "--shape", "1,3,32,32", "--mid", "8", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "new choice(s)" in proc.stdout and str(tmp_path / "tuning.json") in proc.stdout
    for direction in ("forward", "backward", "grad_weight"):
        assert f" {direction}  [" in proc.stdout, direction
    again = run_cli("tune", "atbsn", "--shape", "1,3,32,32", "--mid", "8", tmp_path=tmp_path)
    assert "tune: 0 new choice(s)" in again.stdout, "a second process finds every choice in the cache"
    info = run_cli("info", "--tuning", tmp_path=tmp_path)
    assert info.returncode == 0 and "tuning:" in info.stdout and "blind_spot_conv2d float32 n4 c8" in info.stdout


@pytest.mark.parametrize("args,env,message", [
    (["tune", "atbsn", "--shape", "1,3,32"], {}, "--shape must be N,C,H,W"),
    (["tune", "atbsn", "--shape", "1,3,32,32"], {"ATBSN_AUTOTUNE": "0"}, "ATBSN_AUTOTUNE=0 turns measuring off"),
])
def test_tune_refuses_bad_arguments_in_one_line(tmp_path, args, env, message):
    proc = run_cli(*args, env_extra=env, tmp_path=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_bench_outside_a_source_checkout_says_so(tmp_path, monkeypatch, capsys):
    import atbsn.cli

    monkeypatch.setattr(atbsn.cli, "BENCH_DIR", tmp_path / "benchmarks")
    assert main(["bench", "--smoke"]) == 2
    assert "the benchmark suites come with the source checkout" in capsys.readouterr().err
