"""The benchmarks' own machinery (benchmarks/bench_device.py, bench_conv.py, profile_train_step.py):
the CUDA-event timer, same-run peaks, the work model that the report's rates come from and the
training-step profile table."""

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_compare import Provider, provider_records  # noqa: E402
from bench_conv import conv_step, conv_work  # noqa: E402
from bench_device import call_timer, gemm_candidates, measure_peaks  # noqa: E402
from profile_train_step import main as profile_main  # noqa: E402
from profile_train_step import table as profile_table  # noqa: E402


class FakeEvent:
    """Stands in for torch.cuda.Event: each record() advances a clock by 1.5 ms."""

    clock_ms = 0.0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.synchronized = False

    def record(self):
        FakeEvent.clock_ms += 1.5
        self.at = FakeEvent.clock_ms

    def synchronize(self):
        self.synchronized = True

    def elapsed_time(self, end):
        assert end.synchronized, "the end event is synchronized before it is read"
        return end.at - self.at


def test_cuda_timer_times_one_call_with_events(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    calls = []
    assert call_timer("cuda")(lambda: calls.append(1)) == pytest.approx(1.5e-3)
    assert calls == [1]


def test_cpu_timer_times_one_call_with_the_wall_clock():
    assert 0.01 <= call_timer("cpu")(lambda: time.sleep(0.01)) < 1.0


def test_provider_records_give_medians_speedups_and_rates():
    providers = {"ref": Provider(None, "reference", {"flops": 8.0}), "fast": Provider(None, "fast", {"images": 2},
                                                                                        {"auto": "forward=cpu"})}
    records = provider_records(providers, {"ref": [4.0, 2.0, 3.0], "fast": [1.0, 1.0, 5.0]})
    ref, fast = records
    assert ref["median"] == 3.0 and ref["speedup_vs_reference"] == 1.0 and ref["flop_per_s"] == 8.0 / 3.0
    assert fast["median"] == 1.0 and fast["speedup_vs_reference"] == 3.0 and fast["images_per_s"] == 2.0
    assert fast["auto"] == "forward=cpu" and fast["times"] == [1.0, 1.0, 5.0]


def test_cpu_peaks_are_measured_and_described():
    peaks = measure_peaks("cpu", gemm_n=64, copy_mib=1)
    assert peaks["peak_flop_per_s"] > 0 and peaks["peak_bytes_per_s"] > 0
    rates = peaks["gemm_flop_per_s"]
    assert set(rates) == {"torch.matmul", "oneDNN 1x1 conv", "oneDNN 1x1 conv, channels-last"}
    assert min(rates.values()) > 0 and peaks["peak_flop_per_s"] == max(rates.values())
    best = max(rates, key=rates.get)
    others = ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in rates.items() if name != best)
    assert peaks["peak_method"] == f"fp32 {best} 64x64 (ieee); GFLOP/s of {others}; copy of 1 MiB; best of the run"


def test_the_cpu_gemm_candidates_compute_the_same_product():
    matmul, conv, conv_cl = gemm_candidates(32, "cpu").values()
    torch.testing.assert_close(conv().view(32, 32), matmul(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(conv_cl().reshape(32, 32), matmul(), rtol=1e-5, atol=1e-4)


def test_conv_work_counts_active_taps_and_three_convs_for_training():
    dense = conv_work(2, 3, 4, 8, taps=9, pass_="forward")
    blind = conv_work(2, 3, 4, 8, taps=8, pass_="forward")
    assert dense["flops"] == 2 * (2 * 8 * 8) * 3 * 4 * 9
    assert blind["flops"] == dense["flops"] * 8 // 9
    assert dense["bytes"] == 4 * (2 * 3 * 64 + 4 * 3 * 9 + 2 * 4 * 64)
    train = conv_work(2, 3, 4, 8, taps=9, pass_="fwd+bwd")
    assert train == {"flops": 3 * dense["flops"], "bytes": 3 * dense["bytes"]}


def test_conv_step_rejects_an_unknown_pass():
    with pytest.raises(ValueError, match="pass must be one of"):
        conv_step(None, None, None, None, None, "backward")


def test_the_profile_table_gives_each_models_share_and_folds_small_ops():
    rows = profile_table({"a": {"conv": 90.0, "copy": 9.9, "tiny": 0.1}, "b": {"conv": 50.0, "cat": 50.0}}).splitlines()
    assert rows[0] == "| op | a | b |"
    assert rows[2] == "| `conv` | 90 ms (90.0%) | 50 ms (50.0%) |"  # the largest share of either first
    assert rows[3] == "| `cat` | 0 ms (0.0%) | 50 ms (50.0%) |"
    assert rows[4] == "| `copy` | 10 ms (9.9%) | 0 ms (0.0%) |"
    assert rows[5] == "| other | 0 ms (0.1%) | 0 ms (0.0%) |" and rows[6] == "| total | 100 ms | 100 ms |"


def test_the_profile_of_a_small_training_step_shows_our_kernels_beside_the_official_style_model(capsys):
    profile_main(["--steps", "1", "--batch", "1", "--side", "32"])
    out = capsys.readouterr().out
    assert "| op | fused | official-style eager |" in out and "1 steps of 1x3x32x32, hole 9" in out
    assert "| `atbsn::blind_spot_conv2d` |" in out and "| `aten::mkldnn_convolution` |" in out
