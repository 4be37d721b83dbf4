"""A small synthetic pytest-benchmark JSON, as ``benchmarks/`` writes it, for the report tests:
one benchmark per comparison, its providers in ``extra_info["providers"]``."""

PEAK_FLOPS, PEAK_BANDWIDTH = 200e9, 50e9


def provider(name, median, role="fast", reference=None, **work):
    """One provider record as benchmarks/conftest.py writes it (rates from the per-call work)."""
    rates = {rate: work[key] / median for key, rate in (("flops", "flop_per_s"), ("bytes", "bytes_per_s"),
                                                        ("images", "images_per_s")) if key in work}
    extra = {key: value for key, value in work.items() if key not in ("flops", "bytes", "images")}
    return {"provider": name, "role": role, "median": median, "times": [median] * 3,
            "speedup_vs_reference": (reference or median) / median,
            **{k: v for k, v in work.items() if k in ("flops", "bytes", "images")}, **rates, **extra}


def comparison(group, providers, **extra):
    """One pytest-benchmark JSON entry: the comparison's fields and its provider records."""
    return {"group": group, "name": "test_x", "fullname": "x.py::test_x",
            "extra_info": {"interleaved": True, **extra, "providers": providers},
            "stats": {"median": sum(p["median"] for p in providers), "rounds": 3}}


def conv_group(blind, side, medians, sweeps, flops=2e9, net="sweep"):
    """A forward blind_spot_conv2d comparison: masked F.conv2d (reference), unmasked floor, cpu (fewer FLOPs)."""
    group = f"blind_spot_conv2d forward 4x48x{side}x{side} k=7 b={blind} dilation=1"
    ref, floor, fast = medians
    return comparison(group, [
        provider("masked F.conv2d", ref, "reference", ref, flops=flops, bytes=1e8),
        provider("unmasked F.conv2d", floor, "floor", ref, flops=flops, bytes=1e8),
        provider("cpu", fast, "fast", ref, flops=flops * 0.5, bytes=1e8),
        provider("auto", fast, "fast", ref, flops=flops * 0.5, bytes=1e8, auto="forward=cpu (tuning 3 ms)"),
    ], op="blind_spot_conv2d", net=net, k=7, blind=blind, dilation=1, channels=48, side=side, batch=4,
        sweeps=sweeps, masked_fraction=blind * blind / 49, level="op", **{"pass": "forward"})


def model_group(name, ref, fast, **memory):
    return comparison(name, [provider("official-style eager", ref, "reference", ref, images=4, **memory),
                             provider("fused", fast, "fast", ref, images=4, **memory)], level="model")


def synthetic(device="cpu", peaks=True) -> dict:
    meta = {"device": device, "cpu": "Test CPU (avx2 fma)", "threads": 2, "torch": "2.13.0", "triton": "3.9.0",
            "atbsn": "0.1.0", "python": "3.11", "size": "quick", "command": "pytest benchmarks --bench-size=quick"}
    if device == "cuda":
        meta.update(device_name="NVIDIA H100", capability="9.0", sms=132, cuda="12.8", cudnn=91000,
                    conv_fp32_precision="tf32")
    if peaks:
        meta.update(peak_flop_per_s=PEAK_FLOPS, peak_bytes_per_s=PEAK_BANDWIDTH, peak_method="fp32 torch.matmul")
    benchmarks = [
        conv_group(1, 128, (0.020, 0.021, 0.016), ["blind"]),
        conv_group(3, 128, (0.020, 0.020, 0.010), ["blind", "resolution"], net="AT-BSN"),
        conv_group(3, 64, (0.005, 0.005, 0.004), ["resolution"]),
        model_group("ATBSN train step 4x3x128x128", 0.40, 0.20),
        model_group("DBSN inference PD r=2", 0.30, 0.10, peak_tensor_mib=12.5, peak_rss_mib=20.0),
        comparison("shifted_max_pool2d fwd+bwd", [provider("reference", 0.1, "reference", 0.1, bytes=1e9),
                                                  provider("cpu", 0.05, "fast", 0.1, bytes=1e9)],
                   op="shifted_max_pool2d", level="op"),
    ]
    return {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "atbsn": meta},
            "datetime": "2026-01-02T03:04:05+00:00", "version": "5.3.1", "benchmarks": benchmarks}
