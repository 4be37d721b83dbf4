"""BENCHMARKS.md from a benchmark run: a header (CPU or GPU figures, machine, threads, versions,
date, command, same-run peaks), a summary of speed-ups, the plots and one table per group."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bench_report.results import Entry, Run

# extra_info key of a peak-memory figure -> its column
MEMORY_COLUMNS = {
    "peak_tensor_mib": "peak tensors MiB", "peak_rss_mib": "peak RSS MiB", "peak_cuda_mib": "peak CUDA MiB",
}
VERSIONS = ("torch", "triton", "atbsn", "python")
# device -> (FLOP/s unit, its scale)
FLOP_UNITS = {"cuda": ("TFLOP/s", 1e12)}
DEFAULT_FLOP_UNIT = ("GFLOP/s", 1e9)

READING = (
    "Every provider of a comparison is timed in the same run, interleaved (each round calls every "
    "provider once, in alternating order), after a warm-up call each; speed-up = reference median / "
    "median over the same rounds. FLOP/s counts the multiply-adds a provider performs (fast kernels skip masked taps, the "
    "reference multiplies them by zero), so a faster kernel can show a lower rate. GB/s counts "
    "compulsory traffic (each tensor read or written once per pass). The roofline of each call: % peak "
    "is of the same-run GEMM peak (a kernel can beat torch.matmul's BLAS), % bandwidth of the same-run "
    "copy bandwidth, and bound names the roof that limits it. The machines are shared: compare ratios "
    "within a run, not absolute times across runs."
)


def format_seconds(seconds: float) -> str:
    """Three significant digits in s, ms or µs: ``1.23 s``, ``45.6 ms``, ``789 µs``."""
    unit, scale = next(((u, s) for u, s in (("s", 1.0), ("ms", 1e-3)) if seconds >= s), ("µs", 1e-6))
    value = seconds / scale
    return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def bound(entry: Entry, run: Run) -> str:
    """Which roof of the roofline limits the call: "compute" when its FLOPs take longer at the
    GEMM peak than its bytes at the copy bandwidth, else "memory"; "" when that is unknown."""
    flops, moved = entry.extra.get("flops"), entry.extra.get("bytes")
    if not moved or not run.peak_bandwidth:
        return ""
    if not flops:
        return "memory"
    if not run.peak_flops:
        return ""
    return "compute" if flops / run.peak_flops > moved / run.peak_bandwidth else "memory"


def _columns(run: Run) -> list[tuple[str, Callable[[Entry], str]]]:
    """(heading, cell(entry)) for every column a table may have; a table keeps those with any value."""
    unit, scale = FLOP_UNITS.get(run.device, DEFAULT_FLOP_UNIT)

    def rate(key, div, digits):
        return lambda e: f"{e.extra[key] / div:.{digits}f}" if e.extra.get(key) is not None else ""

    def share(key, peak):
        return lambda e: _percent(e.extra[key] / peak) if e.extra.get(key) and peak else ""

    def memory(key):
        return lambda e: f"{e.extra[key]:.1f}" if e.extra.get(key) is not None else ""

    return [
        ("provider", lambda e: e.provider + (f" ({e.role})" if e.role != "fast" and e.provider != e.role else "")),
        ("median", lambda e: format_seconds(e.median)),
        ("speed-up", lambda e: "" if e.speedup is None else f"{e.speedup:.2f}x"),
        ("images/s", rate("images_per_s", 1, 2)),
        (unit, rate("flop_per_s", scale, 1)),
        ("% peak", share("flop_per_s", run.peak_flops)),
        ("GB/s", rate("bytes_per_s", 1e9, 1)),
        ("% bandwidth", share("bytes_per_s", run.peak_bandwidth)),
        ("bound", lambda e: bound(e, run)),
        ("auto chose", lambda e: e.extra.get("auto", "")),
        *((heading, memory(key)) for key, heading in MEMORY_COLUMNS.items()),
    ]


def group_table(entries: list[Entry], run: Run) -> list[str]:
    """The markdown table of one group: the columns that have a value in some row."""
    cells = [(heading, [cell(e) for e in entries]) for heading, cell in _columns(run)]
    kept = [(heading, values) for heading, values in cells if any(values)]
    return _table([h for h, _ in kept], [list(row) for row in zip(*(v for _, v in kept), strict=True)])


def _machine(run: Run) -> str:
    meta, cpu = run.meta, run.machine.get("cpu", {})
    model = meta.get("cpu") or cpu.get("brand_raw", run.machine.get("machine", "unknown CPU"))
    cpu_name = f"{model}, {cpu.get('count', '?')} cores"
    if run.device != "cuda":
        return cpu_name
    return (f"{meta.get('device_name')} (compute capability {meta.get('capability')}, {meta.get('sms')} SMs), "
            f"CUDA {meta.get('cuda')}, cuDNN {meta.get('cudnn')}, fp32 convs in {meta.get('conv_fp32_precision')}; "
            f"host {cpu_name}")


def _date(run: Run) -> str:
    try:
        return datetime.fromisoformat(run.datetime).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return run.datetime or "unknown"


def header(run: Run, command: str | None) -> list[str]:
    meta = run.meta
    kind = {"cuda": "GPU figures", "cpu": "CPU figures"}.get(run.device, "figures from an unknown device")
    rows = [
        ["device", _machine(run)],
        ["threads", str(meta.get("threads", "?"))],
        ["allocator", str(meta.get("allocator", "not recorded"))],
        ["versions", ", ".join(f"{name} {meta[name]}" for name in VERSIONS if name in meta)],
        ["date", _date(run)],
        ["command", f"`{command or meta.get('command', 'unknown')}`"],
        ["bench size", str(meta.get("size", "?"))],
    ]
    unit, scale = FLOP_UNITS.get(run.device, DEFAULT_FLOP_UNIT)
    if run.peak_flops:
        rows.append(["GEMM peak", f"{run.peak_flops / scale:.1f} {unit} ({meta.get('peak_method', '')})"])
    if run.peak_bandwidth:
        rows.append(["copy bandwidth", f"{run.peak_bandwidth / 1e9:.1f} GB/s"])
    return ["# atbsn benchmarks", "", f"**{kind}**, all from one run.", "", *_table(["", ""], rows), "", READING]


def summary(run: Run) -> list[str]:
    """Speed-up of every fast provider over its group's reference."""
    rows = [[group, e.provider, f"{e.speedup:.2f}x"]
            for level in ("model", "op") for group, members in run.groups(level).items()
            for e in members if e.role == "fast" and e.speedup is not None]
    return ["## Summary", "", *_table(["group", "fast provider", "speed-up"], rows)] if rows else []


