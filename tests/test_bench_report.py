"""The benchmark report writer (benchmarks/bench_report) on a small synthetic pytest-benchmark JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bench_json import synthetic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_report import REPORT, load_run, write_report  # noqa: E402
from bench_report.markdown import format_seconds, group_table, render  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_json(tmp_path):
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(synthetic()))
    return path


def test_report_header_tables_and_ratios(run_json, tmp_path):
    written = write_report(run_json, tmp_path / "out", command="atbsn bench --quick")
    assert written[0] == tmp_path / "out" / REPORT
    text = written[0].read_text()
    assert "**CPU figures**" in text
    for expected in ("Test CPU (avx2 fma), 2 cores", "| threads | 2 |", "torch 2.13.0", "2026-01-02 03:04",
                     "`atbsn bench --quick`", "| GEMM peak | 200.0 GFLOP/s", "| copy bandwidth | 50.0 GB/s |"):
        assert expected in text, expected
    # fast path: 1e9 FLOPs in 10 ms = 100 GFLOP/s = 50% of the peak; 1e8 bytes in 10 ms = 10 GB/s = 20%
    assert "| cpu | 10.0 ms | 2.00x | 100.0 | 50% | 10.0 | 20% | compute |  |" in text
    assert "| auto | 10.0 ms | 2.00x | 100.0 | 50% | 10.0 | 20% | compute | forward=cpu (tuning 3 ms) |" in text
    assert "| unmasked F.conv2d (floor) | 20.0 ms | 1.00x |" in text
    assert "| official-style eager (reference) | 400 ms | 1.00x | 10.00 |" in text
    assert "| fused | 200 ms | 2.00x | 20.00 |" in text
    assert "| provider | median | speed-up | images/s | peak tensors MiB | peak RSS MiB |" in text
    assert "| fused | 100 ms | 3.00x | 40.00 | 12.5 | 20.0 |" in text
    assert "| cpu | 50.0 ms | 2.00x | 20.0 | 40% | memory |" in text
    layers = text.split("## Real BSN layers")[1].split("##")[0]
    assert "| AT-BSN | 48 ch 7x7 b=3 d=1, 4x128² | forward | 18% | **2.00x** | forward=cpu (tuning 3 ms) | cpu 2.00x |" in layers
    assert "sweep" not in layers, "sweep points are not real layers"
    summary = text.split("## Summary")[1].split("##")[0]
    assert "ATBSN train step 4x3x128x128 | fused | 2.00x" in summary
    assert "unmasked" not in summary and "reference" not in summary


def test_report_plots_are_pngs_and_linked_and_stale_ones_go(run_json, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "speedup_vs_dilation.png").write_bytes(PNG_MAGIC)  # from an earlier run with a dilation sweep
    written = write_report(run_json, out)
    names = {p.name for p in written[1:]}
    assert names == {"speedup_vs_blind.png", "speedup_vs_resolution.png", "speedup_models.png"}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(names)
    text = (out / REPORT).read_text()
    for name in names:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in text
    assert "`pytest benchmarks --bench-size=quick`" in text  # the recorded command when none is given


def test_groups_in_order_reference_first(run_json):
    run = load_run(run_json)
    ops = list(run.groups("op"))
    assert ops == ["blind_spot_conv2d forward 4x48x128x128 k=7 b=1 dilation=1",  # by k, blind, ..., side
                   "blind_spot_conv2d forward 4x48x64x64 k=7 b=3 dilation=1",
                   "blind_spot_conv2d forward 4x48x128x128 k=7 b=3 dilation=1",
                   "shifted_max_pool2d fwd+bwd"]
    assert list(run.groups("model")) == ["ATBSN train step 4x3x128x128", "DBSN inference PD r=2"]
    assert all([e.role for e in members][0] == "reference" for members in run.groups().values())


def test_gpu_run_reports_gpu_figures_in_tflops(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(synthetic(device="cuda")))
    text = render(load_run(path))
    assert "**GPU figures**" in text and "NVIDIA H100 (compute capability 9.0, 132 SMs)" in text
    assert "fp32 convs in tf32" in text and "| GEMM peak | 0.2 TFLOP/s" in text
    assert "| provider | median | speed-up | TFLOP/s | % peak |" in text


def test_without_peaks_there_are_rates_but_no_shares(tmp_path):
    path = tmp_path / "nopeaks.json"
    path.write_text(json.dumps(synthetic(peaks=False)))
    run = load_run(path)
    table = "\n".join(group_table(run.groups()["blind_spot_conv2d forward 4x48x128x128 k=7 b=3 dilation=1"], run))
    assert "GFLOP/s" in table and "GB/s" in table
    assert "% peak" not in table and "% bandwidth" not in table and "bound" not in table
    assert "| GEMM peak |" not in render(run)


@pytest.mark.parametrize("content,message", [("[1, 2]", "no 'benchmarks' list"), ("{nope", "not a JSON file")])
def test_rejects_files_that_are_not_benchmark_json(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_run(path)


def test_each_provider_of_a_comparison_is_an_entry_with_the_comparisons_fields(run_json):
    entries = [e for e in load_run(run_json).entries if e.group.endswith("k=7 b=3 dilation=1") and "128" in e.group]
    assert [e.provider for e in entries] == ["masked F.conv2d", "unmasked F.conv2d", "cpu", "auto"]
    assert all(e.extra["k"] == 7 and e.extra["pass"] == "forward" and "providers" not in e.extra for e in entries)
    assert [e.median for e in entries] == [0.020, 0.020, 0.010, 0.010]


def test_entries_without_stats_are_skipped(tmp_path):
    data = synthetic()
    skipped = len(data["benchmarks"][0]["extra_info"]["providers"])
    total = sum(len(b["extra_info"]["providers"]) for b in data["benchmarks"])
    data["benchmarks"][0]["stats"] = None
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(data))
    assert len(load_run(path).entries) == total - skipped


@pytest.mark.parametrize("seconds,text", [(2.5, "2.50 s"), (0.0456, "45.6 ms"), (0.125, "125 ms"),
                                          (0.00078912, "789 µs"), (0.0033, "3.30 ms")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
