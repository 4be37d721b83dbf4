"""Where an AT-BSN training step's time goes: ``torch.profiler`` over a few steps of our fused model
and of the official AT-BSN code (or the official-style rewrite), same weights, same process.

    python benchmarks/profile_train_step.py [--official-atbsn PATH] [--steps 3] [--batch 4] [--side 128]

Prints one table: per op (self CPU time, children excluded), each model's milliseconds and share of
its total, the ops sorted by the larger of the two; ops under 0.5% of both totals are summed in one
"other" row. The steps are 4 x 3 x 128 x 128, hole 9, L1 loss, backward and Adam, as in
``test_bench_models.test_atbsn_train_step``; one warm-up step per model runs before the profile
(``backend="auto"`` measures there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_device import describe  # noqa: E402
from bench_models import adam_step, l1, load_official_atbsn, noisy  # noqa: E402

from atbsn.models import ATBSN  # noqa: E402
from atbsn.models.official_style import OfficialStyleATBSN  # noqa: E402

SMALL_SHARE = 0.005


def self_times_ms(step, steps: int) -> dict[str, float]:
    """{op name: self CPU milliseconds} over ``steps`` calls of ``step``, after one warm-up call."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages()}


def table(times: dict[str, dict[str, float]]) -> str:
    """Markdown rows: op, then per model "ms (share)"; small ops folded into "other"."""
    names = list(times)
    totals = {m: sum(t.values()) for m, t in times.items()}
    ops = {op for t in times.values() for op in t}

    def share(model, op):
        return times[model].get(op, 0.0) / totals[model]

    big = sorted((op for op in ops if max(share(m, op) for m in names) >= SMALL_SHARE),
                 key=lambda op: -max(share(m, op) for m in names))
    rows = [f"| op | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for op in big:
        rows.append(f"| `{op}` | " + " | ".join(f"{times[m].get(op, 0.0):.0f} ms ({100 * share(m, op):.1f}%)"
                                              for m in names) + " |")
    other = {m: totals[m] - sum(times[m].get(op, 0.0) for op in big) for m in names}
    rows.append("| other | " + " | ".join(f"{other[m]:.0f} ms ({100 * other[m] / totals[m]:.1f}%)"
                                           for m in names) + " |")
    rows.append("| total | " + " | ".join(f"{totals[m]:.0f} ms" for m in names) + " |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-atbsn", metavar="PATH", help="the official codes/models/modules/arch_atbsn.py")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--side", type=int, default=128)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    fused = ATBSN()
    baseline_name = "official AT-BSN code" if args.official_atbsn else "official-style eager"
    try:
        baseline = load_official_atbsn(args.official_atbsn).ATBSN() if args.official_atbsn else OfficialStyleATBSN()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    baseline.load_state_dict(fused.state_dict())
    x = noisy(args.batch, args.side)
    models = {"fused": fused, baseline_name: baseline}
    times = {name: self_times_ms(adam_step(m.parameters(), lambda m=m: l1(m(x, 9), x)), args.steps)
             for name, m in models.items()}
    info = describe()
    print(f"{info['cpu']}, {info['threads']} threads, torch {info['torch']}; {args.steps} steps of "
          f"{args.batch}x3x{args.side}x{args.side}, hole 9, L1, Adam; self CPU time\n")
    print(table(times))


if __name__ == "__main__":
    main()
