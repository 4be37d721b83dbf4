"""Training with two CPU processes (DDP over gloo), started by torchrun."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from atbsn.data.images import write_image
from atbsn.models.weights import load_model
from atbsn.train.checkpoints import load_checkpoint
from atbsn.train.logs import read_metrics

TINY = ["width=4", "batch=1", "crop=32", "log_every=1", "device=cpu", "val_data=none"]

SCRIPT = textwrap.dedent("""
    import sys

    import torch

    from atbsn.data.sources import training_images
    from atbsn.train.config import TrainConfig, load_config
    from atbsn.train.distributed import start_processes, stop_processes
    from atbsn.train.runner import run_training
    from atbsn.train.tasks import train_task

    out = sys.argv[1]
    config = load_config(TrainConfig, None, sys.argv[2:])
    processes = start_processes("cpu")
    assert processes.world_size == 2 and processes.distributed, processes
    task = train_task(config, processes)
    torch.save(task.model.state_dict(), f"{out}/initial{processes.rank}.pt")
    progress = run_training(task, config, training_images(config.data), [], processes)
    assert progress.step == config.steps
    torch.save(task.model.state_dict(), f"{out}/rank{processes.rank}.pt")
    stop_processes(processes)
""")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    generator = torch.Generator().manual_seed(0)
    for index in range(3):
        write_image(folder / f"{index}.png", torch.randint(0, 256, (3, 40, 44), generator=generator).float())
    return folder


def test_two_processes_train_the_same_weights(tmp_path, image_folder):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    result = torchrun(str(script), str(out), f"out={out}", f"data={image_folder}", "steps=3",
                      "checkpoint_every=2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]

    initial = [torch.load(out / f"initial{rank}.pt", weights_only=True) for rank in (0, 1)]
    final = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for key in final[0]:
        assert torch.equal(initial[0][key], initial[1][key]), key
        assert torch.equal(final[0][key], final[1][key]), key
    assert any(not torch.equal(final[0][key], initial[0][key]) for key in final[0])

    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 3
    samplers = last["rng"]["samplers"]
    assert len(samplers) == 2
    assert not torch.equal(samplers[0], samplers[1])  # each process draws its own crops
    for key in final[0]:
        assert torch.equal(last["model"][key], final[0][key]), key
    # Rank 0 alone logs: one record per step, the loss averaged over both processes.
    records = read_metrics(out / "metrics.jsonl")
    assert [record["step"] for record in records] == [1, 2, 3]
    assert all(record["loss"] > 0 for record in records)
    assert not list(out.glob(".*.tmp*"))


def test_torchrun_atbsn_train_end_to_end(tmp_path, image_folder):
    out = tmp_path / "run"
    result = torchrun("-m", "atbsn", "train", f"out={out}", f"data={image_folder}", "steps=2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("train: 2 steps done") == 1  # only rank 0 reports
    assert sorted(path.name for path in out.iterdir()) == [  # no best.pt: nothing is validated
        "config.yaml", "last.pt", "metrics.jsonl", "model.safetensors"]
    assert len(load_checkpoint(out / "last.pt")["rng"]["samplers"]) == 2
    assert load_model(out / "model.safetensors").mid == 4
