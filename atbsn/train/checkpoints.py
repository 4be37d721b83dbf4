"""Run checkpoints: written atomically (temp file + rename), read with `weights_only=True`."""

from __future__ import annotations

from pathlib import Path

import torch

from atbsn.data.atomic import atomic_path
from atbsn.errors import InputError
from atbsn.models.weights import RUN_CHECKPOINT_FORMAT, read_torch_file

_REQUIRED = ("kind", "config", "step", "best_psnr", "model", "optimizer", "scheduler", "rng")
RUN_FILES = ("last.pt", "best.pt", "model.safetensors", "metrics.jsonl")  # what a run writes into `out`
RESUME_KEYS = ("width", "batch", "crop", "steps", "seed")  # a resumed run must keep these


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path`; a crash mid-write leaves the previous file intact."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: str | Path) -> dict:
    """Read a run checkpoint; a truncated, corrupt or foreign file raises InputError, nothing is half-loaded."""
    path = Path(path)
    state = read_torch_file(path, "checkpoint", hint="; set resume=false overwrite=true to start over")
    if not isinstance(state, dict) or state.get("format") != RUN_CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an atbsn run checkpoint (no format {RUN_CHECKPOINT_FORMAT!r})")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def check_same_run(path: Path, state: dict, kind: str, config) -> None:
    """InputError unless the checkpoint `state` (read from `path`) can be resumed by a `kind` run with `config`."""
    if state["kind"] != kind:
        raise InputError(f"{path} is a {state['kind']} checkpoint; this is {kind}: use another 'out'")
    for key in RESUME_KEYS:
        if state["config"].get(key) != getattr(config, key):
            raise InputError(f"{path} was written with {key}={state['config'].get(key)} but this run has "
                             f"{key}={getattr(config, key)}; resume with the same value, choose another 'out', "
                             f"or set resume=false overwrite=true to replace that run")


def check_run_folder(config, kind: str) -> list[Path]:
    """Before any data loads: a run already in `config.out` may be resumed or, only with overwrite=true, replaced.

    With resume=true and `out/last.pt`, the checkpoint must match this run (`check_same_run`).
    Otherwise any run file there (`RUN_FILES`) is an InputError unless `config.overwrite`.
    Returns the files a new run replaces (for `remove_old_run`, once everything else is ready).
    """
    out = Path(config.out)
    last = out / "last.pt"
    if config.resume and last.is_file():
        check_same_run(last, load_checkpoint(last), kind, config)
        return []
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    if found and not config.overwrite:
        why = "resume=false" if not config.resume else "there is no last.pt to resume from"
        raise InputError(f"{out} holds a run ({', '.join(path.name for path in found)}) and {why}; "
                         f"choose another 'out', or set overwrite=true to replace that run")
    return found


def remove_old_run(files: list[Path], kind: str) -> None:
    """Remove the old run's `files` (from `check_run_folder`), saying so."""
    if files:
        for path in files:
            path.unlink(missing_ok=True)
        print(f"{kind}: overwrite=true: removed the old run's {', '.join(p.name for p in files)} "
              f"from {files[0].parent}")
