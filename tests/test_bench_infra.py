"""The benchmarks' own machinery (benchmarks/bench_device.py, bench_conv.py): the CUDA-event timer,
same-run peaks and the work model that the report's rates come from."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_conv import conv_step, conv_work  # noqa: E402
from bench_device import CudaStamp, cuda_event_timer, measure_peaks, use_cuda_events  # noqa: E402


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
        return end.at - self.at


def test_cuda_stamps_subtract_to_seconds_after_synchronizing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    start = cuda_event_timer()
    end = cuda_event_timer()
    assert end - start == pytest.approx(1.5e-3)
    assert end.event.synchronized


def test_cuda_stamp_takes_an_event_factory():
    start, end = CudaStamp(lambda: FakeEvent(True)), CudaStamp(lambda: FakeEvent(True))
    assert end - start == pytest.approx(1.5e-3)


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
def test_use_cuda_events_swaps_pytest_benchmarks_timer(benchmark):
    use_cuda_events(benchmark)
    assert benchmark._timer is cuda_event_timer


def test_use_cuda_events_fails_clearly_without_a_timer_to_swap():
    with pytest.raises(RuntimeError, match="CUDA events"):
        use_cuda_events(object())


def test_cpu_peaks_are_measured_and_described():
    peaks = measure_peaks("cpu", gemm_n=64, copy_mib=1)
    assert peaks["peak_flop_per_s"] > 0 and peaks["peak_bytes_per_s"] > 0
    assert "torch.matmul 64x64" in peaks["peak_method"]


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
        conv_step(None, None, None, None, "backward")
