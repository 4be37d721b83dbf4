"""`atbsn train` / `atbsn distill` end to end on tiny settings: files, exact resume (after an
exception and after SIGKILL), corrupt checkpoints, divergence, distillation and bad inputs."""

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from atbsn.cli import main
from atbsn.data.images import write_image
from atbsn.data.sources import training_images
from atbsn.errors import InputError
from atbsn.models import ATBSN, NBSN, init_student_from_teacher
from atbsn.models.checkpoint import STUDENT_OWN_KEYS
from atbsn.models.weights import load_model, save_weights
from atbsn.train.checkpoints import load_checkpoint
from atbsn.train.config import DistillConfig, TrainConfig, load_config
from atbsn.train.distributed import start_processes
from atbsn.train.logs import read_metrics
from atbsn.errors import TrainingDiverged
from atbsn.train.runner import Task, run_training
from atbsn.train.tasks import distill_task, train_task

TINY = ["width=4", "batch=1", "crop=32", "log_every=1", "embedded_realisations=1", "device=cpu"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: results then match subprocesses run with OMP_NUM_THREADS=1 bit for bit
    (the thread count changes float reduction order), and the tests stay light on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Three small 8-bit noisy RGB images."""
    folder = tmp_path_factory.mktemp("images")
    generator = torch.Generator().manual_seed(0)
    for index, (h, w) in enumerate([(40, 48), (36, 36), (48, 40)]):
        write_image(folder / f"{index}.png", torch.randint(0, 256, (3, h, w), generator=generator).float())
    return folder


@pytest.fixture(scope="module")
def images(image_folder):
    return training_images(str(image_folder))


def config_for(kind, out, *overrides):
    return load_config(kind, None, [f"out={out}", *TINY, "val_data=none", *overrides])


def train(config, images, on_step=None):
    processes = start_processes("cpu")
    task = train_task(config, processes)
    run_training(task, config, images, [], processes, on_step=on_step)
    return task


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def error_line(capsys, command="train"):
    """The CLI's error message: exactly one line on stderr after the progress bars."""
    captured = capsys.readouterr()
    prefix = f"atbsn {command}: error: "
    assert prefix in captured.err, captured.err
    message, _, rest = captured.err[captured.err.index(prefix):].partition("\n")
    # Only a progress bar's clean-up (spaces, carriage returns, cursor-up codes) may follow.
    assert not rest.replace("\x1b[A", "").strip(), captured.err
    return message[len(prefix):]


def steps_of(records, key):
    return [record["step"] for record in records if key in record]


class Interrupt(Exception):
    pass


def interrupt_at(target):
    def on_step(step):
        if step == target:
            raise Interrupt

    return on_step


# The whole command, end to end


def test_train_end_to_end_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    config_file = tmp_path / "run.yaml"
    config_file.write_text("width: 8\nsteps: 100\nseed: 3\n")
    argv = ["train", "--config", str(config_file), f"out={out}", "width=4", "steps=4", "batch=1", "crop=32",
            "val_every=2", "checkpoint_every=2", "log_every=1", "embedded_realisations=1", "val_data=embedded",
            "val_max_images=1", "device=cpu"]
    assert main(argv) == 0
    assert "train: 4 steps done, best validation PSNR" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == [
        "best.pt", "config.yaml", "last.pt", "metrics.jsonl", "model.safetensors"]

    written = yaml.safe_load((out / "config.yaml").read_text())
    assert (written["width"], written["steps"], written["seed"], written["out"]) == (4, 4, 3, str(out))
    assert written == dataclasses.asdict(load_config(TrainConfig, str(config_file), argv[3:]))

    records = read_metrics(out / "metrics.jsonl")
    train_records = [record for record in records if "loss" in record]
    val_records = [record for record in records if "val_psnr" in record]
    assert [record["step"] for record in train_records] == [1, 2, 3, 4]
    for record in train_records:
        assert set(record) == {"step", "loss", "lr", "images_per_s"}
        assert record["loss"] > 0 and record["images_per_s"] > 0 and 0 <= record["lr"] <= 3e-4
    assert train_records[-1]["lr"] == pytest.approx(0, abs=1e-12)  # cosine to 0 at the last step
    assert train_records[0]["lr"] == pytest.approx(3e-4 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()) / 2)
    assert [record["step"] for record in val_records] == [2, 4]
    for record in val_records:
        assert set(record) == {"step", "val_psnr", "val_ssim"}
        assert 5 < record["val_psnr"] < 50 and -1 <= record["val_ssim"] <= 1

    last = load_checkpoint(out / "last.pt")
    assert last["kind"] == "train" and last["step"] == 4 and len(last["rng"]["samplers"]) == 1
    best = load_checkpoint(out / "best.pt")
    assert best["best_psnr"] == pytest.approx(max(record["val_psnr"] for record in val_records))
    assert best["step"] == max(val_records, key=lambda record: record["val_psnr"])["step"]

    final, best_model, last_model = (load_model(out / name) for name in ("model.safetensors", "best.pt", "last.pt"))
    for model in (final, best_model, last_model):
        assert isinstance(model, ATBSN) and model.mid == 4 and not model.training
    assert_same_weights(final.state_dict(), last["model"])
    assert_same_weights(best_model.state_dict(), best["model"])
    torch.manual_seed(3)  # the run's seed: its initial weights
    initial = ATBSN(3, 4, 3).state_dict()
    assert all(value.shape == initial[key].shape for key, value in final.state_dict().items())
    assert not torch.equal(final.nin_C.weight, initial["nin_C.weight"])
    with torch.no_grad():
        assert final(torch.rand(1, 3, 32, 32) * 255, 3).shape == (1, 3, 32, 32)


