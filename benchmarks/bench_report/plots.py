"""PNG plots of a benchmark run (matplotlib figures without pyplot, drawn by Agg): op speed-up
along each forward sweep (blind size, resolution, dilation, channels) and one bar chart of the
model-level speed-ups."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from bench_report.results import Entry, Run

# sweep tag in extra_info["sweeps"] -> (extra_info key on the x axis, axis label, whether the
# FLOP ratio changes along it and is drawn)
SWEEPS = {
    "blind": ("blind", "blind size b", True),
    "resolution": ("side", "image side (pixels)", False),
    "dilation": ("dilation", "dilation", False),
    "channels": ("channels", "channels (in = out)", False),
}
# layer parameters named in a sweep plot's title when they are the same at every point
TITLE_KEYS = ("k", "blind", "dilation", "channels", "side", "batch")
MODEL_CHART = "speedup_models.png"


def _sweep_series(sweep: str, entries: list[Entry]):
    """The points of ``sweep``: ``{(op, pass, provider, role): [(x, speed-up)]}`` for every
    non-reference provider, and ``{(op, pass): {x: reference FLOPs / fast FLOPs}}``, the speed-up
    a fast path would have at the reference's FLOP rate."""
    x_key = SWEEPS[sweep][0]
    points = [e for e in entries if sweep in e.extra.get("sweeps", ())]
    ref_flops = {e.group: e.extra.get("flops") for e in points if e.is_reference}
    series, flop_ratio = defaultdict(list), defaultdict(dict)
    for e in points:
        if e.is_reference or e.speedup is None:
            continue
        op_pass, x = (e.extra.get("op", ""), e.extra.get("pass", "")), e.extra[x_key]
        series[(*op_pass, e.provider, e.role)].append((x, e.speedup))
        if e.role == "fast" and e.extra.get("flops") and ref_flops.get(e.group):
            flop_ratio[op_pass][x] = ref_flops[e.group] / e.extra["flops"]
    return points, series, flop_ratio


def _sweep_figure(sweep: str, entries: list[Entry]):
    """Speed-up vs the swept parameter, one line per (op, pass, provider), floors dashed, the FLOP
    ratio dotted where it varies; None without points."""
    x_key, x_label, draw_flop_ratio = SWEEPS[sweep]
    points, series, flop_ratio = _sweep_series(sweep, entries)
    if not series:
        return None
    first = points[0].extra
    fixed = [f"{key}={first[key]}" for key in TITLE_KEYS
             if key != x_key and key in first and all(p.extra.get(key) == first[key] for p in points)]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for (op, pass_, provider, role), xy in sorted(series.items()):
        xs, ys = zip(*sorted(xy), strict=True)
        style = {"linestyle": "--", "marker": "x"} if role == "floor" else {"marker": "o"}
        ax.plot(xs, ys, label=f"{op} {pass_}: {provider}" + (f" ({role})" if role != "fast" else ""), **style)
    for (op, pass_), ratios in sorted(flop_ratio.items()) if draw_flop_ratio else ():
        xs, ys = zip(*sorted(ratios.items()), strict=True)
        ax.plot(xs, ys, color="grey", linestyle=":", label=f"{op} {pass_}: FLOP ratio (reference / fast)")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="reference")
    ax.set_xticks(sorted({x for xy in series.values() for x, _ in xy}))
    ax.set(xlabel=x_label, ylabel="speed-up vs reference (x)", title=f"speed-up vs {x_label}\n{', '.join(fixed)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _model_figure(run: Run):
    """Horizontal bars: the speed-up of every fast provider of every model-level group."""
    bars = [(f"{textwrap.fill(group, 48)}\n[{e.provider}]", e.speedup)
            for group, members in run.groups("model").items()
            for e in members if e.role == "fast" and e.speedup is not None]
    if not bars:
        return None
    labels, values = zip(*reversed(bars), strict=True)
    fig = Figure(figsize=(9, 1.0 + 0.75 * len(bars)))
    ax = fig.subplots()
    ax.barh(range(len(bars)), values, color="tab:blue")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.2f}x", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(bars)), labels, fontsize=7)
    ax.set(xlabel="speed-up vs reference (x, same run)", title="model-level speed-ups")
    ax.set_xlim(0, max(values) * 1.15)
    fig.tight_layout()
    return fig


def write_plots(run: Run, out_dir: Path) -> list[Path]:
    """Write every plot that has data into ``out_dir`` and remove an older file of a plot that has
    none this time; returns the paths written."""
    figures = {f"speedup_vs_{sweep}.png": _sweep_figure(sweep, run.entries) for sweep in SWEEPS}
    figures[MODEL_CHART] = _model_figure(run)
    written = []
    for name, fig in figures.items():
        if fig is None:
            (out_dir / name).unlink(missing_ok=True)
        else:
            fig.savefig(out_dir / name, dpi=110)
            written.append(out_dir / name)
    return written
