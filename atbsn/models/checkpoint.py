"""Load official AT-BSN checkpoints and initialise a student from a teacher.

Official checkpoints are plain ``torch.save(state_dict)`` files: an AT-BSN (``unet.*`` and
``nin_A/B/C.*``), a student (``unet.*`` only) or a distilled pair (``nbsn.*`` + ``bsn.*``); keys
may carry DataParallel's ``module.`` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from atbsn.models.atbsn import ATBSN, NBSN

__all__ = ["Distilled", "load_official", "model_from_state_dict", "init_student_from_teacher", "STUDENT_OWN_KEYS"]

# Keys the official code does not copy from teacher to student (the head, and dec1 whose output differs).
STUDENT_OWN_KEYS = ("nin_A.", "nin_B.", "nin_C.", "unet.dec1.conv1.", "unet.dec1.conv2.")


class Distilled(NamedTuple):
    """A distilled checkpoint: the student and the frozen teacher it learned from."""

    student: NBSN
    teacher: ATBSN


def _strip_prefix(state_dict: dict, prefix: str) -> dict:
    return {key[len(prefix):] if key.startswith(prefix) else key: value for key, value in state_dict.items()}


def _sub_dict(state_dict: dict, prefix: str) -> dict:
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def model_from_state_dict(state_dict: dict, *, backend: str = "auto") -> ATBSN | NBSN | Distilled:
    """Build the model(s) a state dict describes (widths read off its shapes) and load it, strictly."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError("a checkpoint must hold a state dict (a dict of tensors)")
    state_dict = _strip_prefix(state_dict, "module.")
    if any(key.startswith("nbsn.") for key in state_dict) and any(key.startswith("bsn.") for key in state_dict):
        student = model_from_state_dict(_sub_dict(state_dict, "nbsn."), backend=backend)
        teacher = model_from_state_dict(_sub_dict(state_dict, "bsn."), backend=backend)
        if not (isinstance(student, NBSN) and isinstance(teacher, ATBSN)):
            raise ValueError("a distilled checkpoint needs an NBSN under 'nbsn.' and an ATBSN under 'bsn.'")
        return Distilled(student, teacher)
    intro = state_dict.get("unet.intro.conv.weight")
    last = state_dict.get("nin_C.weight", state_dict.get("unet.dec1.conv2.conv.weight"))
    if intro is None or last is None:
        sample = ", ".join(sorted(state_dict)[:5])
        raise ValueError(f"not an AT-BSN checkpoint: expected 'unet.intro.conv.weight' and 'nin_C.weight' "
                         f"(ATBSN) or 'unet.dec1.conv2.conv.weight' (NBSN); found keys like {sample}")
    mid, in_ch = intro.shape[:2]
    out_ch = last.shape[0]
    model_type = ATBSN if "nin_C.weight" in state_dict else NBSN
    model = model_type(in_ch, mid, out_ch, backend=backend)
    model.load_state_dict(state_dict)
    return model


def load_official(path, *, backend: str = "auto") -> ATBSN | NBSN | Distilled:
    """Read an official checkpoint file (any key layout above) into our models, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    return model_from_state_dict(state_dict, backend=backend)


def init_student_from_teacher(student: NBSN, teacher: ATBSN) -> list[str]:
    """Copy every teacher weight the official code shares into the student; returns the copied keys.

    All keys but ``nin_A/B/C`` and ``unet.dec1`` (the official ``load_network_bsn2nbsn``).
    """
    if not isinstance(student, NBSN) or not isinstance(teacher, ATBSN):
        raise TypeError(f"expected (NBSN, ATBSN), got ({type(student).__name__}, {type(teacher).__name__})")
    shared = {key: value for key, value in teacher.state_dict().items() if not key.startswith(STUDENT_OWN_KEYS)}
    student_state = student.state_dict()
    mismatched = [key for key, value in shared.items() if student_state[key].shape != value.shape]
    if mismatched:
        raise ValueError(f"student and teacher differ in width at {mismatched[:3]}")
    student.load_state_dict({**student_state, **shared})
    return sorted(shared)
