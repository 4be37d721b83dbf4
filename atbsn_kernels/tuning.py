"""The measured dispatch behind ``backend="auto"``: time the candidates once per signature, keep the fastest.

The first call of a new *signature* (op, direction, dtype, sizes, taps, ... on one device) times
every candidate backend on the call's own tensors: one warm-up call each, then ``REPEATS``
rounds in alternating order (A B, B A, ...). Each candidate is judged by the median over rounds
of its time divided by the vendor conv's in the same round (a paired ratio: both calls of a round
see the same state of the machine), and the vendor conv wins ties: another candidate must be at
least ``TIE_MARGIN`` faster. A close call (a best ratio within ``CLOSE_BAND`` of that threshold)
gets ``REPEATS`` more rounds before it is decided. Without a vendor candidate the smallest median
time wins. A candidate that raises is skipped with a warning. Each op names its directions (the
conv: forward, backward, and the backward of calls that want only the input or only the weight
gradient); they may pick different backends.

Choices live in memory and in a JSON file (``tuning.json`` in ``ATBSN_CACHE_DIR``, else
``$XDG_CACHE_HOME/atbsn``, else ``~/.cache/atbsn``), under a key naming the device, the thread
count and the torch, triton and atbsn versions, so a second process reuses them and a new
machine or version measures afresh. The file is written atomically (temporary file, rename);
an unreadable or corrupt one is ignored with a warning. ``ATBSN_AUTOTUNE=0`` turns measuring
off: ``auto`` then takes the first candidate in the fixed order of
``atbsn_kernels.backends.AUTO_ORDER`` (the tests use this where they need determinism).
Choices and times are logged at debug level on the ``atbsn_kernels`` logger.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from atbsn_kernels._version import __version__
from atbsn_kernels.machine import describe_cpu

__all__ = [
    "AUTOTUNE_ENV",
    "CACHE_DIR_ENV",
    "CLOSE_BAND",
    "REPEATS",
    "TIE_MARGIN",
    "Decision",
    "TUNER",
    "Tuner",
    "autotune_enabled",
    "cache_path",
    "environment_key",
    "size_bucket",
    "tune",
]

AUTOTUNE_ENV = "ATBSN_AUTOTUNE"
CACHE_DIR_ENV = "ATBSN_CACHE_DIR"
CACHE_FORMAT = 1
REPEATS = 5
TIE_MARGIN = 0.03
CLOSE_BAND = 0.05
VENDOR = "vendor"

logger = logging.getLogger("atbsn_kernels")


def autotune_enabled() -> bool:
    """False when ``ATBSN_AUTOTUNE=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(AUTOTUNE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_path() -> Path:
    """Where the choices are kept: ``tuning.json`` in the cache folder (see the module docstring)."""
    folder = os.environ.get(CACHE_DIR_ENV)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "atbsn")
    return Path(folder) / "tuning.json"


def size_bucket(size: int) -> int:
    """The power of two at or above ``size`` (0 stays 0): sizes in one bucket share a choice."""
    return 0 if size <= 0 else 1 << (int(size) - 1).bit_length()


@functools.lru_cache(maxsize=None)
def _versions() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "none"

    return f"torch {torch.__version__} | triton {version('triton')} | atbsn {__version__}"


@functools.lru_cache(maxsize=64)
def _environment_key(device: torch.device, threads: int) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{describe_cpu()}, {threads} threads"
    return f"{device.type}: {name} | {_versions()}"


def environment_key(device: torch.device) -> str:
    """What a choice depends on besides the call: device (the CPU's model, ISA flags and thread
    count), and the torch, triton and atbsn versions."""
    return _environment_key(device, torch.get_num_threads() if device.type == "cpu" else 0)


