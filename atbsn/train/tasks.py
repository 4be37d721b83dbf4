"""The two training tasks: AT-BSN self-supervised training, and distillation into NBSN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from atbsn.errors import InputError
from atbsn.models import ATBSN, NBSN, Distilled, init_student_from_teacher
from atbsn.models.weights import load_model
from atbsn.train.config import DistillConfig, TrainConfig
from atbsn.train.distributed import Processes
from atbsn.train.runner import Task


def _wrap(model: torch.nn.Module, processes: Processes) -> torch.nn.Module:
    if not processes.distributed:
        return model
    device_ids = [processes.device.index] if processes.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def load_teacher(path: str, backend: str) -> ATBSN:
    """The ATBSN in a weight file (the teacher half of a distilled checkpoint is taken too)."""
    loaded = load_model(path, backend=backend)
    teacher = loaded.teacher if isinstance(loaded, Distilled) else loaded
    if not isinstance(teacher, ATBSN):
        raise InputError(f"{path} holds an {type(teacher).__name__}; an ATBSN is needed here")
    return teacher


def train_task(config: TrainConfig, processes: Processes) -> Task:
    """L1(model(noisy, hole), noisy) on a freshly initialised ATBSN; validated at `val_hole`."""
    torch.manual_seed(config.seed)
    model = ATBSN(3, config.width, 3, backend=config.backend)
    if config.init:
        start = load_teacher(config.init, config.backend)
        if start.mid != config.width:
            raise InputError(f"init {config.init} has width {start.mid} but width={config.width}; set width={start.mid}")
        model.load_state_dict(start.state_dict())
    model = model.to(processes.device)
    trained = _wrap(model, processes)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(trained(batch, config.hole), batch)

    return Task("train", model, trained, loss, lambda noisy: model(noisy, config.val_hole))


def distill_task(config: DistillConfig, processes: Processes) -> Task:
    """sum over holes of L1(student(noisy), teacher(noisy, hole)), the teachers from one trunk pass.

    The student (NBSN, the teacher's width) starts from the teacher's shared weights, as the
    official code does; the teacher is frozen.
    """
    teacher = load_teacher(config.teacher, config.backend).to(processes.device).eval().requires_grad_(False)
    if config.width != teacher.mid:
        raise InputError(f"width={config.width} but the teacher {config.teacher} has width {teacher.mid}; "
                         f"the student takes the teacher's width, so set width={teacher.mid}")
    torch.manual_seed(config.seed)
    student = NBSN(3, teacher.mid, 3, backend=config.backend).to(processes.device)
    init_student_from_teacher(student, teacher)
    trained = _wrap(student, processes)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = teacher.forward_holes(batch, config.holes)
        output = trained(batch)
        return sum(F.l1_loss(output, target) for target in targets)

    return Task("distill", student, trained, loss, student)
