"""`atbsn train` and `atbsn distill`."""

from __future__ import annotations

import argparse
import dataclasses

from atbsn.data.sources import training_images, validation_images
from atbsn.train.config import DistillConfig, TrainConfig, load_config
from atbsn.train.distributed import start_processes, stop_processes
from atbsn.train.runner import Progress, run_training
from atbsn.train.tasks import distill_task, train_task

CONFIGS = {"train": TrainConfig, "distill": DistillConfig}
TASKS = {"train": train_task, "distill": distill_task}


def config_help(kind: str) -> str:
    """The config keys and their defaults, for `--help`."""
    defaults = dataclasses.asdict(CONFIGS[kind]())
    return "config keys (defaults): " + ", ".join(f"{key}={value}" for key, value in defaults.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", default=None, help="a YAML file of config keys")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, applied after --config")


def train_with(kind: str, config) -> tuple[Progress, bool, bool]:
    """Run `kind` ("train" or "distill") with `config` in this process (and its torchrun group).

    Returns (progress, whether this is the main process, whether anything was validated).
    """
    processes = start_processes(config.device)
    try:
        task = TASKS[kind](config, processes)
        images = training_images(config.data, config.embedded_realisations, config.seed)
        val_images = [image for image in validation_images(config.val_data, config.val_max_images, config.seed)
                      if image.clean is not None]
        progress = run_training(task, config, images, val_images, processes)
    finally:
        stop_processes(processes)
    return progress, processes.is_main, bool(val_images)


def run(kind: str, args: argparse.Namespace) -> int:
    config = load_config(CONFIGS[kind], args.config, args.overrides)
    progress, is_main, validated = train_with(kind, config)
    if is_main:
        best = f", best validation PSNR {progress.best_psnr:.2f} dB" if validated else ""
        print(f"{kind}: {progress.step} steps done{best}; checkpoints and metrics.jsonl in {config.out}")
    return 0