@dataclass
class Decision:
    """A choice for one signature: the backend, each candidate's median time (ms) and what
    measuring cost (ms, all calls included); ``failed`` maps skipped candidates to their error."""

    choice: str
    median_ms: dict[str, float] = field(default_factory=dict)
    tuning_ms: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    date: str = ""


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ratios_to_vendor(times: dict[str, list[float]]) -> dict[str, float]:
    """Each other candidate's median over rounds of its time / the vendor's time in that round."""
    vendor = times[VENDOR]
    return {name: statistics.median(t / max(v, 1e-12) for t, v in zip(ts, vendor))
            for name, ts in times.items() if name != VENDOR}


def _best_against_vendor(times: dict[str, list[float]]) -> tuple[str, float] | None:
    """The candidate with the smallest paired ratio to the vendor conv, and that ratio; None
    without a vendor candidate or without another one."""
    if VENDOR not in times or len(times) == 1:
        return None
    ratios = _ratios_to_vendor(times)
    best = min(ratios, key=ratios.get)
    return best, ratios[best]


def _pick(times: dict[str, list[float]]) -> str:
    """The fastest candidate by paired ratios to the vendor conv, which wins unless another is at
    least TIE_MARGIN faster; the smallest median time without a vendor candidate."""
    best = _best_against_vendor(times)
    if best is None:
        return min(times, key=lambda name: statistics.median(times[name]))
    name, ratio = best
    return name if ratio < 1 - TIE_MARGIN else VENDOR


def _close_call(times: dict[str, list[float]]) -> bool:
    """True when the best paired ratio to the vendor lies within CLOSE_BAND of the tie threshold."""
    best = _best_against_vendor(times)
    return best is not None and abs(best[1] - (1 - TIE_MARGIN)) < CLOSE_BAND


def measure(candidates: dict[str, Callable[[], object]], device: torch.device, repeats: int = REPEATS) -> Decision:
    """Time every candidate (warm-up, then ``repeats`` alternating rounds, ``repeats`` more for a
    close call) and pick the winner."""
    start = time.perf_counter()
    failed = {}
    for name, run in candidates.items():
        try:
            run()
            _synchronize(device)
        except Exception as exc:  # a candidate that cannot run this call is skipped, never fatal
            failed[name] = f"{type(exc).__name__}: {exc}"
    names = [name for name in candidates if name not in failed]
    if not names:
        raise RuntimeError(f"every candidate backend failed: {failed}")
    times = {name: [] for name in names}

    def run_rounds(count: int) -> None:
        for _ in range(count):
            for name in names if len(times[names[0]]) % 2 == 0 else names[::-1]:
                _synchronize(device)
                t0 = time.perf_counter()
                candidates[name]()
                _synchronize(device)
                times[name].append(time.perf_counter() - t0)

    if len(names) > 1:
        run_rounds(repeats)
        if _close_call(times):
            run_rounds(repeats)
    medians = {name: 1e3 * statistics.median(ts) for name, ts in times.items() if ts}
    choice = _pick(times) if medians else names[0]
    return Decision(choice, medians, 1e3 * (time.perf_counter() - start), failed, datetime.date.today().isoformat())


