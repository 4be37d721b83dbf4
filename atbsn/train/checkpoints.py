"""Run checkpoints: written atomically (temp file + rename), read with `weights_only=True`."""

from __future__ import annotations

from pathlib import Path

import torch

from atbsn.data.atomic import atomic_path
from atbsn.errors import InputError
from atbsn.models.weights import RUN_CHECKPOINT_FORMAT, read_torch_file

_REQUIRED = ("kind", "config", "step", "best_psnr", "model", "optimizer", "scheduler", "rng")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path`; a crash mid-write leaves the previous file intact."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: str | Path) -> dict:
    """Read a run checkpoint; a truncated, corrupt or foreign file raises InputError, nothing is half-loaded."""
    path = Path(path)
    state = read_torch_file(path, "checkpoint", hint="; delete it to start over, or set resume=false")
    if not isinstance(state, dict) or state.get("format") != RUN_CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an atbsn run checkpoint (no format {RUN_CHECKPOINT_FORMAT!r})")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise InputError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state
