"""Pick a trained denoiser: the shipped weights or any weight file, AT-BSN at a hole size or the
NBSN student, on a device and backend. Used by `atbsn denoise`, `atbsn eval` and `atbsn demo`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from atbsn.backend import require_backend
from atbsn.commands.options import MODEL_CHOICES
from atbsn.errors import InputError
from atbsn.models import ATBSN, NBSN, Distilled
from atbsn.models.weights import load_model
from atbsn.train.distributed import pick_device

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Trained on the embedded data (see README, "Shipped weights"); fp16 safetensors.
SHIPPED_WEIGHTS = {"atbsn": WEIGHTS_DIR / "embedded_atbsn.safetensors",
                   "student": WEIGHTS_DIR / "embedded_student.safetensors"}


@dataclass
class Denoiser:
    """A model ready to denoise (N, 3, H, W) float images in [0, 255] on `device`."""

    module: ATBSN | NBSN
    hole: int | None
    device: torch.device

    @property
    def name(self) -> str:
        return f"ATBSN hole {self.hole}" if self.hole is not None else "student (NBSN)"

    def __call__(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.module(noisy) if self.hole is None else self.module(noisy, self.hole)


def _pick(loaded, model: str | None, path: Path) -> ATBSN | NBSN:
    if isinstance(loaded, Distilled):
        return loaded.teacher if model == "atbsn" else loaded.student
    kind = "atbsn" if isinstance(loaded, ATBSN) else "student"
    if model is not None and model != kind:
        raise InputError(f"{path} holds an {type(loaded).__name__}, not the {model} asked for with --model")
    return loaded


def load_denoiser(weights: str | Path | None = None, model: str | None = None, hole: int = 3,
                  backend: str = "auto", device: str = "auto") -> Denoiser:
    """`weights` (None: the shipped weights of `model`, default the student) as a Denoiser.

    `model` picks the half of a distilled checkpoint and must match a single-model file.
    `hole` (0 or odd) applies to AT-BSN only.
    """
    if model is not None and model not in MODEL_CHOICES:
        raise InputError(f"model must be one of {', '.join(MODEL_CHOICES)}, got {model!r}")
    if hole < 0 or (hole > 0 and hole % 2 == 0):
        raise InputError(f"hole must be 0 or an odd positive number, got {hole}")
    target = pick_device(device)
    require_backend(backend, target)
    path = Path(weights) if weights is not None else SHIPPED_WEIGHTS[model or "student"]
    module = _pick(load_model(path, backend=backend), model, path)
    return Denoiser(module.to(target).eval(), hole if isinstance(module, ATBSN) else None, target)
