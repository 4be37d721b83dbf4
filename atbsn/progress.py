"""Progress reports that suit where they go: a tqdm bar on a terminal; in a log file or a pipe,
where a bar's carriage-return frames would pile up, one plain line every tenth of the work."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

from tqdm import tqdm

__all__ = ["progress"]

LINES = 10  # plain lines per job when stderr is not a terminal


class LineProgress:
    """tqdm's `update` / `set_postfix` / `close` / iteration, printing ``desc: n/total unit (p%)`` lines.

    A line is printed each time another tenth of `total` is done (and at the end); a job
    without a known total, or with `leave=False` (a transient bar), prints nothing.
    """

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, leave: bool,
                 initial: int):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else _length(iterable)
        self.quiet = not leave or not self.total
        self.n, self.postfix = initial, ""
        self.next_line = self._after(initial)

    def _after(self, n: int) -> int:
        """The count at which the next line is due."""
        step = max(1, -(-self.total // LINES)) if self.total else 1
        return (n // step + 1) * step

    def update(self, count: int = 1) -> None:
        self.n += count
        if not self.quiet and (self.n >= self.next_line or self.n == self.total):
            self.next_line = self._after(self.n)
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({100 * self.n // self.total}%)"
                  f"{self.postfix}", file=sys.stderr, flush=True)

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {key} {value}" for key, value in values.items())

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             leave: bool = True, disable: bool = False, initial: int = 0):
    """A progress report over `iterable` (or `total` updates): tqdm on a terminal, else `LineProgress`."""
    if disable:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial, dynamic_ncols=True)
    return LineProgress(iterable, total, desc, unit, leave, initial)
