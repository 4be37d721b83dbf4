"""Run logs: `metrics.jsonl` (one JSON object per line: training and validation records), the
run's `config.yaml`, and TensorBoard scalars when `tensorboard: true`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from atbsn.data.atomic import atomic_path
from atbsn.errors import InputError
from atbsn.train.config import RunConfig


class RunLog:
    """Appends records to `out/metrics.jsonl` (main process only; other processes log nothing).

    A resumed run first drops the records past the checkpoint it resumes from, so the log reads
    as one uninterrupted run.
    """

    def __init__(self, out: Path, config: RunConfig, enabled: bool, resumed_at: int = 0):
        self.enabled, self.writer, self.path = enabled, None, out / "metrics.jsonl"
        if not enabled:
            return
        import yaml

        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.yaml") as temporary, open(temporary, "w") as handle:
            yaml.safe_dump(dataclasses.asdict(config), handle, sort_keys=False)
        self._truncate(resumed_at)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError("tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resumed_at + 1)

    def _truncate(self, resumed_at: int) -> None:
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= resumed_at]
        with atomic_path(self.path) as temporary, open(temporary, "w") as handle:
            handle.writelines(line + "\n" for line in kept)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a `metrics.jsonl` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
