"""One process or many: `torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK and we join its group
(NCCL on CUDA, gloo on the CPU). Rank 0 writes checkpoints and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from atbsn.errors import InputError


@dataclass(frozen=True)
class Processes:
    """Where this process sits: its rank, the world size and the device it computes on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """"auto" takes CUDA when there is a GPU, else the CPU; "cuda" without a GPU is an error."""
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise InputError("device 'cuda' asked for, but torch sees no CUDA GPU; use device=cpu or auto")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def start_processes(device_preference: str) -> Processes:
    """Join the process group torchrun set up, if any; a single process needs nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size == 1:
        return Processes(0, 1, device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), world_size, device)


def stop_processes(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_processes(value: torch.Tensor, processes: Processes) -> float:
    """The mean of a scalar over all processes (itself when there is one)."""
    value = value.detach()
    if processes.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= processes.world_size
    return float(value)


def gather_from_processes(value, processes: Processes) -> list:
    """Every process's `value` (any picklable object), in rank order."""
    if not processes.distributed:
        return [value]
    gathered = [None] * processes.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def wait_for_all(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()
