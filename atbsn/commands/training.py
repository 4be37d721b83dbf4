"""`atbsn train` and `atbsn distill`."""

from __future__ import annotations

import argparse

from atbsn.backend import require_backend
from atbsn.data.sources import training_images, validation_images
from atbsn.outputs import check_output_folder
from atbsn.train.checkpoints import check_run_folder, remove_old_run
from atbsn.train.config import CONFIGS, load_config
from atbsn.train.distributed import start_processes, stop_processes
from atbsn.train.memory import keep_freed_memory
from atbsn.train.runner import Progress, run_training
from atbsn.train.tasks import distill_task, train_task

TASKS = {"train": train_task, "distill": distill_task}


def train_with(kind: str, config) -> tuple[Progress, bool, bool]:
    """Run `kind` ("train" or "distill") with `config` in this process (and its torchrun group).

    Returns (progress, whether this is the main process, whether anything was validated).
    """
    processes = start_processes(config.device)
    try:
        check_output_folder(config.out, "config key 'out'")
        require_backend(config.backend, processes.device, "config key 'backend'")
        old_run = check_run_folder(config, kind)
        task = TASKS[kind](config, processes)
        mat_key = config.mat_key or None
        noise = config.embedded_noise
        images = training_images(config.data, config.embedded_realisations, config.seed, mat_key=mat_key,
                                 embedded_noise=noise)
        val_images = [image for image in validation_images(config.val_data, config.val_max_images, config.seed,
                                                           mat_key=mat_key, embedded_noise=noise)
                      if image.clean is not None]
        if processes.is_main:
            remove_old_run(old_run, kind)  # only now: nothing is lost when a check above fails
        progress = run_training(task, config, images, val_images, processes)
    finally:
        stop_processes(processes)
    return progress, processes.is_main, bool(val_images)


def run(kind: str, args: argparse.Namespace) -> int:
    config = load_config(CONFIGS[kind], args.config, args.overrides)
    keep_freed_memory()
    progress, is_main, validated = train_with(kind, config)
    if is_main:
        best = (f", best validation PSNR {progress.best_psnr:.2f} dB" if validated
                else "; nothing to validate on (val_data), so no best.pt: use last.pt or model.safetensors")
        print(f"{kind}: {progress.step} steps done{best}; checkpoints and metrics.jsonl in {config.out}")
    return 0