def layer_summary(run: Run) -> list[str]:
    """One row per real-BSN-layer comparison: the masked fraction, auto's speed-up over the masked
    F.conv2d, what auto chose, and each backend's own speed-up."""
    rows = []
    for group, members in run.groups("op").items():
        first = members[0].extra
        if first.get("op") != "blind_spot_conv2d" or first.get("net", "sweep") == "sweep":
            continue
        by_name = {e.provider: e for e in members}
        auto = by_name.get("auto")
        others = ", ".join(f"{e.provider} {e.speedup:.2f}x" for e in members
                           if e.role in ("fast", "alternative") and e.provider != "auto" and e.speedup is not None)
        mask = first["blind"] if isinstance(first["blind"], str) else f"b={first['blind']}"
        size = f", {first['batch']}x{first['side']}²" if "batch" in first and "side" in first else ""
        rows.append([first["net"], f"{first['channels']} ch {first['k']}x{first['k']} {mask} d={first['dilation']}{size}",
                     first.get("pass", ""), _percent(first.get("masked_fraction")),
                     "" if auto is None else f"**{auto.speedup:.2f}x**", "" if auto is None else auto.extra.get("auto", ""),
                     others])
    header = ["net", "layer", "pass", "masked", "auto vs masked F.conv2d", "auto chose", "each backend"]
    return ["## Real BSN layers", "", *_table(header, rows)] if rows else []


def render(run: Run, command: str | None = None, plots: list[Path] = ()) -> str:
    """The whole BENCHMARKS.md; ``plots`` are PNG files beside it."""
    lines = header(run, command) + [""] + layer_summary(run) + [""] + summary(run)
    if plots:
        lines += ["", "## Plots"] + [line for p in plots for line in ("", f"![{p.stem}]({p.name})")]
    for level, title in (("model", "Model level"), ("op", "Op level")):
        groups = run.groups(level)
        if groups:
            lines += ["", f"## {title}"]
        for group, members in groups.items():
            lines += ["", f"### {group}", "", *group_table(members, run)]
    return "\n".join(lines) + "\n"