class Tuner:
    """Choices per (environment, signature), in memory and in the JSON file at :func:`cache_path`."""

    def __init__(self):
        self._lock = threading.RLock()
        self._memory: dict[tuple[str, str], Decision] = {}
        self._loaded: set[str] = set()
        self._warned: set[str] = set()

    def clear(self) -> None:
        """Forget every choice held in memory (the file stays)."""
        with self._lock:
            self._memory.clear()
            self._loaded.clear()

    def choose(self, device: torch.device, signature: str, candidates: Callable[[], dict[str, Callable[[], object]]],
               order: tuple[str, ...]) -> str:
        """The backend for ``signature`` on ``device``. ``order`` lists the candidates in the fixed
        order; ``candidates()`` builds ``{name: call}`` for them, only when measuring."""
        if len(order) == 1 or not autotune_enabled() or _capturing(device):
            return order[0]
        env = environment_key(device)
        with self._lock:
            decision = self._lookup(env, signature, order)
            if decision is None:
                decision = measure(candidates(), device)
                for name, error in decision.failed.items():
                    warnings.warn(f"atbsn auto: skipping backend {name!r} for {signature}: {error}", stacklevel=2)
                self._memory[(env, signature)] = decision
                self._save(env, signature, decision)
                logger.debug("auto %s -> %s (median ms %s; tuning took %.1f ms)", signature, decision.choice,
                             decision.median_ms, decision.tuning_ms)
        return decision.choice

    def decision(self, device: torch.device, signature: str) -> Decision | None:
        """The choice known for ``signature`` on ``device`` (file or memory), or None."""
        env = environment_key(device)
        with self._lock:
            self._load(env)
            return self._memory.get((env, signature))

    def decisions(self, device: torch.device) -> dict[str, Decision]:
        """Every choice known for ``device``'s environment (file and memory), by signature."""
        env = environment_key(device)
        with self._lock:
            self._load(env)
            return {sig: d for (e, sig), d in sorted(self._memory.items()) if e == env}

    def _lookup(self, env: str, signature: str, order: tuple[str, ...]) -> Decision | None:
        self._load(env)
        decision = self._memory.get((env, signature))
        return decision if decision is not None and decision.choice in order else None

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=4)

    def _read_file(self) -> dict:
        """The file's content, or an empty cache when it is missing, unreadable or corrupt."""
        path = cache_path()
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(
                    data.get("environments"), dict):
                raise ValueError(f"not an atbsn tuning cache of format {CACHE_FORMAT}")
            return data
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as err:
            self._warn_once(f"atbsn auto: ignoring the tuning cache {path} ({err}); it will be measured again")
        return {"format": CACHE_FORMAT, "environments": {}}

    def _load(self, env: str) -> None:
        if env in self._loaded:
            return
        self._loaded.add(env)
        entries = self._read_file()["environments"].get(env, {})
        for signature, record in entries.items() if isinstance(entries, dict) else ():
            try:
                self._memory.setdefault((env, signature), Decision(**record))
            except TypeError:
                self._warn_once(f"atbsn auto: ignoring a malformed entry of {cache_path()}: {signature}")

    def _save(self, env: str, signature: str, decision: Decision) -> None:
        """Merge the decision into the file, written atomically; a failure only warns."""
        path = cache_path()
        data = self._read_file()
        data["environments"].setdefault(env, {})[signature] = asdict(decision)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tuning-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as err:
            self._warn_once(f"atbsn auto: cannot write the tuning cache {path} ({err}); choices stay in memory")
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _capturing(device: torch.device) -> bool:
    """True while a CUDA graph is being captured: nothing may be timed then."""
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


TUNER = Tuner()


def tune(model: torch.nn.Module, *example_inputs, backward: bool = True, **example_kwargs) -> dict[str, Decision]:
    """Measure the backends of every fused op of ``model`` now, ahead of a run.

    Runs ``model(*example_inputs, **example_kwargs)`` once and, with ``backward``, its backward
    from random output gradients, so each op's forward, input-gradient and weight-gradient
    signatures at these shapes are measured (or found in the cache). The parameters' ``.grad``
    are left as they were. Returns the decisions known for the inputs' device, by signature.
    Raises RuntimeError when measuring is off (``ATBSN_AUTOTUNE=0``).
    """
    if not autotune_enabled():
        raise RuntimeError(f"{AUTOTUNE_ENV}=0: measuring is off, so there is nothing to tune")
    tensors = [t for t in (*example_inputs, *example_kwargs.values()) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise TypeError("tune needs at least one example input tensor")
    params = [p for p in model.parameters() if p.requires_grad]
    previous = [p.grad for p in params]
    try:
        with torch.set_grad_enabled(backward):
            outputs = model(*example_inputs, **example_kwargs)
        outputs = [o for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])
                   if isinstance(o, torch.Tensor) and o.requires_grad]
        if backward and outputs:
            torch.autograd.backward(outputs, [torch.randn_like(o) for o in outputs])
    finally:
        for p, grad in zip(params, previous):
            p.grad = grad
    return TUNER.decisions(tensors[0].device)
