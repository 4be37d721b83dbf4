"""A small synthetic pytest-benchmark JSON, as ``benchmarks/`` writes it, for the report tests."""

PEAK_FLOPS, PEAK_BANDWIDTH = 200e9, 50e9


def bench(group, provider, median, role="fast", **extra):
    """One pytest-benchmark JSON entry as benchmarks/conftest.py leaves it."""
    return {"group": group, "name": f"test[{provider}]", "fullname": f"x.py::test[{provider}]",
            "extra_info": {"provider": provider, "role": role, **extra},
            "stats": {"median": median, "mean": median, "rounds": 3}}


def conv_group(blind, side, medians, sweeps, flops=2e9):
    """A forward blind_spot_conv2d group: reference, unmasked floor, cpu (fewer FLOPs)."""
    group = f"blind_spot_conv2d forward 4x48x{side}x{side} k=7 b={blind} dilation=1"
    params = {"op": "blind_spot_conv2d", "pass": "forward", "k": 7, "blind": blind, "dilation": 1,
              "channels": 48, "side": side, "batch": 4, "sweeps": sweeps, "bytes": 1e8, "level": "op"}
    ref, floor, fast = medians
    rows = []
    for provider, role, median, work in (("reference", "reference", ref, flops), ("unmasked", "floor", floor, flops),
                                         ("cpu", "fast", fast, flops * 0.5)):
        rows.append(bench(group, provider, median, role, **params, flops=work, flop_per_s=work / median,
                          bytes_per_s=1e8 / median, speedup_vs_reference=ref / median))
    return rows


def model_group(name, ref, fast, **extra):
    return [bench(name, "official-style eager", ref, "reference", level="model", images=4, images_per_s=4 / ref,
                  speedup_vs_reference=1.0, **extra),
            bench(name, "fused", fast, level="model", images=4, images_per_s=4 / fast,
                  speedup_vs_reference=ref / fast, **extra)]


def synthetic(device="cpu", peaks=True) -> dict:
    meta = {"device": device, "threads": 2, "torch": "2.13.0", "triton": "3.9.0", "atbsn": "0.1.0",
            "python": "3.11", "size": "quick", "command": "pytest benchmarks --bench-size=quick"}
    if device == "cuda":
        meta.update(device_name="NVIDIA H100", capability="9.0", sms=132, cuda="12.8", cudnn=91000,
                    conv_fp32_precision="tf32")
    if peaks:
        meta.update(peak_flop_per_s=PEAK_FLOPS, peak_bytes_per_s=PEAK_BANDWIDTH, peak_method="fp32 torch.matmul")
    benchmarks = [
        *conv_group(1, 128, (0.020, 0.021, 0.016), ["blind"]),
        *conv_group(3, 128, (0.020, 0.020, 0.010), ["blind", "resolution"]),
        *conv_group(3, 64, (0.005, 0.005, 0.004), ["resolution"]),
        *model_group("ATBSN train step 4x3x128x128", 0.40, 0.20),
        *model_group("DBSN inference PD r=2", 0.30, 0.10, peak_tensor_mib=12.5, peak_rss_mib=20.0),
        bench("shifted_max_pool2d fwd+bwd", "reference", 0.1, "reference", op="shifted_max_pool2d", bytes=1e9,
              bytes_per_s=1e10, speedup_vs_reference=1.0),
        bench("shifted_max_pool2d fwd+bwd", "cpu", 0.05, op="shifted_max_pool2d", bytes=1e9, bytes_per_s=2e10,
              speedup_vs_reference=2.0),
    ]
    return {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "atbsn": meta},
            "datetime": "2026-01-02T03:04:05+00:00", "version": "5.3.1", "benchmarks": benchmarks}
