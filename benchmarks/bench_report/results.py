"""A pytest-benchmark JSON written by ``benchmarks/``, read back as groups of timed providers.

Each benchmark is one comparison whose providers were timed interleaved (``benchmarks/conftest.py``):
its ``extra_info`` holds the comparison's parameters (op, level, layer, ...) and
``extra_info["providers"]``, one record per provider with its role (reference, floor,
alternative or fast), median, same-run speed-up and rates; each record becomes an :class:`Entry`.
Per run, ``machine_info["atbsn"]`` holds the device, CPU, versions and same-run peaks.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROLES = ("reference", "floor", "alternative", "fast")
# integer extra_info keys that order op groups (after op and pass)
_LAYER = ("k", "blind", "dilation", "channels", "side")


@dataclass(frozen=True)
class Entry:
    """One timed provider of one group."""

    group: str
    provider: str
    median: float
    extra: dict

    @property
    def role(self) -> str:
        """The role in its group: reference, floor (a bound such as the unmasked dense conv),
        alternative (another baseline a user might run) or fast."""
        role = self.extra.get("role", "fast")
        return role if role in ROLES else "fast"

    @property
    def is_reference(self) -> bool:
        return self.role == "reference"

    @property
    def level(self) -> str:
        return self.extra.get("level", "op")

    @property
    def speedup(self) -> float | None:
        return self.extra.get("speedup_vs_reference")


@dataclass(frozen=True)
class Run:
    """A whole benchmark run: its metadata and its entries."""

    machine: dict
    datetime: str
    entries: list[Entry]

    @property
    def meta(self) -> dict:
        """What ``benchmarks/conftest.py`` recorded about the run (empty for other JSON files)."""
        return self.machine.get("atbsn", {})

    @property
    def device(self) -> str:
        return self.meta.get("device", "unknown")

    @property
    def peak_flops(self) -> float | None:
        return self.meta.get("peak_flop_per_s")

    @property
    def peak_bandwidth(self) -> float | None:
        return self.meta.get("peak_bytes_per_s")

    def groups(self, level: str | None = None) -> dict[str, list[Entry]]:
        """Entries by group (of one level, or all), in ROLES order, groups in a stable order:
        op groups by op, pass and layer parameters, model groups by name."""
        by_group = defaultdict(list)
        for entry in self.entries:
            if level is None or entry.level == level:
                by_group[entry.group].append(entry)
        ordered = sorted(by_group.items(), key=lambda item: _group_key(item[1][0]))
        return {group: sorted(members, key=lambda e: ROLES.index(e.role)) for group, members in ordered}


def _group_key(entry: Entry) -> tuple:
    extra = entry.extra
    layer = tuple(str(extra.get(key, 0)).zfill(6) for key in _LAYER)
    return (entry.level != "op", extra.get("op", ""), extra.get("pass", ""), layer, entry.group)


def load_run(path: str | Path) -> Run:
    """Read a pytest-benchmark JSON file; ValueError if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    entries = [entry for b in data["benchmarks"] if b.get("stats") for entry in _entries(b)]
    return Run(data.get("machine_info", {}), data.get("datetime", ""), entries)


def _entries(bench: dict) -> list[Entry]:
    """The providers of one comparison as entries (extra: the comparison's fields, then the provider's)."""
    common = {key: value for key, value in bench["extra_info"].items() if key != "providers"}
    group = bench["group"] or bench["name"]
    return [Entry(group, record["provider"], record["median"], {**common, **record})
            for record in bench["extra_info"].get("providers", ())]
