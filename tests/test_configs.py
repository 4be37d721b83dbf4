"""The shipped config files load, and the embedded ones are exactly the settings the shipped
weights were trained with (their runs' recorded config.yaml, kept in docs/weights/)."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from atbsn.train.config import DistillConfig, TrainConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"embedded_atbsn.yaml": TrainConfig, "embedded_bsn1.yaml": TrainConfig,
           "embedded_student.yaml": DistillConfig, "sidd_atbsn.yaml": TrainConfig}
RECORDS = {"embedded_atbsn.yaml": "embedded-atbsn", "embedded_bsn1.yaml": "embedded-bsn1",
           "embedded_student.yaml": "embedded-student"}
NOT_COMPARED = {"out", "teacher", "init"}  # paths on the training machine


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_files_load(name):
    config = load_config(CONFIGS[name], str(ROOT / "configs" / name))
    assert isinstance(config, CONFIGS[name])


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_embedded_configs_are_what_trained_the_shipped_weights(name):
    config = dataclasses.asdict(load_config(CONFIGS[name], str(ROOT / "configs" / name)))
    recorded = yaml.safe_load((ROOT / "docs" / "weights" / RECORDS[name] / "config.yaml").read_text())
    compared = set(config) - NOT_COMPARED
    # keys added after the run (overwrite, mat_key) did what their defaults do
    defaults = dataclasses.asdict(CONFIGS[name]())
    assert {key: config[key] for key in compared} == {key: recorded.get(key, defaults[key]) for key in compared}
