"""Run configurations of `atbsn train` / `atbsn distill`: defaults, YAML, key=value overrides, errors."""

import dataclasses

import pytest

from atbsn.errors import InputError
from atbsn.train.config import DistillConfig, TrainConfig, load_config


def test_train_defaults_are_the_official_recipe():
    config = load_config(TrainConfig)
    assert config == TrainConfig()
    assert (config.lr, config.beta1, config.beta2) == (3e-4, 0.9, 0.999)
    assert (config.batch, config.crop, config.steps) == (8, 256, 400_000)
    assert (config.hole, config.val_hole) == (9, 3)
    assert (config.width, config.seed, config.data, config.resume) == (48, 0, "embedded", True)


def test_distill_defaults_are_the_official_recipe():
    config = load_config(DistillConfig, overrides=["teacher=t.pt"])
    assert config.holes == [0, 1, 3, 5, 7, 9, 11]
    assert (config.steps, config.crop, config.val_hole) == (100_000, 128, 3)
    assert (config.lr, config.beta1, config.beta2, config.batch) == (3e-4, 0.9, 0.999, 8)
    assert config.teacher == "t.pt"
    assert config.out != TrainConfig().out
    assert not hasattr(config, "hole")
    # Each config gets its own holes list (no shared mutable default).
    config.holes.append(13)
    assert DistillConfig().holes == [0, 1, 3, 5, 7, 9, 11]


def test_yaml_then_overrides_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 0.001\nsteps: 50\nwidth: 8\nout: from_yaml\ntensorboard: true\n")
    config = load_config(TrainConfig, str(path), ["steps=70", "width=16", "width=12"])
    assert config.lr == 0.001 and isinstance(config.lr, float)
    assert config.steps == 70
    assert config.width == 12  # the last override wins
    assert config.out == "from_yaml"
    assert config.tensorboard is True
    assert config.batch == 8  # untouched keys keep their defaults


def test_empty_yaml_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(TrainConfig, str(path)) == TrainConfig()


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("0.5", 0.5), ("2", 2.0), ("3E-4", 3e-4)])
def test_float_overrides(text, value):
    config = load_config(TrainConfig, overrides=[f"lr={text}"])
    assert config.lr == value and type(config.lr) is float


def test_int_float_and_string_overrides():
    config = load_config(TrainConfig, overrides=["steps=12", "beta2=0.99", "out=some/dir", "data=/x y/z",
                                                 "hole=0", "val_hole=5", "device=cpu"])
    assert config.steps == 12 and type(config.steps) is int
    assert config.beta2 == 0.99
    assert config.out == "some/dir" and config.data == "/x y/z"
    assert (config.hole, config.val_hole, config.device) == (0, 5, "cpu")


def test_a_value_may_contain_equals_signs():
    assert load_config(TrainConfig, overrides=["out=a=b"]).out == "a=b"


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("True", True), ("no", False),
                                         ("yes", True)])
def test_bool_overrides(text, value):
    config = load_config(TrainConfig, overrides=[f"resume={text}", f"tensorboard={text}"])
    assert config.resume is value and config.tensorboard is value


def test_list_overrides_and_yaml_lists(tmp_path):
    config = load_config(DistillConfig, overrides=["teacher=t.pt", "holes=[0, 3,9]"])
    assert config.holes == [0, 3, 9]
    path = tmp_path / "d.yaml"
    path.write_text("teacher: t.pt\nholes:\n  - 1\n  - 5\n")
    assert load_config(DistillConfig, str(path)).holes == [1, 5]


