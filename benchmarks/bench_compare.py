"""A comparison's providers and what is recorded of them (``conftest.compare`` times them)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

# per-call quantity in a provider's work -> its rate
RATES = {"images": "images_per_s", "flops": "flop_per_s", "bytes": "bytes_per_s"}


@dataclass
class Provider:
    """One contender of a comparison: ``run()`` does one timed call; ``role`` is "reference" (the
    baseline speed-ups are relative to), "floor" (a bound such as the unmasked dense conv, shown
    but not a fast path) or "fast"; ``work`` holds per-call ``flops``, ``bytes``, ``images``;
    ``info`` anything else to report (such as the backend auto chose)."""

    run: object
    role: str = "fast"
    work: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def provider_records(providers: dict[str, Provider], times: dict[str, list[float]]) -> list[dict]:
    """Per provider: median, times, speed-up vs the reference (same rounds) and rates."""
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    reference = next((medians[n] for n, p in providers.items() if p.role == "reference"), float("nan"))
    records = []
    for name, p in providers.items():
        median = medians[name]
        rates = {rate: p.work[key] / median for key, rate in RATES.items() if p.work.get(key)}
        records.append({"provider": name, "role": p.role, "median": median, "times": times[name],
                        "speedup_vs_reference": reference / median, **p.work, **rates, **p.info})
    return records
