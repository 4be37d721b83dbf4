"""Weight files: save_weights / load_model round trips, every file layout load_model accepts (run
checkpoints, official `module.`-prefixed and distilled state dicts), clear errors for bad files,
`atbsn export`, and the shipped weights."""

import copy
import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from synthetic_data import WIDTH, all_files, tiny_model, tiny_weights

from atbsn.cli import main
from atbsn.denoiser import SHIPPED_WEIGHTS, load_denoiser
from atbsn.errors import InputError
from atbsn.models import ATBSN, NBSN, Distilled
from atbsn.models.weights import RUN_CHECKPOINT_FORMAT, load_model, save_weights

KINDS = {"atbsn": ATBSN, "student": NBSN}


def image(height=24, width=20, seed=0):
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 255


@torch.no_grad()
def run(model, x, hole=3):
    return model(x, hole) if isinstance(model, ATBSN) else model(x)


def assert_same_weights(loaded, original):
    assert type(loaded) is type(original)
    assert loaded.mid == original.mid and loaded.in_ch == original.in_ch
    loaded_state, original_state = loaded.state_dict(), original.state_dict()
    assert loaded_state.keys() == original_state.keys()
    for key, value in original_state.items():
        assert loaded_state[key].dtype == torch.float32, key
        assert torch.equal(loaded_state[key], value), key


