"""Run configurations for `atbsn train` and `atbsn distill`: defaults from the official recipe,
overridden by a YAML file, then by `key=value` pairs from the command line."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from atbsn.errors import InputError


@dataclass
class RunConfig:
    """What both training commands share.

    `data` / `val_data`: "embedded" (the bundled photos with synthetic camera noise), a folder
    of noisy images, the official patch layout (`root/Noisy/train`), a SIDD Medium folder
    (`root/Data`), a SIDD validation .mat pair (`.../ValidationNoisyBlocksSrgb.mat`), or "none"
    (val_data only). `batch` is per process: with torchrun the global batch is batch x world size.
    `stop_after` > 0 ends this invocation after that step (with a checkpoint) while the schedule
    still spans `steps`: train in time-boxed chunks, resuming with a larger `stop_after`.
    `resume` continues the run in `out` from `out/last.pt`; a run there is never replaced unless
    `overwrite` is true (then its checkpoints, weights and metrics are removed first).
    `mat_key` names the key of a SIDD .mat file in `data` / `val_data` ("": the file's one known key).
    `embedded_noise` picks the embedded data's noise: "phone" (a phone's processing,
    `atbsn.data.isp`) or "raw" (the camera pipeline only).
    `precision`: "fp32", or "bf16" for each step's forward and loss under autocast (weights,
    gradients and Adam in fp32) on devices with bf16 hardware (`atbsn info` says; elsewhere it
    warns and trains in fp32).
    """

    data: str = "embedded"
    val_data: str = "embedded"
    out: str = "runs/atbsn"
    width: int = 48
    steps: int = 400_000
    stop_after: int = 0
    batch: int = 8
    crop: int = 256
    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    val_hole: int = 3
    val_every: int = 5_000
    val_max_images: int = 0
    checkpoint_every: int = 1_000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    embedded_realisations: int = 4
    tensorboard: bool = False
    resume: bool = True
    overwrite: bool = False
    mat_key: str = ""
    embedded_noise: str = "phone"
    precision: str = "fp32"


@dataclass
class TrainConfig(RunConfig):
    """`atbsn train`: L1(model(noisy, hole), noisy), Adam, cosine to 0 (official recipe).

    `init`: weights to start from (fine-tuning; any file `--weights` takes), else a random init.
    A run that resumes from `out/last.pt` ignores it.
    """

    hole: int = 9
    init: str = ""


@dataclass
class DistillConfig(RunConfig):
    """`atbsn distill`: NBSN student from a trained AT-BSN teacher at several hole sizes."""

    teacher: str = ""
    holes: list = field(default_factory=lambda: [0, 1, 3, 5, 7, 9, 11])
    out: str = "runs/atbsn-d"
    steps: int = 100_000
    crop: int = 128


CONFIGS = {"train": TrainConfig, "distill": DistillConfig}


def _parse(text: str, kind):
    """A command-line string as a value of `kind` (numbers by Python's rules, the rest as YAML)."""
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            return text
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _convert(name: str, value, kind):
    """Check one value (from YAML or the command line) against the field's type."""
    if isinstance(value, str) and kind is not str:
        value = _parse(value, kind)
    if isinstance(value, bool):
        ok = kind is bool
    elif kind is float and isinstance(value, int):
        value, ok = float(value), True
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise InputError(f"config key {name!r} must be {kind.__name__}{' of ints' if kind is list else ''}, "
                         f"got {value!r}")
    return value


def _check(config: RunConfig) -> None:
    positive = ("width", "steps", "batch", "crop", "val_every", "checkpoint_every", "log_every",
                "embedded_realisations")
    for name in positive:
        if getattr(config, name) < 1:
            raise InputError(f"config key {name!r} must be >= 1, got {getattr(config, name)}")
    if config.stop_after < 0:
        raise InputError(f"config key 'stop_after' must be >= 0 (0: run to 'steps'), got {config.stop_after}")
    if not 0 < config.lr < float("inf"):  # also refuses nan
        raise InputError(f"config key 'lr' must be > 0, got {config.lr}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(config, name) < 1:
            raise InputError(f"config key {name!r} must be in [0, 1), got {getattr(config, name)}")
    from atbsn.data.embedded import NOISE_KINDS  # these import torch: only once a run is configured
    from atbsn_kernels.backends import BACKENDS

    if config.backend not in BACKENDS:
        raise InputError(f"config key 'backend' must be one of {', '.join(BACKENDS)}, got {config.backend!r}")
    if config.embedded_noise not in NOISE_KINDS:
        raise InputError(f"config key 'embedded_noise' must be one of {', '.join(NOISE_KINDS)}, "
                         f"got {config.embedded_noise!r}")
    from atbsn.train.precision import PRECISIONS

    if config.precision not in PRECISIONS:
        raise InputError(f"config key 'precision' must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    if config.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"config key 'device' must be one of auto, cpu, cuda, got {config.device!r}")
    holes = [config.val_hole] + ([config.hole] if isinstance(config, TrainConfig) else list(config.holes))
    if any(h < 0 or (h > 0 and h % 2 == 0) for h in holes):
        raise InputError(f"hole sizes must be 0 or odd and positive, got {holes}")
    if isinstance(config, DistillConfig) and not config.teacher:
        raise InputError("distill needs a teacher checkpoint: set 'teacher' (e.g. teacher=runs/atbsn/best.pt)")


def load_config(kind: type, yaml_path: str | None = None, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """A `kind` config: defaults, then the YAML file's keys, then `key=value` overrides in order.

    Unknown keys, values of the wrong type and out-of-range values raise InputError.
    """
    types = {f.name: typing.get_type_hints(kind)[f.name] for f in dataclasses.fields(kind)}
    values: dict = {}
    if yaml_path:
        values.update(_read_yaml(yaml_path))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise InputError(f"override {item!r} is not key=value")
        values[key.strip()] = text
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise InputError(f"unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(types))}")
    config = kind(**{key: _convert(key, value, types[key]) for key, value in values.items()})
    _check(config)
    return config


def _read_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: a config file must be a mapping of keys to values")
    return values
