"""The training loop `atbsn train` and `atbsn distill` share: crops, Adam, cosine schedule,
logging, validation, atomic checkpoints and exact resume.

A task (see `tasks.py`) supplies the trainable model, the loss of a batch and the denoiser to
validate. Everything else lives here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from atbsn.data.crops import CropSampler
from atbsn.errors import InputError, TrainingDiverged
from atbsn.evaluation import mean_scores, score_images
from atbsn.models.weights import RUN_CHECKPOINT_FORMAT, save_weights
from atbsn.progress import progress as show_progress
from atbsn.train.checkpoints import check_same_run, load_checkpoint, save_checkpoint
from atbsn.train.config import RunConfig
from atbsn.train.distributed import Processes, gather_from_processes, mean_over_processes, wait_for_all
from atbsn.train.logs import RunLog
from atbsn.train.precision import uses_bf16


@dataclass
class Task:
    """What differs between training and distilling.

    `model`: the module whose weights are trained and saved (unwrapped); `trained`: the module
    the loss calls (the DDP wrapper when distributed, else `model`); `loss(batch)`: the scalar
    loss of a (B, 3, crop, crop) batch; `denoise(noisy)`: the validated denoiser, (1, 3, H, W)
    -> (1, 3, H, W).
    """

    kind: str
    model: torch.nn.Module
    trained: torch.nn.Module
    loss: Callable[[torch.Tensor], torch.Tensor]
    denoise: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Progress:
    step: int = 0
    best_psnr: float = -math.inf


def _rng_states(sampler: CropSampler, processes: Processes) -> dict:
    states = {"torch": torch.get_rng_state(), "samplers": gather_from_processes(sampler.state(), processes)}
    if processes.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(processes.device)
    return states


def _checkpoint(task: Task, config: RunConfig, optimizer, scheduler, progress: Progress, rng: dict) -> dict:
    return {
        "format": RUN_CHECKPOINT_FORMAT,
        "kind": task.kind,
        "config": dataclasses.asdict(config),
        "step": progress.step,
        "best_psnr": progress.best_psnr,
        "model": task.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }


def _restore(path: Path, task: Task, config: RunConfig, optimizer, scheduler, sampler: CropSampler,
             processes: Processes) -> Progress:
    state = load_checkpoint(path)
    check_same_run(path, state, task.kind, config)
    task.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and processes.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], processes.device)
    samplers = rng["samplers"]
    if len(samplers) != processes.world_size:
        raise InputError(f"{path} was written by {len(samplers)} processes; resume it with as many "
                         f"(this run has {processes.world_size})")
    sampler.load_state(samplers[processes.rank])
    return Progress(state["step"], state["best_psnr"])


def _validate(task: Task, val_images: list, device: torch.device, log: RunLog, step: int) -> float:
    """Log the validation PSNR/SSIM of `task.denoise` (in eval mode) and return the PSNR."""
    task.trained.eval()
    scores = mean_scores(score_images(task.denoise, val_images, device))
    task.trained.train()
    log.write({"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"]})
    return scores["psnr"]


def run_training(task: Task, config: RunConfig, images: list[torch.Tensor], val_images: list,
                 processes: Processes, *, on_step: Callable[[int], None] | None = None) -> Progress:
    """Train `task` up to step `config.steps` (or `config.stop_after`) from scratch or from `out/last.pt`.

    Writes `out/last.pt` every `checkpoint_every` steps and at the end, `out/best.pt` when the
    validation PSNR improves (never without validation images: there is no best then), `out/model.safetensors`
    (the last weights) and `out/metrics.jsonl`. `on_step(step)` runs after each step (tests use
    it to interrupt a run).
    """
    out = Path(config.out)
    sampler = CropSampler(images, config.crop, config.batch, config.seed * 1000 + processes.rank)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps, eta_min=0.0)
    last_path, best_path = out / "last.pt", out / "best.pt"
    progress = Progress()
    if config.resume and last_path.is_file():
        progress = _restore(last_path, task, config, optimizer, scheduler, sampler, processes)
        if processes.is_main:
            print(f"{task.kind}: resuming from step {progress.step} of {config.steps} ({last_path})")
    end = min(config.steps, config.stop_after) if config.stop_after else config.steps
    bf16 = uses_bf16(config.precision, processes.device)
    log = RunLog(out, config, processes.is_main, resumed_at=progress.step)
    bar = show_progress(total=config.steps, initial=progress.step, desc=task.kind, unit="step",
                        disable=not processes.is_main)
    try:
        window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        task.trained.train()
        while progress.step < end:
            batch = sampler.next_batch().to(processes.device, non_blocking=True)
            with torch.autocast(processes.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = task.loss(batch)
            if not torch.isfinite(loss):
                kept = f"the last good checkpoint is {last_path}" if last_path.is_file() else "no checkpoint was written"
                raise TrainingDiverged(f"step {progress.step + 1}: the loss is {loss.item()}; check the data "
                                       f"(NaN pixels?) or lower 'lr'; {kept}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            progress.step += 1
            window_loss += mean_over_processes(loss, processes)
            window_steps += 1
            bar.update(1)
            step = progress.step
            if step % config.log_every == 0 or step == end:
                seconds = time.perf_counter() - window_start
                log.write({"step": step, "loss": window_loss / window_steps, "lr": scheduler.get_last_lr()[0],
                           "images_per_s": window_steps * config.batch * processes.world_size / seconds})
                bar.set_postfix(loss=f"{window_loss / window_steps:.3f}")
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            validate_now = val_images and (step % config.val_every == 0 or step == end)
            if validate_now and processes.is_main:
                val_psnr = _validate(task, val_images, processes.device, log, step)
                if val_psnr > progress.best_psnr:
                    progress.best_psnr = val_psnr
                    save_checkpoint(best_path, _checkpoint(task, config, optimizer, scheduler, progress, {}))
            if step % config.checkpoint_every == 0 or step == end:
                rng = _rng_states(sampler, processes)
                if processes.is_main:
                    save_checkpoint(last_path, _checkpoint(task, config, optimizer, scheduler, progress, rng))
            if validate_now:
                wait_for_all(processes)
            if on_step is not None:
                on_step(step)
    finally:
        bar.close()
        log.close()
    if processes.is_main:
        save_weights(task.model, out / "model.safetensors")
    wait_for_all(processes)  # no collective may still be in flight when the process group is destroyed
    return progress