def stored(path):
    """{key: tensor} and the metadata of a safetensors file, read without atbsn."""
    with safe_open(str(path), "pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()


def prefixed(state_dict, prefix):
    return {prefix + key: value for key, value in state_dict.items()}


def run_checkpoint(model, kind="train"):
    """A checkpoint as `atbsn train` writes it (optimizer and scheduler state included)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    return {"format": RUN_CHECKPOINT_FORMAT, "kind": kind, "config": {"width": model.mid, "steps": 10},
            "step": 7, "best_psnr": 31.5, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": {"torch": torch.get_rng_state()}}


# round trips

@pytest.mark.parametrize("kind", ["atbsn", "student"])
def test_fp32_round_trip_is_exact(tmp_path, kind):
    path = tmp_path / "model.safetensors"
    model = tiny_weights(path, kind)
    assert all_files(tmp_path) == ["model.safetensors"]  # no temporary file left beside it
    tensors, metadata = stored(path)
    assert metadata == {"model": KINDS[kind].__name__}
    assert {value.dtype for value in tensors.values()} == {torch.float32}
    loaded = load_model(path)
    assert_same_weights(loaded, model)
    assert not loaded.training
    x = image()
    assert torch.equal(run(loaded, x), run(model, x))


@pytest.mark.parametrize("kind", ["atbsn", "student"])
def test_half_round_trip_is_fp16_on_disk_and_close(tmp_path, kind):
    model = tiny_model(kind, seed=3)
    save_weights(model, tmp_path / "full.safetensors")
    save_weights(model, tmp_path / "half.safetensors", half=True)
    tensors, metadata = stored(tmp_path / "half.safetensors")
    assert metadata == {"model": KINDS[kind].__name__}
    assert {value.dtype for value in tensors.values()} == {torch.float16}
    full_size, half_size = (os.path.getsize(tmp_path / name) for name in ("full.safetensors", "half.safetensors"))
    assert half_size < 0.6 * full_size

    loaded = load_model(tmp_path / "half.safetensors")
    assert type(loaded) is KINDS[kind] and loaded.mid == WIDTH
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in rounded.parameters():
            parameter.copy_(parameter.half().float())
    assert_same_weights(loaded, rounded)  # float32 holding exactly the fp16 values
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=1e-3, atol=1e-4)

    x = image(seed=1)
    assert torch.equal(run(loaded, x), run(rounded, x))
    original = run(model, x)
    assert not torch.equal(run(loaded, x), original)  # the fp16 rounding is really there...
    scale = original.abs().max().item()
    assert (run(loaded, x) - original).abs().max().item() < 1e-2 * scale  # ...and small


# the layouts load_model reads

def test_run_checkpoints_load(tmp_path):
    model = tiny_model("atbsn", seed=1)
    torch.save(run_checkpoint(model), tmp_path / "last.pt")
    assert_same_weights(load_model(tmp_path / "last.pt"), model)

    # a checkpoint of a distillation run holds the student
    student = tiny_model("student", seed=2)
    torch.save(run_checkpoint(student, "distill"), tmp_path / "distill.pt")
    assert_same_weights(load_model(tmp_path / "distill.pt"), student)


@pytest.mark.parametrize("kind", ["atbsn", "student"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_style_state_dicts_load(tmp_path, kind, prefix):
    model = tiny_model(kind, seed=4)
    torch.save(prefixed(model.state_dict(), prefix), tmp_path / "official.pth")
    assert_same_weights(load_model(tmp_path / "official.pth"), model)


@pytest.mark.parametrize("container", ["pth", "safetensors", "module-pth"])
def test_distilled_files_load_as_student_and_teacher(tmp_path, container):
    student, teacher = tiny_model("student", seed=5), tiny_model("atbsn", seed=6)
    state = {**prefixed(student.state_dict(), "nbsn."), **prefixed(teacher.state_dict(), "bsn.")}
    if container == "safetensors":
        path = tmp_path / "distilled.safetensors"
        save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    else:
        path = tmp_path / "distilled.pth"
        torch.save(prefixed(state, "module.") if container == "module-pth" else state, path)
    loaded = load_model(path)
    assert isinstance(loaded, Distilled)
    assert_same_weights(loaded.student, student)
    assert_same_weights(loaded.teacher, teacher)
    assert not loaded.student.training and not loaded.teacher.training

    # the denoiser picks the student unless asked for the teacher
    x = image(seed=2)
    default = load_denoiser(path, device="cpu")
    assert default.hole is None and default.name == "student (NBSN)"
    assert torch.equal(default(x), run(student, x))
    chosen = load_denoiser(path, model="atbsn", hole=5, device="cpu")
    assert chosen.hole == 5 and chosen.name == "ATBSN hole 5"
    assert torch.equal(chosen(x), run(teacher, x, 5))


def test_distilled_file_with_the_halves_swapped_is_refused(tmp_path):
    student, teacher = tiny_model("student"), tiny_model("atbsn")
    state = {**prefixed(teacher.state_dict(), "nbsn."), **prefixed(student.state_dict(), "bsn.")}
    torch.save(state, tmp_path / "swapped.pth")
    with pytest.raises(InputError, match="swapped.pth: a distilled checkpoint needs an NBSN under 'nbsn.'"):
        load_model(tmp_path / "swapped.pth")


# errors

def _truncated(source, target):
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@pytest.mark.parametrize("name, make, message", [
    ("missing.safetensors", None, "no such weight file"),
    ("missing.pt", None, "no such weight file"),
    ("folder.pt", "folder", "no such weight file"),
    ("garbage.safetensors", b"\x00\x01garbage" * 50, "not a readable safetensors file"),
    ("garbage.pth", b"\x00\x01garbage" * 50, "corrupt"),
    ("empty.pth", b"", "corrupt"),
    ("truncated.safetensors", "truncate", "not a readable safetensors file"),
    ("truncated.pt", "truncate", "corrupt"),
])
def test_unreadable_files_raise_input_error_naming_the_path(tmp_path, name, make, message):
    path = tmp_path / name
    if make == "folder":
        path.mkdir()
    elif make == "truncate":
        whole = tmp_path / f"whole{path.suffix}"
        model = tiny_model("atbsn")
        if path.suffix == ".safetensors":
            save_weights(model, whole)
        else:
            torch.save(run_checkpoint(model), whole)
        _truncated(whole, path)
    elif make is not None:
        path.write_bytes(make)
    with pytest.raises(InputError) as error:
        load_model(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_foreign_state_dict_is_refused(tmp_path, suffix):
    foreign = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 3, 3)).state_dict()
    path = tmp_path / f"foreign{suffix}"
    if suffix == ".safetensors":
        save_file(foreign, str(path))
    else:
        torch.save(foreign, path)
    with pytest.raises(InputError, match=f"{path}: not an AT-BSN checkpoint: expected 'unet.intro.conv.weight'.*"
                                         f"found keys like 0.bias, 0.weight"):
        load_model(path)


def test_wrong_or_missing_keys_and_non_state_dicts_are_refused(tmp_path):
    # the CLI prints an InputError as one line, so torch's multi-line messages must come out as one
    state = tiny_model("atbsn").state_dict()
    del state["nin_B.bias"]
    torch.save(state, tmp_path / "missing_key.pth")
    with pytest.raises(InputError, match='missing_key.pth: .*Missing key.* "nin_B.bias"') as error:
        load_model(tmp_path / "missing_key.pth")
    assert "\n" not in str(error.value)

    state = tiny_model("atbsn").state_dict()
    state["nin_B.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(state, tmp_path / "wrong_shape.pth")
    with pytest.raises(InputError, match="wrong_shape.pth: .*size mismatch for nin_B.weight") as error:
        load_model(tmp_path / "wrong_shape.pth")
    assert "\n" not in str(error.value)

    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(InputError, match="list.pth: a checkpoint must hold a state dict"):
        load_model(tmp_path / "list.pth")

    # a dict with a foreign "format" is not mistaken for a run checkpoint
    foreign_run = run_checkpoint(tiny_model("atbsn"))
    foreign_run["format"] = "someone-else/2"
    torch.save(foreign_run, tmp_path / "foreign_run.pt")
    with pytest.raises(InputError, match="foreign_run.pt: a checkpoint must hold a state dict"):
        load_model(tmp_path / "foreign_run.pt")


def test_pickled_objects_are_not_unpickled(tmp_path):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="pickled.pt: corrupt, or not a checkpoint"):
        load_model(tmp_path / "pickled.pt")


# atbsn export

def test_export_half_of_a_run_checkpoint(tmp_path, capsys):
    model = tiny_model("atbsn", seed=7)
    torch.save(run_checkpoint(model), tmp_path / "last.pt")
    out = tmp_path / "export" / "model.safetensors"
    assert main(["export", str(tmp_path / "last.pt"), str(out), "--half"]) == 0
    assert capsys.readouterr().out.strip() == f"export: ATBSN (width {WIDTH}) written to {out}"
    assert all_files(tmp_path / "export") == ["model.safetensors"]
    tensors, metadata = stored(out)
    assert metadata == {"model": "ATBSN"}
    assert {value.dtype for value in tensors.values()} == {torch.float16}
    assert tensors.keys() == model.state_dict().keys()
    loaded = load_model(out)
    assert isinstance(loaded, ATBSN)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.half().float()), key


def test_export_full_precision_is_exact(tmp_path):
    model = tiny_model("student", seed=8)
    torch.save(prefixed(model.state_dict(), "module."), tmp_path / "official.pth")
    assert main(["export", str(tmp_path / "official.pth"), str(tmp_path / "out.safetensors")]) == 0
    assert {value.dtype for value in stored(tmp_path / "out.safetensors")[0].values()} == {torch.float32}
    assert_same_weights(load_model(tmp_path / "out.safetensors"), model)


def test_export_picks_a_half_of_a_distilled_checkpoint(tmp_path, capsys):
    student, teacher = tiny_model("student", seed=9), tiny_model("atbsn", seed=10)
    state = {**prefixed(student.state_dict(), "nbsn."), **prefixed(teacher.state_dict(), "bsn.")}
    torch.save(state, tmp_path / "distilled.pth")
    assert main(["export", str(tmp_path / "distilled.pth"), str(tmp_path / "student.safetensors")]) == 0
    assert main(["export", str(tmp_path / "distilled.pth"), str(tmp_path / "teacher.safetensors"),
                 "--model", "atbsn"]) == 0
    out = capsys.readouterr().out
    assert "export: NBSN (width 4)" in out and "export: ATBSN (width 4)" in out
    assert_same_weights(load_model(tmp_path / "student.safetensors"), student)
    assert_same_weights(load_model(tmp_path / "teacher.safetensors"), teacher)


@pytest.mark.parametrize("case", ["missing", "garbage safetensors", "garbage pth", "missing key", "wrong model"])
def test_export_errors_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case):
    source = tmp_path / "in" / ("model.pth" if case in ("garbage pth", "missing key") else "model.safetensors")
    extra = []
    if case != "missing":
        source.parent.mkdir()
    if case.startswith("garbage"):
        source.write_bytes(b"\x00\x01not weights" * 40)
    elif case == "missing key":
        state = tiny_model("atbsn").state_dict()
        del state["nin_A.weight"]
        torch.save(state, source)
    elif case == "wrong model":
        tiny_weights(source, "atbsn")
        extra = ["--model", "student"]
    out = tmp_path / "out" / "exported.safetensors"
    assert main(["export", str(source), str(out), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"atbsn export: error: {source}")
    assert all_files(tmp_path / "out") == []


# the shipped weights

def test_shipped_weights_are_fp16_atbsn_and_student_of_one_width():
    assert set(SHIPPED_WEIGHTS) == {"atbsn", "student"}
    widths = {}
    for kind, path in SHIPPED_WEIGHTS.items():
        tensors, metadata = stored(path)
        assert metadata == {"model": KINDS[kind].__name__}
        assert {value.dtype for value in tensors.values()} == {torch.float16}, path
        loaded = load_model(path)
        assert type(loaded) is KINDS[kind]
        assert loaded.mid == tensors["unet.intro.conv.weight"].shape[0]
        for key, value in tensors.items():
            assert torch.equal(loaded.state_dict()[key], value.float()), key
        widths[kind] = loaded.mid
    assert widths["atbsn"] == widths["student"] >= 8


def test_shipped_weights_are_the_denoiser_defaults():
    default = load_denoiser(device="cpu")
    assert isinstance(default.module, NBSN) and default.hole is None
    assert default.device == torch.device("cpu")
    atbsn = load_denoiser(model="atbsn", device="cpu")
    assert isinstance(atbsn.module, ATBSN) and atbsn.hole == 3 and atbsn.name == "ATBSN hole 3"
    assert not atbsn.module.training and not default.module.training
    x = image(32, 40, seed=3)
    with torch.no_grad():
        out = atbsn(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_load_denoiser_refuses_bad_choices(tmp_path):
    tiny_weights(tmp_path / "a.safetensors", "atbsn")
    with pytest.raises(InputError, match="hole must be 0 or an odd positive number, got 4"):
        load_denoiser(tmp_path / "a.safetensors", hole=4)
    with pytest.raises(InputError, match="hole must be 0 or an odd positive number, got -1"):
        load_denoiser(tmp_path / "a.safetensors", hole=-1)
    with pytest.raises(InputError, match="model must be one of atbsn, student, got 'teacher'"):
        load_denoiser(tmp_path / "a.safetensors", model="teacher")
    with pytest.raises(InputError, match="a.safetensors holds an ATBSN, not the student asked for"):
        load_denoiser(tmp_path / "a.safetensors", model="student")
    assert load_denoiser(tmp_path / "a.safetensors", hole=0, device="cpu").hole == 0


def test_saved_metadata_is_json_free_of_surprises(tmp_path):
    # safetensors metadata must be str -> str; the header is plain JSON any reader can parse
    tiny_weights(tmp_path / "m.safetensors", "student")
    raw = (tmp_path / "m.safetensors").read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_size])
    assert header["__metadata__"] == {"model": "NBSN"}
    assert all(entry["dtype"] == "F32" for key, entry in header.items() if key != "__metadata__")