def test_an_int_in_yaml_for_a_float_key_becomes_a_float(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1\n")
    config = load_config(TrainConfig, str(path))
    assert config.lr == 1.0 and type(config.lr) is float


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(InputError) as info:
        load_config(TrainConfig, overrides=["learning_rate=1e-3"])
    message = str(info.value)
    assert "learning_rate" in message
    for field in dataclasses.fields(TrainConfig):
        assert field.name in message
    assert "teacher" not in message  # a distill key is not allowed for train
    with pytest.raises(InputError, match="unknown config key.*hole"):
        load_config(DistillConfig, overrides=["teacher=t.pt", "hole=9"])


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("widht: 8\n")
    with pytest.raises(InputError, match="widht"):
        load_config(TrainConfig, str(path))


@pytest.mark.parametrize("override, key", [
    ("steps=ten", "steps"), ("steps=1.5", "steps"), ("lr=fast", "lr"), ("resume=maybe", "resume"),
    ("resume=1", "resume"), ("width=true", "width"), ("holes=3", "holes"), ("holes=[1, x]", "holes"),
    ("holes=[true]", "holes"), ("holes=[1.0]", "holes"), ("tensorboard=[1]", "tensorboard"),
])
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(InputError, match=f"'{key}' must be"):
        load_config(DistillConfig if key == "holes" else TrainConfig,
                    overrides=[override] + (["teacher=t.pt"] if key == "holes" else []))


@pytest.mark.parametrize("yaml_text, key", [("steps: 1.5\n", "steps"), ("lr: fast\n", "lr"),
                                            ("resume: 1\n", "resume"), ("out: 3\n", "out"),
                                            ("width: [4]\n", "width")])
def test_wrong_type_in_yaml_names_the_key(tmp_path, yaml_text, key):
    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InputError, match=f"'{key}' must be"):
        load_config(TrainConfig, str(path))


@pytest.mark.parametrize("override, key", [
    ("steps=0", "steps"), ("steps=-5", "steps"), ("width=0", "width"), ("batch=0", "batch"), ("crop=0", "crop"),
    ("val_every=0", "val_every"), ("checkpoint_every=0", "checkpoint_every"), ("log_every=0", "log_every"),
    ("embedded_realisations=0", "embedded_realisations"), ("lr=0", "lr"), ("lr=-1e-3", "lr"),
    ("lr=nan", "lr"), ("lr=inf", "lr"),
    ("device=tpu", "device"), ("beta1=1.5", "beta1"), ("beta2=-0.1", "beta2"), ("backend=bogus", "backend"),
])
def test_out_of_range_names_the_key(override, key):
    with pytest.raises(InputError, match=f"'{key}' must be"):
        load_config(TrainConfig, overrides=[override])


@pytest.mark.parametrize("override", ["hole=8", "hole=-1", "hole=-3", "val_hole=2", "val_hole=-1"])
def test_bad_hole_sizes(override):
    with pytest.raises(InputError, match=r"hole sizes must be 0 or odd.*" + override.split("=")[1]):
        load_config(TrainConfig, overrides=[override])


@pytest.mark.parametrize("holes", ["[0, 2]", "[-1]", "[3, 4, 5]"])
def test_bad_distill_holes(holes):
    with pytest.raises(InputError, match="hole sizes must be 0 or odd"):
        load_config(DistillConfig, overrides=["teacher=t.pt", f"holes={holes}"])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [1, 2\nsteps: 3\n")
    with pytest.raises(InputError, match=f"{path}: not valid YAML"):
        load_config(TrainConfig, str(path))


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=f"{path}: a config file must be a mapping"):
        load_config(TrainConfig, str(path))


def test_missing_yaml_file(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(InputError, match=f"{path}: no such config file"):
        load_config(TrainConfig, str(path))


@pytest.mark.parametrize("item", ["steps", "lr 1e-3", ""])
def test_override_without_equals(item):
    with pytest.raises(InputError, match="is not key=value") as info:
        load_config(TrainConfig, overrides=["width=4", item])
    assert repr(item) in str(info.value)


def test_distill_needs_a_teacher():
    with pytest.raises(InputError, match="teacher"):
        load_config(DistillConfig)
    with pytest.raises(InputError, match="teacher"):
        load_config(DistillConfig, overrides=["teacher="])


def test_errors_are_input_errors_and_value_errors():
    # The CLI catches InputError; it is a ValueError so library callers can catch either.
    with pytest.raises(ValueError):
        load_config(TrainConfig, overrides=["steps=0"])
