"""The measured dispatch of ``backend="auto"`` (``atbsn_kernels.tuning``): measuring, cache hits and
misses, the disk cache across processes, a corrupt or unwritable cache, the env switch, failing
candidates, the vendor's ties, per-direction choices and ``tune``."""

import json
import subprocess
import sys
import time

import pytest
import torch
from backend_cases import assert_close

import atbsn_kernels
from atbsn_kernels import reference, taps, tuning
from atbsn_kernels.ops.blind_spot_conv2d import IMPLEMENTATIONS, _dispatch_backward
from atbsn_kernels.tuning import TUNER, Decision, Tuner, measure


@pytest.fixture
def tuner_on(monkeypatch, tmp_path):
    """Measuring on, a fresh cache folder, no choices in memory; yields the cache file's path."""
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, "1")
    monkeypatch.setenv(tuning.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("ATBSN_BACKEND", raising=False)
    TUNER.clear()
    yield tmp_path / "tuning.json"
    TUNER.clear()


@pytest.fixture
def measured(monkeypatch):
    """Counts the tuner's measurements."""
    calls = []
    real = tuning.measure
    monkeypatch.setattr(tuning, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def conv(n=2, c=4, side=8, blind=1):
    x = torch.randn(n, c, side, side, requires_grad=True)
    weight = torch.randn(c, c, 3, 3, requires_grad=True)
    out = atbsn_kernels.blind_spot_conv2d(x, weight, blind=blind, negative_slope=0.1)
    out.backward(torch.randn_like(out))
    return out


def test_first_call_measures_and_later_calls_hit_the_cache(tuner_on, measured):
    conv()
    assert len(measured) == 2, "the forward and the backward (every gradient in one pass) are measured once each"
    decisions = TUNER.decisions(torch.device("cpu"))
    assert {sig.rsplit(" ", 1)[1] for sig in decisions} == {"forward", "backward"}
    for decision in decisions.values():
        assert set(decision.median_ms) == {"cpu", "vendor"} and decision.choice in ("cpu", "vendor")
        assert decision.tuning_ms > 0
    conv()
    conv(side=7)  # 7 and 8 share the size bucket 8
    assert len(measured) == 2


def test_a_new_signature_is_measured(tuner_on, measured):
    conv()
    conv(side=16)
    conv(c=5)
    conv(blind=0)
    assert len(measured) == 8


def test_the_cache_file_holds_the_choices_under_the_environment(tuner_on):
    conv()
    data = json.loads(tuner_on.read_text())
    assert data["format"] == tuning.CACHE_FORMAT
    env = tuning.environment_key(torch.device("cpu"))
    assert set(data["environments"]) == {env}
    assert torch.__version__ in env and atbsn_kernels.__version__ in env and "threads" in env
    entries = data["environments"][env]
    assert len(entries) == 2 and all(entry["choice"] in ("cpu", "vendor") for entry in entries.values())


SECOND_PROCESS = """
import torch
import atbsn_kernels
from atbsn_kernels import tuning
calls = []
real = tuning.measure
tuning.measure = lambda *a, **k: calls.append(1) or real(*a, **k)
torch.manual_seed(0)
x = torch.randn({n}, 4, 8, 8, requires_grad=True)
w = torch.randn(4, 4, 3, 3, requires_grad=True)
out = atbsn_kernels.blind_spot_conv2d(x, w, blind=1, negative_slope=0.1)
out.backward(torch.randn_like(out))
print(len(calls))
"""


def second_process(n: int, cache_dir, threads: int) -> int:
    env = {"ATBSN_AUTOTUNE": "1", "ATBSN_CACHE_DIR": str(cache_dir), "OMP_NUM_THREADS": str(threads),
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", SECOND_PROCESS.format(n=n)], env=env, capture_output=True,
                            text=True, timeout=300, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def test_a_second_process_reuses_the_disk_cache(tuner_on):
    threads = torch.get_num_threads()
    assert second_process(2, tuner_on.parent, threads) == 2, "a fresh cache measures"
    assert second_process(2, tuner_on.parent, threads) == 0, "the next process finds every choice on disk"
    assert second_process(32, tuner_on.parent, threads) == 2, "another batch bucket is measured"


def test_a_corrupt_cache_file_is_ignored_with_a_warning_and_replaced(tuner_on, measured):
    tuner_on.write_text("{not json")
    with pytest.warns(UserWarning, match="ignoring the tuning cache"):
        conv()
    assert len(measured) == 2
    assert len(json.loads(tuner_on.read_text())["environments"]) == 1


def test_a_cache_file_of_another_format_is_ignored(tuner_on, measured):
    tuner_on.write_text(json.dumps({"format": 999, "environments": {}}))
    with pytest.warns(UserWarning, match="not an atbsn tuning cache"):
        conv()
    assert len(measured) == 2


def test_an_unwritable_cache_warns_and_keeps_the_choices_in_memory(tuner_on, monkeypatch, measured):
    blocker = tuner_on.parent / "file"
    blocker.write_text("")
    monkeypatch.setenv(tuning.CACHE_DIR_ENV, str(blocker / "sub"))
    with pytest.warns(UserWarning, match="cannot write the tuning cache"):
        conv()
    conv()
    assert len(measured) == 2


def test_autotune_off_takes_the_fixed_order_and_writes_nothing(tuner_on, monkeypatch, measured):
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, "0")
    conv()
    assert measured == [] and not tuner_on.exists()
    assert TUNER.choose(torch.device("cpu"), "sig", lambda: pytest.fail("nothing is timed"), ("cpu", "vendor")) == "cpu"


def test_a_candidate_that_raises_is_skipped_with_a_warning(tuner_on):
    def broken():
        raise RuntimeError("no kernel for this shape")

    with pytest.warns(UserWarning, match="skipping backend 'cpu'.*no kernel for this shape"):
        choice = TUNER.choose(torch.device("cpu"), "sig-broken", lambda: {"cpu": broken, "vendor": lambda: None},
                              ("cpu", "vendor"))
    assert choice == "vendor"
    assert TUNER.decisions(torch.device("cpu"))["sig-broken"].failed["cpu"].startswith("RuntimeError")


def sleeper(seconds):
    return lambda: time.sleep(seconds)


def test_the_fastest_wins_but_the_vendor_wins_ties():
    cpu = torch.device("cpu")
    assert measure({"cpu": sleeper(0.002), "vendor": sleeper(0.01)}, cpu).choice == "cpu"
    assert measure({"cpu": sleeper(0.01), "vendor": sleeper(0.002)}, cpu).choice == "vendor"
    assert tuning._pick({"cpu": [9.9] * 5, "vendor": [10.0] * 5}) == "vendor", "within TIE_MARGIN the vendor stays"
    assert tuning._pick({"cpu": [9.0] * 5, "vendor": [10.0] * 5}) == "cpu"
    assert tuning._pick({"triton": [1.0, 1.1], "cuda": [2.0, 2.1]}) == "triton", "no vendor: the smallest median"


def test_each_candidate_is_judged_against_the_vendor_in_the_same_round():
    """A machine that slows down for some rounds slows both calls of a round: the paired ratios
    see cpu 10% faster in every round, where the medians of each alone would be a tie."""
    vendor = [10.0, 10.0, 30.0, 30.0, 30.0]
    cpu = [9.0, 9.0, 27.0, 27.0, 27.0]
    assert tuning._ratios_to_vendor({"cpu": cpu, "vendor": vendor}) == {"cpu": pytest.approx(0.9)}
    assert tuning._pick({"cpu": cpu, "vendor": vendor}) == "cpu"
    noisy = [9.0, 9.0, 27.0, 33.0, 33.0]  # slower than the vendor in two of five rounds
    assert tuning._pick({"cpu": noisy, "vendor": vendor}) == "cpu", "the median of the ratios, not one round"


@pytest.mark.parametrize("ratio, rounds", [(1 - tuning.TIE_MARGIN, 2 * tuning.REPEATS), (0.25, tuning.REPEATS)])
def test_a_close_call_gets_more_rounds(ratio, rounds):
    """A ratio at the tie threshold (sleeps of 19.4 and 20 ms: CLOSE_BAND leaves 1 ms of jitter)
    is timed twice as long; a clear winner is decided after REPEATS rounds."""
    calls = []

    def timed(name, seconds):
        return lambda: (calls.append(name), time.sleep(seconds))

    decision = measure({"cpu": timed("cpu", 0.02 * ratio), "vendor": timed("vendor", 0.02)}, torch.device("cpu"))
    assert calls.count("cpu") == calls.count("vendor") == 1 + rounds, "one warm-up call, then the rounds"
    if ratio < 1 - tuning.TIE_MARGIN - tuning.CLOSE_BAND:
        assert decision.choice == "cpu"


def test_measure_alternates_the_order_and_times_each_candidate_repeats_times():
    order = []
    decision = measure({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, torch.device("cpu"),
                       repeats=4)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"], "a warm-up call each, then A B / B A rounds"
    assert set(decision.median_ms) == {"a", "b"}


def test_one_candidate_is_not_timed(tuner_on):
    choice = TUNER.choose(torch.device("cpu"), "sig-one", lambda: pytest.fail("nothing is timed"), ("vendor",))
    assert choice == "vendor"


def test_a_cached_choice_that_is_no_longer_a_candidate_is_measured_again(tuner_on):
    device = torch.device("cpu")
    TUNER._memory[(tuning.environment_key(device), "sig-gone")] = Decision("triton")
    TUNER._loaded.add(tuning.environment_key(device))
    assert TUNER.choose(device, "sig-gone", lambda: {"cpu": lambda: None, "vendor": lambda: None},
                        ("cpu", "vendor")) in ("cpu", "vendor")


def spy_backwards(monkeypatch, chosen):
    """Every implementation's backward records (backend, output mask); the tuner answers ``chosen``
    for every signature and records the directions asked for."""
    calls, directions = [], []
    for name in ("reference", "cpu", "vendor"):
        impl = IMPLEMENTATIONS[name]
        backward = impl.backward
        monkeypatch.setattr(impl, "_pair", (impl.forward, lambda *a, _b=backward, _n=name: (
            calls.append((_n, tuple(a[-1]))), _b(*a))[1]))
    monkeypatch.setattr(TUNER, "choose", lambda device, signature, candidates, order: (
        directions.append(signature.rsplit(" ", 1)[1]), chosen)[1])
    return calls, directions


def backward_call(output_mask, weight=None):
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64) if weight is None else weight
    active = list(taps.blind_taps(3, 1))
    out = reference.blind_spot_conv2d(x, weight, None, active, 1, 0.1)
    grad = torch.randn_like(out)
    got = _dispatch_backward(grad, x, weight, out, active, 1, 0.1, list(output_mask), "auto")
    want = reference.blind_spot_conv2d_backward(grad, x, weight, out, active, 1, 0.1, list(output_mask))
    return got, want


@pytest.mark.parametrize("output_mask,direction", [((True, True, True), "backward"), ((True, False, False), "grad_input"),
                                                   ((False, True, True), "grad_weight")])
def test_the_backward_is_one_choice_per_set_of_wanted_gradients(monkeypatch, output_mask, direction):
    calls, directions = spy_backwards(monkeypatch, "cpu")
    got, want = backward_call(output_mask)
    assert directions == [direction] and calls == [("cpu", output_mask)], "one backend, one pass"
    for g, w, wanted in zip(got, want, output_mask):
        if wanted:
            assert_close(g, w, torch.float64)
        else:
            assert g.numel() == 0


def test_a_nonfinite_active_weight_takes_the_input_gradient_from_the_reference(monkeypatch):
    calls, _ = spy_backwards(monkeypatch, "cpu")
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    weight[0, 0, 0, 0] = float("nan")
    backward_call((True, True, True), weight)
    assert calls == [("reference", (True, False, False)), ("cpu", (False, True, True))]


def test_tune_measures_every_layer_of_a_model_ahead_of_a_run(tuner_on):
    model = torch.nn.Sequential(atbsn_kernels.nn.BlindSpotConv2d(3, 8, 3, blind=1, negative_slope=0.1),
                                atbsn_kernels.nn.BlindSpotConv2d(8, 3, 5, blind=3))
    model[0].weight.grad = previous = torch.ones_like(model[0].weight)
    decisions = atbsn_kernels.tune(model, torch.randn(2, 3, 16, 16))
    directions = sorted(sig.rsplit(" ", 1)[1] for sig in decisions)
    # the first layer's input needs no gradient (weight gradients only), the second every gradient
    assert directions == ["backward", "forward", "forward", "grad_weight"]
    assert model[0].weight.grad is previous and model[1].weight.grad is None, "tune leaves .grad as it was"


def test_tune_refuses_when_measuring_is_off(monkeypatch):
    monkeypatch.setenv(tuning.AUTOTUNE_ENV, "0")
    with pytest.raises(RuntimeError, match="ATBSN_AUTOTUNE=0"):
        atbsn_kernels.tune(torch.nn.Identity(), torch.randn(1))


def test_size_buckets_are_powers_of_two():
    assert [tuning.size_bucket(s) for s in (0, 1, 2, 3, 64, 65, 128)] == [0, 1, 2, 4, 64, 128, 128]


def test_a_fresh_tuner_reads_the_file_back(tuner_on):
    conv()
    fresh = Tuner()
    decisions = fresh.decisions(torch.device("cpu"))
    assert decisions.keys() == TUNER.decisions(torch.device("cpu")).keys()
    assert all(isinstance(d, Decision) for d in decisions.values())