def test_without_validation_there_is_no_best_pt(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=3")
    task = train(config, images)
    assert not (tmp_path / "best.pt").exists()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    assert_same_weights(load_model(tmp_path / "model.safetensors").state_dict(), task.model.state_dict())
    assert not any("val_psnr" in record for record in read_metrics(tmp_path / "metrics.jsonl"))


# Exact resume


def test_resume_after_an_exception_is_exact(tmp_path, images):
    steps = ["steps=6", "checkpoint_every=2", "batch=2"]
    a = train(config_for(TrainConfig, tmp_path / "a", *steps), images)

    config_b = config_for(TrainConfig, tmp_path / "b", *steps)
    with pytest.raises(Interrupt):
        train(config_b, images, on_step=interrupt_at(3))
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 2
    assert steps_of(read_metrics(tmp_path / "b" / "metrics.jsonl"), "loss") == [1, 2, 3]
    assert not (tmp_path / "b" / "model.safetensors").exists()

    resumed = []
    b = train(config_b, images, on_step=resumed.append)
    assert resumed == [3, 4, 5, 6]  # steps 1-2 came from last.pt, step 3 is redone
    assert_same_weights(a.model.state_dict(), b.model.state_dict())
    assert not torch.equal(a.model.nin_C.weight, train_task(config_b, start_processes("cpu")).model.nin_C.weight)

    records_a = read_metrics(tmp_path / "a" / "metrics.jsonl")
    records_b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert steps_of(records_b, "loss") == [1, 2, 3, 4, 5, 6]  # no duplicate of step 3
    assert [r["loss"] for r in records_a] == [r["loss"] for r in records_b]
    assert [r["lr"] for r in records_a] == [r["lr"] for r in records_b]
    state_a, state_b = (load_checkpoint(tmp_path / name / "last.pt") for name in "ab")
    assert state_a["step"] == state_b["step"] == 6
    assert torch.equal(state_a["rng"]["samplers"][0], state_b["rng"]["samplers"][0])
    assert state_a["scheduler"] == state_b["scheduler"]


def test_resuming_a_finished_run_changes_nothing(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=3")
    first = train(config, images)
    before = (tmp_path / "last.pt").read_bytes(), (tmp_path / "metrics.jsonl").read_text()
    calls = []
    again = train(config, images, on_step=calls.append)
    assert calls == []
    assert_same_weights(first.model.state_dict(), again.model.state_dict())
    assert (tmp_path / "last.pt").read_bytes() == before[0]
    assert (tmp_path / "metrics.jsonl").read_text() == before[1]


def test_resume_false_starts_over(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=4", "checkpoint_every=2")
    with pytest.raises(Interrupt):
        train(config, images, on_step=interrupt_at(3))
    calls = []
    train(dataclasses.replace(config, resume=False), images, on_step=calls.append)
    assert calls == [1, 2, 3, 4]
    assert steps_of(read_metrics(tmp_path / "metrics.jsonl"), "loss") == [1, 2, 3, 4]


def wait_for(condition, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended (rc {process.returncode}) before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.005)


def test_resume_after_sigkill_is_exact(tmp_path, image_folder):
    out, steps = tmp_path / "killed", 60
    args = ["train", f"out={out}", f"data={image_folder}", "val_data=none", f"steps={steps}", "checkpoint_every=1",
            *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "atbsn", *args]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: (out / "last.pt").is_file() and metrics.is_file() and
                 metrics.read_text().count("\n") >= 5, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(out / "last.pt")["step"]
    assert 4 <= killed_at < steps  # metrics.jsonl is written just before last.pt

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"train: {steps} steps done" in finished.stdout
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == steps
    assert steps_of(read_metrics(out / "metrics.jsonl"), "loss") == list(range(1, steps + 1))

    # The same command, never interrupted (in this process, also with one thread).
    reference = tmp_path / "reference"
    assert main(["train", f"out={reference}", *args[2:]]) == 0
    reference_state = load_checkpoint(reference / "last.pt")
    assert_same_weights(state["model"], reference_state["model"])
    assert_same_weights(load_model(out / "model.safetensors").state_dict(), reference_state["model"])
    assert torch.equal(state["rng"]["samplers"][0], reference_state["rng"]["samplers"][0])


# Checkpoints that cannot be resumed


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "text"])
def test_corrupt_last_pt_is_refused_and_nothing_is_written(tmp_path, images, image_folder, capsys, damage):
    if damage == "truncated":
        train(config_for(TrainConfig, tmp_path / "good", "steps=2"), images)
        good = (tmp_path / "good" / "last.pt").read_bytes()
        content = good[: len(good) // 2]
    else:
        content = {"random bytes": random.Random(0).randbytes(4000), "empty": b"", "text": b"hello"}[damage]
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(content)

    code = main(["train", f"out={out}", f"data={image_folder}", "val_data=none", "steps=4", *TINY])
    assert code == 2
    message = error_line(capsys)
    assert "corrupt" in message and str(out / "last.pt") in message and "resume=false" in message
    assert [path.name for path in out.iterdir()] == ["last.pt"]
    assert (out / "last.pt").read_bytes() == content


def test_a_foreign_file_as_last_pt_is_refused(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=2")
    torch.save(ATBSN(3, 4, 3).state_dict(), tmp_path / "last.pt")
    with pytest.raises(InputError, match="not an atbsn run checkpoint"):
        train(config, images)
    assert [path.name for path in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("override, key", [("width=8", "width"), ("crop=36", "crop"), ("batch=2", "batch"),
                                           ("steps=5", "steps"), ("seed=1", "seed")])
def test_resume_with_a_different_setting_names_it(tmp_path, images, override, key):
    train(config_for(TrainConfig, tmp_path, "steps=2"), images)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(InputError, match=rf"written with {key}=.* but this run has {key}=.*resume=false"):
        train(config_for(TrainConfig, tmp_path, "steps=2", override), images)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_with_a_different_width_through_the_cli(tmp_path, image_folder, capsys):
    args = [f"data={image_folder}", "val_data=none", "steps=2", "device=cpu", "batch=1", "crop=32"]
    assert main(["train", f"out={tmp_path}", "width=4", *args]) == 0
    capsys.readouterr()
    assert main(["train", f"out={tmp_path}", "width=8", *args]) == 2
    assert "width=4 but this run has width=8" in error_line(capsys)


def test_distill_into_a_train_folder_is_refused(tmp_path, images):
    train(config_for(TrainConfig, tmp_path / "run", "steps=2"), images)
    save_weights(ATBSN(3, 4, 3), tmp_path / "teacher.safetensors")
    config = config_for(DistillConfig, tmp_path / "run", "steps=2", f"teacher={tmp_path / 'teacher.safetensors'}")
    processes = start_processes("cpu")
    with pytest.raises(InputError, match="is a train checkpoint; this is distill"):
        run_training(distill_task(config, processes), config, images, [], processes)


def test_a_different_number_of_processes_is_refused(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=2")
    train(config, images)
    state = load_checkpoint(tmp_path / "last.pt")
    state["rng"]["samplers"] = state["rng"]["samplers"] * 2
    state["step"] = 1
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(InputError, match="written by 2 processes; resume it with as many"):
        train(config, images)


# NaN data and divergence


def test_nan_pixels_are_refused_before_anything_is_written(tmp_path, images):
    bad = images[0].float().clone()
    bad[0, 3, 4] = float("nan")
    with pytest.raises(InputError, match="training image 1 holds NaN"):
        train(config_for(TrainConfig, tmp_path / "run", "steps=2"), [images[1], bad])
    assert not (tmp_path / "run").exists()


def test_a_nan_loss_stops_the_run_without_a_checkpoint_of_that_step(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=6", "checkpoint_every=1")
    processes = start_processes("cpu")
    task = train_task(config, processes)
    calls = []

    def loss(batch):
        calls.append(1)
        value = task.loss(batch)
        return value * float("nan") if len(calls) == 3 else value

    diverging = Task(task.kind, task.model, task.trained, loss, task.denoise)
    with pytest.raises(TrainingDiverged, match="step 3: the loss is nan"):
        run_training(diverging, config, images, [], processes)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 2
    assert torch.isfinite(torch.cat([value.flatten() for value in state["model"].values()])).all()
    assert steps_of(read_metrics(tmp_path / "metrics.jsonl"), "loss") == [1, 2]
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "best.pt").exists()

    # The run resumes from step 2 once the cause is gone.
    calls_after = []
    train(config, images, on_step=calls_after.append)
    assert calls_after == [3, 4, 5, 6]


def test_a_huge_learning_rate_diverges(tmp_path, images):
    config = config_for(TrainConfig, tmp_path, "steps=20", "lr=1e30", "checkpoint_every=1")
    with pytest.raises(TrainingDiverged, match=r"^step \d+: the loss is (nan|inf).*lower 'lr'") as info:
        train(config, images)
    diverged_at = int(str(info.value).split(":")[0].split()[1])
    assert 2 <= diverged_at < 20  # one huge Adam step is enough
    assert load_checkpoint(tmp_path / "last.pt")["step"] == diverged_at - 1
    assert not (tmp_path / "model.safetensors").exists()


# Distillation


@pytest.fixture
def teacher_file(tmp_path):
    torch.manual_seed(5)
    path = tmp_path / "teacher.safetensors"
    save_weights(ATBSN(3, 4, 3), path)
    return path


def test_distill_end_to_end_through_the_cli(tmp_path, image_folder, teacher_file, capsys):
    out = tmp_path / "student"
    argv = ["distill", f"teacher={teacher_file}", f"out={out}", f"data={image_folder}", "holes=[0,3,9]",
            "steps=3", "val_every=3", "val_data=embedded", "val_max_images=1", *TINY]
    assert main(argv) == 0
    assert "distill: 3 steps done, best validation PSNR" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == [
        "best.pt", "config.yaml", "last.pt", "metrics.jsonl", "model.safetensors"]
    assert yaml.safe_load((out / "config.yaml").read_text())["holes"] == [0, 3, 9]
    records = read_metrics(out / "metrics.jsonl")
    assert steps_of(records, "loss") == [1, 2, 3] and steps_of(records, "val_psnr") == [3]
    last = load_checkpoint(out / "last.pt")
    assert last["kind"] == "distill" and last["step"] == 3
    for name in ("model.safetensors", "best.pt", "last.pt"):
        student = load_model(out / name)
        assert isinstance(student, NBSN), name
    assert_same_weights(load_model(out / "model.safetensors").state_dict(), last["model"])

    # The teacher is frozen: its file and weights are untouched.
    teacher = load_model(teacher_file)
    torch.manual_seed(5)
    assert_same_weights(teacher.state_dict(), ATBSN(3, 4, 3).state_dict())


def test_the_student_starts_from_the_teachers_shared_weights(tmp_path, teacher_file):
    config = config_for(DistillConfig, tmp_path, f"teacher={teacher_file}", "holes=[0,3,9]", "steps=2", "seed=7")
    task = distill_task(config, start_processes("cpu"))
    assert isinstance(task.model, NBSN) and task.kind == "distill"
    teacher = load_model(teacher_file)
    student = task.model.state_dict()

    # Exactly a seeded fresh NBSN given the teacher's shared weights (init_student_from_teacher).
    torch.manual_seed(7)
    expected = NBSN(3, 4, 3)
    shared = init_student_from_teacher(expected, teacher)
    assert_same_weights(student, expected.state_dict())

    own = [key for key in student if key.startswith(STUDENT_OWN_KEYS)]
    assert own and set(shared) | set(own) == set(student)
    assert {key.split(".")[0] for key in own} == {"unet"}  # dec1 only: the student has no nin_* head
    for key in shared:
        assert torch.equal(student[key], teacher.state_dict()[key]), key
    torch.manual_seed(7)
    fresh = NBSN(3, 4, 3).state_dict()
    for key in own:
        assert torch.equal(student[key], fresh[key]), key  # not copied from the teacher
    assert any(not torch.equal(student[key], fresh[key]) for key in shared)

    # The loss is the sum over holes of L1(student, teacher at that hole).
    batch = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        expected_loss = sum(torch.nn.functional.l1_loss(task.model(batch), teacher(batch, hole))
                            for hole in (0, 3, 9))
        assert task.loss(batch).item() == pytest.approx(expected_loss.item(), rel=1e-4)


def test_distill_width_must_match_the_teacher(tmp_path, teacher_file):
    config = config_for(DistillConfig, tmp_path, f"teacher={teacher_file}", "width=8")
    with pytest.raises(InputError, match="width=8 but the teacher .* has width 4; .*set width=4"):
        distill_task(config, start_processes("cpu"))


# Bad inputs through the command line: exit 2, one line, nothing written


def grey_folder(tmp_path):
    import cv2

    folder = tmp_path / "grey"
    folder.mkdir()
    cv2.imwrite(str(folder / "grey.png"), torch.randint(0, 256, (40, 40), dtype=torch.uint8).numpy())
    return folder, ["grey.png", "grey image"]


def small_folder(tmp_path):
    folder = tmp_path / "small"
    write_image(folder / "a.png", torch.rand(3, 40, 40) * 255)
    write_image(folder / "b.png", torch.rand(3, 24, 40) * 255)
    return folder, ["training image", "b.png is 24x40", "smaller than the crop 32"]


def empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    return folder, [str(folder), "no image files"]


@pytest.mark.parametrize("make", [
    lambda tmp_path: (tmp_path / "missing", [str(tmp_path / "missing"), "no such file or folder"]),
    grey_folder, small_folder, empty_folder,
])
def test_bad_training_data(tmp_path, capsys, make):
    folder, expected = make(tmp_path)
    out = tmp_path / "out"
    assert main(["train", f"out={out}", f"data={folder}", "val_data=none", "steps=2", *TINY]) == 2
    message = error_line(capsys)
    for text in expected:
        assert text in message
    assert not out.exists()


@pytest.mark.parametrize("argv, expected", [
    (["widht=4"], ["unknown config key(s) widht", "allowed:", "width"]),
    (["steps=0"], ["'steps' must be >= 1"]),
    (["hole=4"], ["hole sizes must be 0 or odd"]),
    (["steps"], ["'steps' is not key=value"]),
    (["--config", "missing.yaml"], ["missing.yaml: no such config file"]),
    (["val_data=/no/such/folder"], ["val_data: /no/such/folder: no such file or folder"]),
])
def test_bad_settings(tmp_path, capsys, image_folder, argv, expected):
    out = tmp_path / "out"
    argv = [str(tmp_path / a) if a.endswith(".yaml") else a for a in argv]
    assert main(["train", f"out={out}", f"data={image_folder}", *TINY, "steps=2", *argv]) == 2
    message = error_line(capsys)
    for text in expected:
        assert text in message
    assert not out.exists()


def test_bad_teachers(tmp_path, capsys, image_folder):
    out = tmp_path / "out"
    save_weights(NBSN(3, 4, 3), tmp_path / "nbsn.safetensors")
    (tmp_path / "foreign.safetensors").write_bytes(b"not safetensors at all")
    cases = [
        (tmp_path / "missing.pt", "no such weight file"),
        (tmp_path / "nbsn.safetensors", "holds an NBSN; an ATBSN is needed here"),
        (tmp_path / "foreign.safetensors", "not a readable safetensors file"),
        (image_folder, "no such weight file"),
    ]
    for teacher, expected in cases:
        argv = ["distill", f"teacher={teacher}", f"out={out}", f"data={image_folder}", "val_data=none", "steps=2",
                *TINY]
        assert main(argv) == 2, teacher
        message = error_line(capsys, "distill")
        assert str(teacher) in message and expected in message, message
        assert not out.exists()
    assert main(["distill", f"out={out}", f"data={image_folder}", *TINY]) == 2
    assert "distill needs a teacher" in error_line(capsys, "distill")


def test_stop_after_ends_early_with_a_checkpoint_and_resuming_finishes_the_same_run(tmp_path):
    """stop_after=3 of 6 steps, then the same run to the end, equals one uninterrupted run."""
    common = ["width=4", "steps=6", "batch=1", "crop=32", "val_data=none", "checkpoint_every=100",
              "log_every=1", "embedded_realisations=1"]
    assert main(["train", f"out={tmp_path / 'whole'}", *common]) == 0
    assert main(["train", f"out={tmp_path / 'split'}", "stop_after=3", *common]) == 0
    assert torch.load(tmp_path / "split" / "last.pt", weights_only=True)["step"] == 3
    assert main(["train", f"out={tmp_path / 'split'}", *common]) == 0
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert split["step"] == 6
    assert all(torch.equal(whole["model"][key], split["model"][key]) for key in whole["model"])
